package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msaudit/msaudit/internal/redistest"
)

// TestSentinelFailoverMidRun runs an audit through redis-sentinel:// — a
// primary, a replica and a Sentinel — and kills the primary (SIGKILL) a
// quarter of the way through. The Sentinel promotes the replica, the
// workers and the CLI follow it, and the run completes with every address
// in one final state that matches the ground truth. Writes the primary
// acknowledged but had not yet replicated are lost with it (replication is
// asynchronous): the workers' periodic reconcile re-queues what that left
// pending without a task.
func TestSentinelFailoverMidRun(t *testing.T) {
	if testing.Short() {
		t.Skip("a failover takes seconds")
	}
	t.Parallel()
	dir := t.TempDir()
	st, err := redistest.StartSentinel(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Stop)
	redisURL := st.URL()
	s := startSim(t, dir, "--users", "1200", "--seed", "21", "--realm-rate", "200")
	env := s.env(redisURL)
	args := []string{"--concurrency", "4", "--tenant-rate", "150", "--initial-rate", "150", "--adaptive=false",
		"--max-attempts", "20", "--backoff-base", "50ms", "--backoff-max", "1s", "--reconcile-every", "5s", "--log-level", "debug"}
	startWorker(t, dir, "worker1", s, redisURL, args...)
	startWorker(t, dir, "worker2", s, redisURL, args...)
	run := strings.TrimSpace(string(enqueue(t, env, "submit", "--tenant-id", s.TenantID, "--client-id", clientID,
		"--graph-url", s.GraphURL, "--authority-host", s.Authority)))

	ctx := context.Background()
	old := st.Primary.Addr
	killed, failedOver := time.Time{}, time.Duration(0)
	deadline := time.Now().Add(4 * time.Minute)
	var last status
	var lastLog time.Time
	for {
		// While the primary is down, the CLI cannot answer: keep asking.
		out, errOut, err := enqueueErr(env, "status", run, "-o", "json")
		if err == nil {
			if err := json.Unmarshal(out, &last); err != nil {
				t.Fatalf("status %q: %v", out, err)
			}
			if last.State == "completed" {
				break
			}
		} else if killed.IsZero() {
			t.Fatalf("status before the failover: %v\n%s", err, errOut)
		}
		if killed.IsZero() && last.Checked > last.AddressesTotal/4 {
			t.Logf("killing the primary %s at %d of %d checked", old, last.Checked, last.AddressesTotal)
			st.Primary.Kill()
			killed = time.Now()
			promoted, err := st.WaitFailover(ctx, old, 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			failedOver = time.Since(killed)
			t.Logf("the Sentinel promoted %s after %s", promoted, failedOver.Round(time.Millisecond))
		}
		if !killed.IsZero() && time.Since(lastLog) >= 10*time.Second {
			lastLog = time.Now()
			t.Logf("%s after the kill: %d of %d checked", time.Since(killed).Round(time.Second), last.Checked, last.AddressesTotal)
		}
		if time.Now().After(deadline) {
			t.Fatalf("run not completed: %+v", last)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if killed.IsZero() {
		t.Fatal("the run completed before the primary could be killed")
	}
	t.Logf("completed %s after the kill: %+v", time.Since(killed).Round(time.Second), last)

	gt := s.truth(t)
	if last.AddressesTotal != int64(len(gt.Addresses)) || last.Checked+last.DeadLettered != last.AddressesTotal || last.FailedPending != 0 {
		t.Fatalf("status %+v, ground truth has %d addresses", last, len(gt.Addresses))
	}
	want := make(map[string]string)
	for _, a := range gt.Addresses {
		want[a.Address] = "absent"
		if a.ConsumerAccount {
			want[a.Address] = "present"
		}
	}
	rows := jsonReport(t, env, dir, run)
	seen := make(map[string]bool)
	for _, r := range rows {
		seen[r.Address] = true
		if r.Status != want[r.Address] {
			t.Errorf("%s: %s, ground truth %s", r.Address, r.Status, want[r.Address])
		}
	}
	if len(seen) != len(want) {
		t.Errorf("the report has %d addresses, ground truth %d", len(seen), len(want))
	}
	for _, f := range []string{"worker1.log", "worker2.log"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		if n := strings.Count(string(b), "reconciled a run"); n > 0 {
			t.Logf("%s: %d reconciles repaired the run", f, n)
		}
	}
}
