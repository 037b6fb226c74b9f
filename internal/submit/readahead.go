package submit

import "context"

// ReadAhead returns a source that reads src in a goroutine of its own, one
// page ahead of emit: while the submit writes a page to Redis, the next page
// is read (from Graph: a request, and its JSON decoded). emit is still called
// on the caller's goroutine, a page at a time and in order; the reader waits
// for emit to take a page before it reads the one after, so at most two
// pages are held. An error from emit stops the reader and is returned once
// the reader has stopped; an error from src is returned after the pages
// read before it were emitted.
func ReadAhead(src Source) Source {
	return func(ctx context.Context, emit Emit) error {
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		pages := make(chan page)
		done := make(chan error, 1)
		go func() {
			defer close(pages)
			done <- src(rctx, func(users int, cands []Candidate) error {
				select {
				case pages <- page{users, cands}:
					return nil
				case <-rctx.Done():
					return rctx.Err()
				}
			})
		}()
		for p := range pages {
			if err := emit(p.users, p.cands); err != nil {
				cancel()
				for range pages { // the reader stops at its next page
				}
				return err
			}
		}
		return <-done
	}
}

// page is what a source emits at once.
type page struct {
	users int
	cands []Candidate
}
