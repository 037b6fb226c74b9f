package runstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
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

// Final reports whether the address is present, absent or dead.
func (s AddressState) Final() bool {
	return s.State == StatePresent || s.State == StateAbsent || s.State == StateDead
}

// Record applies outcomes atomically and returns each address's new state.
// maxAttempts is the attempt count at which a failing address is dead-lettered.
func (s *Store) Record(ctx context.Context, runID string, maxAttempts int, now time.Time, outs []Outcome) ([]AddressState, error) {
	if len(outs) == 0 {
		return nil, nil
	}
	k := runKeys(runID)
	rate := 0.0
	for _, o := range outs {
		if o.Rate > 0 {
			rate = o.Rate
		}
	}
	argv := make([]any, 0, 3+3*len(outs))
	argv = append(argv, maxAttempts, now.UnixMilli(), strconv.FormatFloat(rate, 'f', 3, 64))
	for _, o := range outs {
		d, err := json.Marshal(o.Detail)
		if err != nil {
			return nil, fmt.Errorf("encode detail: %w", err)
		}
		status := string(o.Status)
		switch {
		case status == "" && o.Throttled:
			status = outcomeThrottle
		case status == "":
			status = outcomeFail
		}
		argv = append(argv, o.Address, status, d)
	}
	res, err := recordScript.Run(ctx, s.rdb, k.scripted(), argv...).Slice()
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
	k := runKeys(runID)
	pipe := s.rdb.Pipeline()
	flags := pipe.HMGet(ctx, k.run, "tenant_id", "cancelled", "paused")
	sts := pipe.HMGet(ctx, k.status, addrs...)
	ats := pipe.HMGet(ctx, k.attempts, addrs...)
	if _, err := pipe.Exec(ctx); err != nil {
		return BatchState{}, fmt.Errorf("load batch state: %w", err)
	}
	f := flags.Val()
	bs := BatchState{RunExists: f[0] != nil, Cancelled: f[1] == "1", Paused: f[2] == "1", Addresses: make([]AddressState, len(addrs))}
	for i := range addrs {
		st, _ := sts.Val()[i].(string)
		at, _ := ats.Val()[i].(string)
		bs.Addresses[i] = AddressState{State: statusOf(st), Attempts: int(atoi(at))}
	}
	return bs, nil
}
