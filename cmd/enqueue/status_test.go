package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/runview"
)

func TestStatusDisplays(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	run := &runstore.Run{ID: "r1", TenantID: "t1", Enumerated: true, AddressesTotal: 100, Checked: 40, Present: 4, Absent: 36,
		CreatedAt: now.Add(-time.Hour), FirstCheckAt: now.Add(-30 * time.Minute), TenantRate: 5,
		Recent: []runstore.Minute{{Start: now.Truncate(time.Minute).Add(-time.Minute), Done: 30}, {Start: now.Truncate(time.Minute), Done: 10}}}
	yes, no := true, false
	for _, tc := range []struct {
		name     string
		output   string
		terminal *bool
		check    func(t *testing.T, out string)
	}{
		{"terminal redraws one block", "text", &yes, func(t *testing.T, out string) {
			// The second and third frames start by moving up over the one before;
			// 40 addresses over the last 245 s leave 60 for 367 s.
			if n := strings.Count(out, "\x1b[6A\x1b[J"); n != 2 {
				t.Errorf("%d cursor-up redraws in %q, want 2", n, out)
			}
			if n := strings.Count(out, "phase: checking"); n != 3 {
				t.Errorf("%d frames, want 3", n)
			}
			if !strings.Contains(out, "ETA 6m7s") || !strings.Contains(out, "tenant rate 5.0/s") {
				t.Errorf("block lacks the recent-rate ETA or the tenant rate:\n%s", out)
			}
		}},
		{"plain lines elsewhere", "text", &no, func(t *testing.T, out string) {
			if strings.Contains(out, "\x1b") || strings.Count(out, "\n") != 3 {
				t.Errorf("plain output = %q, want 3 lines without escapes", out)
			}
		}},
		{"json lines", "json", &yes, func(t *testing.T, out string) {
			lines := strings.Split(strings.TrimSpace(out), "\n")
			var v map[string]any
			if len(lines) != 3 || json.Unmarshal([]byte(lines[2]), &v) != nil || v["state"] != "running" || v["eta_seconds"] != 367.0 {
				t.Errorf("json output = %q", out)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			o := &statusOptions{Output: tc.output, terminal: tc.terminal, now: func() time.Time { return now }}
			d := newStatusDisplay(&buf, o)
			for i := 0; i < 3; i++ {
				if err := d.show(runview.Of(run, now)); err != nil {
					t.Fatal(err)
				}
			}
			d.close()
			tc.check(t, buf.String())
		})
	}
}

func TestRunsAge(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{{30 * time.Second, "30s"}, {12 * time.Minute, "12m"}, {5 * time.Hour, "5h"}, {72 * time.Hour, "3d"}} {
		if got := age(tc.d); got != tc.want {
			t.Errorf("age(%s) = %s, want %s", tc.d, got, tc.want)
		}
	}
}

// TestStalledRunSaysSo: a stalled open run says so in its phase and JSON; a
// completed one no longer does.
func TestStalledRunSaysSo(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	run := &runstore.Run{ID: "r1", Enumerated: true, AddressesTotal: 10, StalledAt: now.Add(-time.Hour)}
	v := runview.Of(run, now)
	if v.StalledAt == nil || !strings.Contains(phase(v), "stalled since 2026-01-02 02:04 UTC") {
		t.Errorf("stalled run: phase %q, stalled_at %v", phase(v), v.StalledAt)
	}
	run.CompletedAt = now
	if v := runview.Of(run, now); v.StalledAt != nil || phase(v) != "done" {
		t.Errorf("completed run: phase %q, stalled_at %v", phase(v), v.StalledAt)
	}
}
