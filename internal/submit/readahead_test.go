package submit

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestReadAheadReadsWhileEmitting: the next page is read while emit still
// handles the one before, and pages arrive in order.
func TestReadAheadReadsWhileEmitting(t *testing.T) {
	t.Parallel()
	reading := make(chan int, 3)
	src := func(ctx context.Context, emit Emit) error {
		for i := 1; i <= 3; i++ {
			reading <- i
			if err := emit(i, nil); err != nil {
				return err
			}
		}
		return nil
	}
	var got []int
	err := ReadAhead(src)(t.Context(), func(users int, _ []Candidate) error {
		// Emit of page n returns only once page n+1 is being read.
		for n := 0; users < 3 && n <= users; {
			select {
			case n = <-reading:
			case <-time.After(10 * time.Second):
				t.Fatalf("page %d: the next page is not read while it is emitted", users)
			}
		}
		got = append(got, users)
		return nil
	})
	if err != nil || len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Fatalf("pages %v, %v; want 1 2 3 in order", got, err)
	}
}

// TestReadAheadStopsOnErrors: an error from emit stops the reader before
// ReadAhead returns it; an error from the source comes after the pages read
// before it.
func TestReadAheadStopsOnErrors(t *testing.T) {
	t.Parallel()
	full := errors.New("redis is full")
	stopped := make(chan error, 1)
	endless := func(ctx context.Context, emit Emit) error {
		for i := 1; ; i++ {
			if err := emit(i, nil); err != nil {
				stopped <- err
				return err
			}
		}
	}
	err := ReadAhead(endless)(t.Context(), func(users int, _ []Candidate) error {
		if users == 2 {
			return full
		}
		return nil
	})
	if !errors.Is(err, full) {
		t.Fatalf("ReadAhead returned %v, want emit's error", err)
	}
	select {
	case <-stopped:
	default:
		t.Fatal("the reader was still running when ReadAhead returned")
	}

	broken := errors.New("graph: page 3: HTTP 500")
	failing := func(ctx context.Context, emit Emit) error {
		for i := 1; i <= 2; i++ {
			if err := emit(i, nil); err != nil {
				return err
			}
		}
		return broken
	}
	emitted := 0
	err = ReadAhead(failing)(t.Context(), func(int, []Candidate) error { emitted++; return nil })
	if !errors.Is(err, broken) || emitted != 2 {
		t.Fatalf("%d pages emitted, then %v; want 2, then the source's error", emitted, err)
	}
}
