package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/submit"
)

// progressPrinter prints submit progress at most once per interval.
type progressPrinter struct {
	w     io.Writer
	every time.Duration
	mu    sync.Mutex
	last  time.Time
	start time.Time
}

func newProgressPrinter(w io.Writer, every time.Duration) *progressPrinter {
	return &progressPrinter{w: w, every: every, start: time.Now()}
}

func (p *progressPrinter) update(pr submit.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < p.every {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "enumerating: %d users, %d new addresses, %d batches queued (%s)\n",
		pr.Users, pr.Addresses, pr.Batches, time.Since(p.start).Round(time.Second))
}

func (p *progressPrinter) done(pr submit.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "enumerated: %d users, %d new addresses, %d batches queued in %s\n",
		pr.Users, pr.Addresses, pr.Batches, time.Since(p.start).Round(100*time.Millisecond))
}

// statusView is the JSON of 'status' (SPEC.md §4 names).
type statusView struct {
	RunID          string     `json:"run_id"`
	TenantID       string     `json:"tenant_id"`
	State          string     `json:"state"`
	UsersTotal     int64      `json:"users_total"`
	AddressesTotal int64      `json:"addresses_total"`
	Checked        int64      `json:"checked"`
	Present        int64      `json:"present"`
	Absent         int64      `json:"absent"`
	FailedPending  int64      `json:"failed_pending"`
	DeadLettered   int64      `json:"dead_lettered"`
	Remaining      int64      `json:"remaining"`
	Batches        int64      `json:"batches"`
	RatePerSecond  float64    `json:"rate_per_second"`
	ETASeconds     *int64     `json:"eta_seconds"`
	StartedAt      time.Time  `json:"started_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	EnumeratedAt   *time.Time `json:"enumerated_at,omitempty"`
	CompletedAt    *time.Time `json:"completed_at,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
}

func newStatusView(r *runstore.Run, now time.Time) statusView {
	v := statusView{
		RunID: r.ID, TenantID: r.TenantID, State: r.State(), UsersTotal: r.UsersTotal,
		AddressesTotal: r.AddressesTotal, Checked: r.Checked, Present: r.Present, Absent: r.Absent,
		FailedPending: r.FailedPending, DeadLettered: r.DeadLettered, Batches: r.Batches,
		Remaining: r.AddressesTotal - r.Checked - r.DeadLettered,
		StartedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, LastError: r.LastError,
	}
	if !r.EnumerationFinishedAt.IsZero() {
		t := r.EnumerationFinishedAt
		v.EnumeratedAt = &t
	}
	end := now
	if !r.CompletedAt.IsZero() {
		t := r.CompletedAt
		v.CompletedAt = &t
		end = t
	}
	if !r.FirstCheckAt.IsZero() {
		if secs := end.Sub(r.FirstCheckAt).Seconds(); secs > 0 {
			v.RatePerSecond = float64(r.Checked+r.DeadLettered) / secs
		}
	}
	if v.State == runstore.StateRunning && v.RatePerSecond > 0 {
		eta := int64(float64(v.Remaining) / v.RatePerSecond)
		v.ETASeconds = &eta
	}
	return v
}

// line renders a one-line status with a progress bar.
func (v statusView) line() string {
	done := v.Checked + v.DeadLettered
	frac := 0.0
	if v.AddressesTotal > 0 {
		frac = float64(done) / float64(v.AddressesTotal)
	}
	const width = 30
	n := int(frac * width)
	bar := strings.Repeat("█", n) + strings.Repeat("░", width-n)
	eta := ""
	if v.ETASeconds != nil {
		eta = " ETA " + (time.Duration(*v.ETASeconds) * time.Second).String()
	}
	return fmt.Sprintf("%s %s %5.1f%% %d/%d  present %d  absent %d  retrying %d  dead %d  %.1f/s%s",
		v.State, bar, 100*frac, done, v.AddressesTotal, v.Present, v.Absent, v.FailedPending, v.DeadLettered, v.RatePerSecond, eta)
}
