package runstore

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/msaudit/msaudit/internal/spill"
	"github.com/redis/go-redis/v9"
)

// Sorter orders records by key, bytewise, within a memory budget, spilling
// to disk beyond it (spill.Sorter is one): the streaming readers below hold
// a page of the run at a time and leave the rest of the ordering to it.
type Sorter interface {
	// Add adds a record; key and value are copied.
	Add(key, value []byte) error
	// Each calls fn with every record in key order; key and value are only
	// valid during the call.
	Each(fn func(key, value []byte) error) error
	// Close releases what the Sorter holds.
	Close() error
}

// PageAddresses is about how many addresses (or users) the streaming
// readers ask Redis for at a time, whatever the size of the run: one
// pipeline reads buckets until they hold about this many.
const PageAddresses = 4096

// maxGroup caps the buckets one pipeline reads.
const maxGroup = 256

// resultsPage is how many results ReadResults hands fn at a time.
const resultsPage = 1000

// pageSize is PageAddresses, or what a test set instead.
func (s *Store) pageSize() int {
	if s.page > 0 {
		return s.page
	}
	return PageAddresses
}

// group is how many of k's buckets, n elements in all, one pipeline reads.
func (s *Store) group(k keys, n int64) int {
	per := n/int64(k.buckets) + 1
	return int(max(1, min(maxGroup, int64(s.pageSize())/per)))
}

// ReadResults calls fn with every pair of the run and its address's state,
// sorted by address then user ID, resultsPage at a time (fn must not keep
// the slice). What it holds in memory does not grow with the run: it reads
// the run a few buckets at a time, joins each pair with its user by
// sorting the pairs by the user's bucket and reading the users buckets in
// that order, and leaves both orderings to sorters newSorter makes (two,
// one after the other).
func (s *Store) ReadResults(ctx context.Context, runID string, newSorter func() Sorter, fn func([]Result) error) error {
	run, err := s.GetRun(ctx, runID)
	if err != nil {
		return err
	}
	k, err := s.keysOf(ctx, runID)
	if err != nil {
		return err
	}
	byUser := newSorter()
	defer byUser.Close()
	if err := s.pairsByUserBucket(ctx, k, run.AddressesTotal, byUser); err != nil {
		return err
	}
	byAddr := newSorter()
	defer byAddr.Close()
	if err := s.joinUsers(ctx, k, max(run.UsersTotal, run.UsersSeen), byUser, byAddr); err != nil {
		return err
	}
	byUser.Close() // its temporary file is no longer needed
	return emitResults(byAddr, fn)
}

