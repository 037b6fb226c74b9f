// Package runview is a run's status as people and programs read it: the
// counters of the run store with the rates and the ETA derived from them.
// The enqueue CLI prints it and run events carry it, so both say the same.
package runview

import (
	"strconv"
	"time"

	"github.com/msaudit/msaudit/internal/runstore"
)

// RecentWindow is the span of the rate status shows and its ETA uses: the
// whole run's average is wrong after a pause or a throttle episode.
const RecentWindow = 5 * time.Minute

// Status is a run's status as status and runs print it in JSON, and as run
// events carry it.
type Status struct {
	RunID          string            `json:"run_id"`
	TenantID       string            `json:"tenant_id"`
	State          runstore.RunState `json:"state"`
	UsersTotal     int64             `json:"users_total"`
	UsersSeen      int64             `json:"users_seen"`
	AddressesTotal int64             `json:"addresses_total"`
	Checked        int64             `json:"checked"`
	Present        int64             `json:"present"`
	Absent         int64             `json:"absent"`
	FailedPending  int64             `json:"failed_pending"`
	DeadLettered   int64             `json:"dead_lettered"`
	Reused         int64             `json:"reused"` // of checked and absent: answers of the baseline, not asked
	Remaining      int64             `json:"remaining"`
	Batches        int64             `json:"batches"`
	RatePerSecond  float64           `json:"rate_per_second"`         // over the last minutes
	AverageRate    float64           `json:"average_rate_per_second"` // since the first check
	ETASeconds     *int64            `json:"eta_seconds"`
	TenantRate     float64           `json:"tenant_rate_per_second"`
	RealmRequests  int64             `json:"realm_requests"`
	Throttles      int64             `json:"throttle_signals"`
	RecheckOf      string            `json:"recheck_of,omitempty"`
	Since          string            `json:"since,omitempty"` // the baseline run (submit --since)
	StartedAt      time.Time         `json:"started_at"`
	UpdatedAt      time.Time         `json:"updated_at"`
	EnumeratedAt   *time.Time        `json:"enumerated_at,omitempty"`
	CompletedAt    *time.Time        `json:"completed_at,omitempty"`
	PausedAt       *time.Time        `json:"paused_at,omitempty"`
	StalledAt      *time.Time        `json:"stalled_at,omitempty"` // while stalled: no answer for the workers' --stall-after
	LastError      string            `json:"last_error,omitempty"`
}

// Of is the status of r at now.
func Of(r *runstore.Run, now time.Time) Status {
	v := Status{
		RunID: r.ID, TenantID: r.TenantID, State: r.State(), UsersTotal: r.UsersTotal, UsersSeen: r.UsersSeen,
		AddressesTotal: r.AddressesTotal, Checked: r.Checked, Present: r.Present, Absent: r.Absent,
		FailedPending: r.FailedPending, DeadLettered: r.DeadLettered, Batches: r.Batches,
		Remaining: r.AddressesTotal - r.Checked - r.DeadLettered, TenantRate: r.TenantRate,
		RealmRequests: r.Requests, Throttles: r.Throttles, RecheckOf: r.RecheckOf, Reused: r.Reused, Since: r.Since,
		StartedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, LastError: r.LastError,
	}
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	v.EnumeratedAt, v.CompletedAt, v.PausedAt = opt(r.EnumerationFinishedAt), opt(r.CompletedAt), opt(r.PausedAt)
	if v.State == runstore.StateRunning || v.State == runstore.StateEnumerating || v.State == runstore.StateIncomplete {
		v.StalledAt = opt(r.StalledAt)
	}
	end := now
	if !r.CompletedAt.IsZero() {
		end = r.CompletedAt
	}
	if !r.FirstCheckAt.IsZero() {
		if secs := end.Sub(r.FirstCheckAt).Seconds(); secs > 0 {
			v.AverageRate = float64(r.Checked+r.DeadLettered-r.Reused) / secs
		}
	}
	v.RatePerSecond = v.AverageRate // a finished run: its whole-run rate
	if r.CompletedAt.IsZero() {
		v.RatePerSecond = r.RecentRate(now, RecentWindow)
	}
	if v.State == runstore.StateRunning && v.RatePerSecond > 0 {
		eta := int64(float64(v.Remaining) / v.RatePerSecond)
		v.ETASeconds = &eta
	}
	return v
}

// Done counts the addresses with a final outcome: checked or dead-lettered.
func (v Status) Done() int64 { return v.Checked + v.DeadLettered }

// ToAsk counts the addresses to ask: all but the reused answers.
func (v Status) ToAsk() int64 { return v.AddressesTotal - v.Reused }

// AskedDone counts the addresses to ask that are done.
func (v Status) AskedDone() int64 { return v.Done() - v.Reused }

// Fraction is the share of the addresses to ask that are done, 0 to 1.
func (v Status) Fraction() float64 {
	if v.ToAsk() <= 0 {
		return 0
	}
	return float64(v.AskedDone()) / float64(v.ToAsk())
}

// Thousands formats n with separators: 1,234,567.
func Thousands(n int64) string {
	if n < 0 {
		return "-" + Thousands(-n)
	}
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
