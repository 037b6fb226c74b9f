package runstore

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
)

// Result is one user-address pair with its address's final (or current)
// state, as the report lists it.
type Result struct {
	Pair
	State    AddressStatus // present, absent, dead, or pending
	Attempts int
	Detail
}

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
	k := runKeys(runID)
	var pairs []Pair
	err := s.scanHash(ctx, k.owners, func(f, v string) { pairs = append(pairs, parsePair(f, v)) })
	if err != nil {
		return err
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].Address != pairs[j].Address {
			return pairs[i].Address < pairs[j].Address
		}
		return pairs[i].UserID < pairs[j].UserID
	})
	const chunk = 1000
	buf := make([]Result, chunk)
	for start := 0; start < len(pairs); start += chunk {
		end := min(start+chunk, len(pairs))
		part := buf[:end-start]
		if err := s.fillStates(ctx, k, pairs[start:end], part); err != nil {
			return err
		}
		if err := fn(part); err != nil {
			return err
		}
		clear(pairs[start:end]) // the chunk's strings now live in what fn kept
	}
	return nil
}

// fillStates looks up the states of pairs into out, one round trip per chunk.
func (s *Store) fillStates(ctx context.Context, k keys, pairs []Pair, out []Result) error {
	addrs := make([]string, len(pairs))
	for i, p := range pairs {
		addrs[i] = p.Address
	}
	pipe := s.rdb.Pipeline()
	sts := pipe.HMGet(ctx, k.status, addrs...)
	ats := pipe.HMGet(ctx, k.attempts, addrs...)
	dts := pipe.HMGet(ctx, k.detail, addrs...)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("load results: %w", err)
	}
	for i, p := range pairs {
		st, _ := sts.Val()[i].(string)
		r := Result{Pair: p, State: statusOf(st)}
		if st == "" {
			r.State = StatePending // a pair registered before its address
		}
		at, _ := ats.Val()[i].(string)
		r.Attempts = int(atoi(at))
		if d, _ := dts.Val()[i].(string); d != "" {
			if err := json.Unmarshal([]byte(d), &r.Detail); err != nil {
				return fmt.Errorf("decode detail of an address: %w", err)
			}
		}
		out[i] = r
	}
	return nil
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
	k := runKeys(runID)
	addrs, err := s.rdb.SMembers(ctx, k.dead).Result()
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	sort.Strings(addrs)
	out := make([]DeadLetter, 0, len(addrs))
	const chunk = 1000
	for start := 0; start < len(addrs); start += chunk {
		part := addrs[start:min(start+chunk, len(addrs))]
		pipe := s.rdb.Pipeline()
		ats := pipe.HMGet(ctx, k.attempts, part...)
		dts := pipe.HMGet(ctx, k.detail, part...)
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("list dead letters: %w", err)
		}
		for i, a := range part {
			dl := DeadLetter{Address: a}
			at, _ := ats.Val()[i].(string)
			dl.Attempts = int(atoi(at))
			if d, _ := dts.Val()[i].(string); d != "" {
				_ = json.Unmarshal([]byte(d), &dl.Detail)
			}
			out = append(out, dl)
		}
	}
	return out, nil
}

// Requeue moves the given dead addresses back to pending with fresh attempts
// and stores the batches that carry them as unsent, in one atomic step.
// batches maps batch numbers to payloads. It returns how many moved; 0 means
// another requeue got there first.
func (s *Store) Requeue(ctx context.Context, runID string, addrs []string, batches map[int][]byte, nowMs int64) (int, error) {
	argv := make([]any, 0, 2+len(addrs)+2*len(batches))
	argv = append(argv, nowMs, len(addrs))
	for _, a := range addrs {
		argv = append(argv, a)
	}
	for _, b := range sortedInts(batches) {
		argv = append(argv, b, batches[b])
	}
	n, err := requeueScript.Run(ctx, s.rdb, runKeys(runID).scripted(), argv...).Int()
	if err != nil {
		return 0, fmt.Errorf("requeue dead letters: %w", err)
	}
	return n, nil
}