// pairsByUserBucket adds every pair of the run to out, keyed by the
// bucket of its user, then its address; the value is the user's reference,
// the address's state value and its last error.
func (s *Store) pairsByUserBucket(ctx context.Context, k keys, addresses int64, out Sorter) error {
	group := s.group(k, addresses)
	var key, val []byte
	for first := 0; first < k.buckets; first += group {
		pipe := s.rdb.Pipeline()
		var owners, states []*redis.MapStringStringCmd
		for i := first; i < min(first+group, k.buckets); i++ {
			owners = append(owners, pipe.HGetAll(ctx, k.bucket(famOwners, i)))
			states = append(states, pipe.HGetAll(ctx, k.bucket(famState, i)))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("read results: %w", err)
		}
		errs, err := s.lastErrors(ctx, k, states)
		if err != nil {
			return err
		}
		for j, o := range owners {
			st := states[j].Val()
			for a, refs := range o.Val() {
				for _, ref := range splitRefs(refs) {
					key = binary.BigEndian.AppendUint32(key[:0], uint32(k.bucketOf(ref)))
					key = append(key, a...)
					val = spill.AppendField(spill.AppendField(spill.AppendField(val[:0], ref), st[a]), errs[a])
					if err := out.Add(key, val); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// lastErrors reads the last error of the addresses of states that are
// neither present nor absent: only theirs can be the last word.
func (s *Store) lastErrors(ctx context.Context, k keys, states []*redis.MapStringStringCmd) (map[string]string, error) {
	var open []string
	for _, c := range states {
		for a, v := range c.Val() {
			if v == "" || (v[:1] != storedPresent && v[:1] != storedAbsent) {
				open = append(open, a)
			}
		}
	}
	if len(open) == 0 {
		return nil, nil
	}
	vals, err := s.rdb.HMGet(ctx, k.errors, open...).Result()
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	errs := make(map[string]string)
	for i, v := range vals {
		if e, ok := v.(string); ok {
			errs[open[i]] = e
		}
	}
	return errs, nil
}

// joinUsers reads in, pairs in the order of their user's bucket, reading
// the users buckets in the same order a window at a time, and adds each
// pair with its user's value to out, keyed by address then user ID.
func (s *Store) joinUsers(ctx context.Context, k keys, users int64, in, out Sorter) error {
	window := s.group(k, users)
	hi := 0 // the users buckets loaded end here
	byRef := make(map[string]string)
	var key, val []byte
	return in.Each(func(ik, iv []byte) error {
		b := int(binary.BigEndian.Uint32(ik))
		if b >= hi {
			hi = min(b+window, k.buckets)
			if err := s.loadUsers(ctx, k, b, hi, byRef); err != nil {
				return err
			}
		}
		ref, rest := spill.NextField(iv)
		key = spill.AppendKey(spill.AppendKey(key[:0], string(ik[4:])), decodeRef(ref))
		val = spill.AppendField(append(val[:0], rest...), byRef[ref])
		return out.Add(key, val)
	})
}

// loadUsers replaces byRef with the users of buckets [lo, hi).
func (s *Store) loadUsers(ctx context.Context, k keys, lo, hi int, byRef map[string]string) error {
	clear(byRef)
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, 0, hi-lo)
	for i := lo; i < hi; i++ {
		cmds = append(cmds, pipe.LRange(ctx, k.bucket(famUsers, i), 0, -1))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("read results: %w", err)
	}
	for _, c := range cmds {
		for _, e := range c.Val() {
			ref, v := splitUser(e)
			byRef[ref] = v
		}
	}
	return nil
}

// emitResults decodes the records of in (joinUsers) and hands them to fn a
// page at a time.
func emitResults(in Sorter, fn func([]Result) error) error {
	page := make([]Result, 0, resultsPage)
	err := in.Each(func(key, value []byte) error {
		addr, rest := spill.SplitKey(key)
		userID, _ := spill.SplitKey(rest)
		state, value := spill.NextField(value)
		lastErr, value := spill.NextField(value)
		user, _ := spill.NextField(value)
		r := Result{Pair: Pair{Address: addr, UserID: userID}, State: StatePending}
		if userID != "" {
			parseUser(&r.Pair, user)
		}
		if state != "" { // else a pair registered before its address
			r.State, r.Attempts, r.Detail = decodeState(state)
		}
		r.Error = lastErr
		if page = append(page, r); len(page) == resultsPage {
			if err := fn(page); err != nil {
				return err
			}
			page = page[:0]
		}
		return nil
	})
	if err != nil || len(page) == 0 {
		return err
	}
	return fn(page)
}

// ReadDeadLetters calls fn with the run's dead-lettered addresses, sorted,
// resultsPage at a time, holding one page of them: the dead set is read with
// SSCAN into a sorter newSorter makes.
func (s *Store) ReadDeadLetters(ctx context.Context, runID string, newSorter func() Sorter, fn func([]DeadLetter) error) error {
	if _, err := s.GetRun(ctx, runID); err != nil {
		return err
	}
	k, err := s.keysOf(ctx, runID)
	if err != nil {
		return err
	}
	sorted := newSorter()
	defer sorted.Close()
	var cursor uint64
	for {
		addrs, next, err := s.rdb.SScan(ctx, k.dead, cursor, "", int64(s.pageSize())).Result()
		if err != nil {
			return fmt.Errorf("list dead letters: %w", err)
		}
		for _, a := range addrs {
			if err := sorted.Add([]byte(a), nil); err != nil {
				return err
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	page := make([]string, 0, min(resultsPage, s.pageSize()))
	flush := func() error {
		dead, err := s.deadLetterPage(ctx, k, page)
		if err != nil {
			return err
		}
		page = page[:0]
		return fn(dead)
	}
	var prev string
	err = sorted.Each(func(key, _ []byte) error {
		if a := string(key); a != prev || len(page) == 0 { // SSCAN may return an address twice
			prev = a
			page = append(page, a)
		}
		if len(page) == cap(page) {
			return flush()
		}
		return nil
	})
	if err != nil || len(page) == 0 {
		return err
	}
	return flush()
}

// deadLetterPage reads the state and last error of dead addresses.
func (s *Store) deadLetterPage(ctx context.Context, k keys, addrs []string) ([]DeadLetter, error) {
	pipe := s.rdb.Pipeline()
	vals := s.hmgetStates(ctx, pipe, k, addrs)
	errs := pipe.HMGet(ctx, k.errors, addrs...)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	out := make([]DeadLetter, len(addrs))
	for i, v := range vals() {
		out[i].Address = addrs[i]
		_, out[i].Attempts, out[i].Detail = decodeState(v)
		out[i].Error, _ = errs.Val()[i].(string)
	}
	return out, nil
}
