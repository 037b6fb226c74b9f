package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/runview"
)

// phase is what the run is doing, in words.
func phase(v runview.Status) string {
	switch v.State {
	case runstore.StateEnumerating:
		return fmt.Sprintf("enumerating: %s users read, checking as they come", runview.Thousands(v.UsersSeen))
	case runstore.StateRunning:
		if v.StalledAt != nil {
			return "stalled since " + v.StalledAt.UTC().Format("2006-01-02 15:04 UTC") + ": no answer for the workers' --stall-after"
		}
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

func eta(v runview.Status) string {
	if v.ETASeconds == nil {
		return ""
	}
	return (time.Duration(*v.ETASeconds) * time.Second).String()
}

// statusLine renders a one-line status with a progress bar.
func statusLine(v runview.Status) string {
	inETA := ""
	if e := eta(v); e != "" {
		inETA = " ETA " + e
	}
	reused := ""
	if v.Since != "" {
		reused = fmt.Sprintf("  reused %d", v.Reused)
	}
	return fmt.Sprintf("%s %s %5.1f%% %d/%d  present %d  absent %d  retrying %d  dead %d%s  %.1f/s%s",
		v.State, bar(v.Fraction(), 30), 100*v.Fraction(), v.AskedDone(), v.ToAsk(), v.Present, v.Absent,
		v.FailedPending, v.DeadLettered, reused, v.RatePerSecond, inETA)
}

// statusBlock renders the status as the lines a terminal redraws in place.
func statusBlock(v runview.Status, now time.Time) []string {
	rate := fmt.Sprintf("rate %.1f/s over the last %d min", v.RatePerSecond, int(runview.RecentWindow/time.Minute))
	if e := eta(v); e != "" {
		rate += "   ETA " + e
	}
	if v.TenantRate > 0 {
		rate += fmt.Sprintf("   tenant rate %.1f/s", v.TenantRate)
	}
	lines := []string{
		fmt.Sprintf("run %s   tenant %s", v.RunID, v.TenantID),
		"phase: " + phase(v),
		fmt.Sprintf("%s %5.1f%%  %s / %s addresses", bar(v.Fraction(), 40), 100*v.Fraction(), runview.Thousands(v.AskedDone()), runview.Thousands(v.ToAsk())),
		fmt.Sprintf("present %s   absent %s   retrying %s   dead %s", runview.Thousands(v.Present), runview.Thousands(v.Absent),
			runview.Thousands(v.FailedPending), runview.Thousands(v.DeadLettered)),
		rate,
		fmt.Sprintf("realm requests %s   throttled %s   updated %s", runview.Thousands(v.RealmRequests), runview.Thousands(v.Throttles),
			now.UTC().Format("15:04:05 UTC")),
	}
	if v.Since != "" {
		lines = append(lines, fmt.Sprintf("reused %s absent answers of run %s, not asked again (in absent above)", runview.Thousands(v.Reused), v.Since))
	}
	if v.LastError != "" && v.State == runstore.StateIncomplete {
		lines = append(lines, "submit stopped: "+printable(v.LastError), "resume with: enqueue submit --run-id "+v.RunID+" (same options)")
	}
	return lines
}
