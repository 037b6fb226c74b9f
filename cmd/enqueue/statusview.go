package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/msaudit/msaudit/internal/runstore"
)

// recentWindow is the span of the rate status shows and its ETA uses: the
// whole run's average is wrong after a pause or a throttle episode.
const recentWindow = 5 * time.Minute

// statusView is the JSON of 'status' and 'runs'.
type statusView struct {
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
	Remaining      int64             `json:"remaining"`
	Batches        int64             `json:"batches"`
	RatePerSecond  float64           `json:"rate_per_second"`         // over the last minutes
	AverageRate    float64           `json:"average_rate_per_second"` // since the first check
	ETASeconds     *int64            `json:"eta_seconds"`
	TenantRate     float64           `json:"tenant_rate_per_second"`
	RealmRequests  int64             `json:"realm_requests"`
	Throttles      int64             `json:"throttle_signals"`
	RecheckOf      string            `json:"recheck_of,omitempty"`
	StartedAt      time.Time         `json:"started_at"`
	UpdatedAt      time.Time         `json:"updated_at"`
	EnumeratedAt   *time.Time        `json:"enumerated_at,omitempty"`
	CompletedAt    *time.Time        `json:"completed_at,omitempty"`
	PausedAt       *time.Time        `json:"paused_at,omitempty"`
	LastError      string            `json:"last_error,omitempty"`
}

func newStatusView(r *runstore.Run, now time.Time) statusView {
	v := statusView{
		RunID: r.ID, TenantID: r.TenantID, State: r.State(), UsersTotal: r.UsersTotal, UsersSeen: r.UsersSeen,
		AddressesTotal: r.AddressesTotal, Checked: r.Checked, Present: r.Present, Absent: r.Absent,
		FailedPending: r.FailedPending, DeadLettered: r.DeadLettered, Batches: r.Batches,
		Remaining: r.AddressesTotal - r.Checked - r.DeadLettered, TenantRate: r.TenantRate,
		RealmRequests: r.Requests, Throttles: r.Throttles, RecheckOf: r.RecheckOf,
		StartedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, LastError: r.LastError,
	}
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	v.EnumeratedAt, v.CompletedAt, v.PausedAt = opt(r.EnumerationFinishedAt), opt(r.CompletedAt), opt(r.PausedAt)
	end := now
	if !r.CompletedAt.IsZero() {
		end = r.CompletedAt
	}
	if !r.FirstCheckAt.IsZero() {
		if secs := end.Sub(r.FirstCheckAt).Seconds(); secs > 0 {
			v.AverageRate = float64(r.Checked+r.DeadLettered) / secs
		}
	}
	v.RatePerSecond = v.AverageRate // a finished run: its whole-run rate
	if r.CompletedAt.IsZero() {
		v.RatePerSecond = r.RecentRate(now, recentWindow)
	}
	if v.State == runstore.StateRunning && v.RatePerSecond > 0 {
		eta := int64(float64(v.Remaining) / v.RatePerSecond)
		v.ETASeconds = &eta
	}
	return v
}

func (v statusView) done() int64 { return v.Checked + v.DeadLettered }

func (v statusView) fraction() float64 {
	if v.AddressesTotal == 0 {
		return 0
	}
	return float64(v.done()) / float64(v.AddressesTotal)
}

// phase is what the run is doing, in words.
func (v statusView) phase() string {
	switch v.State {
	case runstore.StateEnumerating:
		return fmt.Sprintf("enumerating: %s users read, checking as they come", thousands(v.UsersSeen))
	case runstore.StateRunning:
		return "checking"
	case runstore.StatePaused:
		return "paused (enqueue resume " + v.RunID + ")"
	case runstore.StateCompleted:
		return "done"
	case runstore.StateIncomplete:
		return "incomplete: the submit stopped"
	}
	return string(v.State)
}

func bar(frac float64, width int) string {
	n := min(width, max(0, int(frac*float64(width))))
	return strings.Repeat("█", n) + strings.Repeat("░", width-n)
}

func (v statusView) eta() string {
	if v.ETASeconds == nil {
		return ""
	}
	return (time.Duration(*v.ETASeconds) * time.Second).String()
}

// line renders a one-line status with a progress bar.
func (v statusView) line() string {
	eta := ""
	if e := v.eta(); e != "" {
		eta = " ETA " + e
	}
	return fmt.Sprintf("%s %s %5.1f%% %d/%d  present %d  absent %d  retrying %d  dead %d  %.1f/s%s",
		v.State, bar(v.fraction(), 30), 100*v.fraction(), v.done(), v.AddressesTotal, v.Present, v.Absent,
		v.FailedPending, v.DeadLettered, v.RatePerSecond, eta)
}

// block renders the status as the lines a terminal redraws in place.
func (v statusView) block(now time.Time) []string {
	rate := fmt.Sprintf("rate %.1f/s over the last %d min", v.RatePerSecond, int(recentWindow/time.Minute))
	if e := v.eta(); e != "" {
		rate += "   ETA " + e
	}
	if v.TenantRate > 0 {
		rate += fmt.Sprintf("   tenant rate %.1f/s", v.TenantRate)
	}
	lines := []string{
		fmt.Sprintf("run %s   tenant %s", v.RunID, v.TenantID),
		"phase: " + v.phase(),
		fmt.Sprintf("%s %5.1f%%  %s / %s addresses", bar(v.fraction(), 40), 100*v.fraction(), thousands(v.done()), thousands(v.AddressesTotal)),
		fmt.Sprintf("present %s   absent %s   retrying %s   dead %s", thousands(v.Present), thousands(v.Absent),
			thousands(v.FailedPending), thousands(v.DeadLettered)),
		rate,
		fmt.Sprintf("realm requests %s   throttled %s   updated %s", thousands(v.RealmRequests), thousands(v.Throttles),
			now.UTC().Format("15:04:05 UTC")),
	}
	if v.LastError != "" && v.State == runstore.StateIncomplete {
		lines = append(lines, "submit stopped: "+printable(v.LastError), "resume with: enqueue submit --run-id "+v.RunID+" (same options)")
	}
	return lines
}

// thousands formats n with thin separators: 1,234,567.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
