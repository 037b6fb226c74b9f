package runstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Detail is what is kept of an address's last attempt.
type Detail struct {
	RequestID string    `json:"request_id,omitempty"`
	CheckedAt time.Time `json:"checked_at"`
	Error     string    `json:"error,omitempty"`
}

// Outcome is the result of one attempt at one address.
type Outcome struct {
	Address string
	Status  AddressStatus // StatePresent, StateAbsent, or "" for a failed attempt
	Detail  Detail
	// Throttled marks a failed attempt the service throttled, counted
	// apart in the run's throttle signals.
	Throttled bool
	// Rate is the tenant's rate, requests/s, when the attempt was sent (0:
	// unknown); the last one recorded is what status shows.
	Rate float64
}

// AddressState is an address's state after an update.
type AddressState struct {
	State    AddressStatus
	Attempts int
}

// Pending reports whether the address still needs a check.
func (s AddressState) Pending() bool { return s.State == StatePending }

// Record applies outcomes atomically and returns each address's new state.
// maxAttempts is the attempt count at which a failing address is dead-lettered.
func (s *Store) Record(ctx context.Context, runID string, maxAttempts int, now time.Time, outs []Outcome) ([]AddressState, error) {
	if len(outs) == 0 {
		return nil, nil
	}
	k, err := s.keysOf(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("record results: %w", err)
	}
	if k.buckets == 0 { // purged, or never created: nothing to write to
		states := make([]AddressState, len(outs))
		for i := range states {
			states[i].State = StateUnknown
		}
		return states, nil
	}
	rate := 0.0
	for _, o := range outs {
		if o.Rate > 0 {
			rate = o.Rate
		}
	}
	kl := newKeyList(k.scripted())
	argv := make([]any, 0, 3+5*len(outs))
	argv = append(argv, maxAttempts, now.UnixMilli(), strconv.FormatFloat(rate, 'f', 3, 64))
	for _, o := range outs {
		status := string(o.Status)
		switch {
		case status == "" && o.Throttled:
			status = outcomeThrottle
		case status == "":
			status = outcomeFail
		}
		argv = append(argv, kl.add(k.bucket(famState, k.bucketOf(o.Address))), o.Address, status, encodeDetail(o.Detail), o.Detail.Error)
	}
	res, err := recordScript.Run(ctx, s.rdb, kl.keys, argv...).Slice()
	if err != nil {
		return nil, fmt.Errorf("record results: %w", err)
	}
	states := make([]AddressState, 0, len(outs))
	for i := 0; i+1 < len(res); i += 2 {
		st, _ := res[i].(string)
		n, _ := res[i+1].(int64)
		states = append(states, AddressState{State: statusOf(st), Attempts: int(n)})
	}
	return states, nil
}

// BatchState is what a worker needs to know before checking a batch.
type BatchState struct {
	RunExists bool
	Cancelled bool
	Paused    bool
	Addresses []AddressState // in the order asked
}

// LoadBatch returns the run's flags and the state of addrs in one round trip.
func (s *Store) LoadBatch(ctx context.Context, runID string, addrs []string) (BatchState, error) {
	k, err := s.keysOf(ctx, runID)
	if err != nil {
		return BatchState{}, fmt.Errorf("load batch state: %w", err)
	}
	pipe := s.rdb.Pipeline()
	flags := pipe.HMGet(ctx, k.run, fieldTenantID, fieldCancelled, fieldPaused)
	vals := s.hmgetStates(ctx, pipe, k, addrs)
	if _, err := pipe.Exec(ctx); err != nil {
		return BatchState{}, fmt.Errorf("load batch state: %w", err)
	}
	f := flags.Val()
	bs := BatchState{RunExists: f[0] != nil, Cancelled: f[1] == "1", Paused: f[2] == "1", Addresses: make([]AddressState, len(addrs))}
	for i, v := range vals() {
		st, n, _ := decodeState(v)
		bs.Addresses[i] = AddressState{State: st, Attempts: n}
	}
	return bs, nil
}

// hmgetStates queues on pipe one HMGET per state bucket that holds some of
// addrs; once the pipe ran, the returned function gives each address's
// value in the order of addrs ("" if none). A run that does not exist
// queues nothing.
func (s *Store) hmgetStates(ctx context.Context, pipe redis.Pipeliner, k keys, addrs []string) func() []string {
	if k.buckets == 0 {
		return func() []string { return make([]string, len(addrs)) }
	}
	type group struct {
		at  []int
		cmd *redis.SliceCmd
	}
	byBucket := make(map[int]*group)
	fields := make(map[int][]string)
	for i, a := range addrs {
		b := k.bucketOf(a)
		g := byBucket[b]
		if g == nil {
			g = &group{}
			byBucket[b] = g
		}
		g.at = append(g.at, i)
		fields[b] = append(fields[b], a)
	}
	for b, g := range byBucket {
		g.cmd = pipe.HMGet(ctx, k.bucket(famState, b), fields[b]...)
	}
	return func() []string {
		out := make([]string, len(addrs))
		for _, g := range byBucket {
			for j, v := range g.cmd.Val() {
				out[g.at[j]], _ = v.(string)
			}
		}
		return out
	}
}
