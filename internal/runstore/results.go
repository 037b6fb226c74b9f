package runstore

import (
	"context"
	"fmt"
	"sort"

	"github.com/redis/go-redis/v9"
)

// Result is one user-address pair with its address's final (or current)
// state, as the report lists it.
type Result struct {
	Pair
	State    AddressStatus // present, absent, dead, or pending
	Attempts int
	Detail
}

// Reused reports whether the answer was taken from the run's baseline
// (RegisterReused) rather than asked: final with no attempt.
func (r Result) Reused() bool { return r.State == StateAbsent && r.Attempts == 0 }

// Results returns every pair of the run with its address's state, sorted by
// address then user ID.
func (s *Store) Results(ctx context.Context, runID string) ([]Result, error) {
	var out []Result
	err := s.EachResults(ctx, runID, func(part []Result) error {
		out = append(out, part...)
		return nil
	})
	return out, err
}

// EachResults calls fn with the run's results in order, a chunk at a time
// (fn must not keep the slice), so that a caller converting them holds
// one chunk of them at once rather than all.
func (s *Store) EachResults(ctx context.Context, runID string, fn func([]Result) error) error {
	if _, err := s.GetRun(ctx, runID); err != nil {
		return err
	}
	k, err := s.keysOf(ctx, runID)
	if err != nil {
		return err
	}
	users, err := s.users(ctx, k)
	if err != nil {
		return err
	}
	errs, err := s.rdb.HGetAll(ctx, k.errors).Result()
	if err != nil {
		return fmt.Errorf("load results: %w", err)
	}
	rows, err := s.pairRows(ctx, k)
	if err != nil {
		return err
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].addr != rows[j].addr {
			return rows[i].addr < rows[j].addr
		}
		return rows[i].userID < rows[j].userID
	})
	const chunk = 1000
	buf := make([]Result, chunk)
	for start := 0; start < len(rows); start += chunk {
		part := buf[:min(start+chunk, len(rows))-start]
		for i, row := range rows[start : start+len(part)] {
			r := Result{Pair: Pair{Address: row.addr, UserID: row.userID}, State: StatePending}
			if row.userID != "" {
				parseUser(&r.Pair, users[row.ref])
			}
			if row.state != "" { // else a pair registered before its address
				r.State, r.Attempts, r.Detail = decodeState(row.state)
			}
			r.Error = errs[row.addr]
			part[i] = r
		}
		if err := fn(part); err != nil {
			return err
		}
		clear(rows[start : start+len(part)])
	}
	return nil
}

// users reads every user of the run: reference -> value (userValue).
func (s *Store) users(ctx context.Context, k keys) (map[string]string, error) {
	const group = 128
	users := make(map[string]string)
	for first := 0; first < k.buckets; first += group {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.StringSliceCmd, 0, group)
		for i := first; i < min(first+group, k.buckets); i++ {
			cmds = append(cmds, pipe.LRange(ctx, k.bucket(famUsers, i), 0, -1))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("load results: %w", err)
		}
		for _, c := range cmds {
			for _, e := range c.Val() {
				ref, v := splitUser(e)
				users[ref] = v
			}
		}
	}
	return users, nil
}

// pairRow is one user-address pair with its address's state value.
type pairRow struct {
	addr, userID, ref, state string
}

// pairRows reads every pair of the run, an owners bucket with the state
// bucket of the same number (they hold the same addresses) at a time.
func (s *Store) pairRows(ctx context.Context, k keys) ([]pairRow, error) {
	const group = 64
	var rows []pairRow
	for first := 0; first < k.buckets; first += group {
		pipe := s.rdb.Pipeline()
		var owners, states []*redis.MapStringStringCmd
		for i := first; i < min(first+group, k.buckets); i++ {
			owners = append(owners, pipe.HGetAll(ctx, k.bucket(famOwners, i)))
			states = append(states, pipe.HGetAll(ctx, k.bucket(famState, i)))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("load results: %w", err)
		}
		for j, o := range owners {
			st := states[j].Val()
			for a, refs := range o.Val() {
				for _, ref := range splitRefs(refs) {
					rows = append(rows, pairRow{addr: a, userID: decodeRef(ref), ref: ref, state: st[a]})
				}
			}
		}
	}
	return rows, nil
}

// DeadLetter is a dead-lettered address with its last error.
type DeadLetter struct {
	Address  string
	Attempts int
	Detail
}

// DeadLetters lists the run's dead-lettered addresses, sorted.
func (s *Store) DeadLetters(ctx context.Context, runID string) ([]DeadLetter, error) {
	if _, err := s.GetRun(ctx, runID); err != nil {
		return nil, err
	}
	k, err := s.keysOf(ctx, runID)
	if err != nil {
		return nil, err
	}
	addrs, err := s.rdb.SMembers(ctx, k.dead).Result()
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	sort.Strings(addrs)
	out := make([]DeadLetter, 0, len(addrs))
	const chunk = 1000
	for start := 0; start < len(addrs); start += chunk {
		dead, err := s.deadLetterPage(ctx, k, addrs[start:min(start+chunk, len(addrs))])
		if err != nil {
			return nil, err
		}
		out = append(out, dead...)
	}
	return out, nil
}

// Requeue moves the given dead addresses back to pending with fresh attempts
// and stores the batches that carry them as unsent, in one atomic step.
// batches maps batch numbers to payloads. It returns how many moved; 0 means
// another requeue got there first.
func (s *Store) Requeue(ctx context.Context, runID string, addrs []string, batches map[int][]byte, nowMs int64) (int, error) {
	k, err := s.keysOf(ctx, runID)
	if err != nil {
		return 0, fmt.Errorf("requeue dead letters: %w", err)
	}
	if k.buckets == 0 {
		return 0, nil
	}
	kl := newKeyList(k.scripted())
	argv := make([]any, 0, 2+2*len(addrs)+2*len(batches))
	argv = append(argv, nowMs, len(addrs))
	for _, a := range addrs {
		argv = append(argv, kl.add(k.bucket(famState, k.bucketOf(a))), a)
	}
	for _, b := range sortedInts(batches) {
		argv = append(argv, b, batches[b])
	}
	n, err := requeueScript.Run(ctx, s.rdb, kl.keys, argv...).Int()
	if err != nil {
		return 0, fmt.Errorf("requeue dead letters: %w", err)
	}
	return n, nil
}
