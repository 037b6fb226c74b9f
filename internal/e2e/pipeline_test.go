package e2e

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/msaudit/msaudit/internal/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// TestAuditMatchesGroundTruth is the whole pipeline as separate processes:
// the report must list exactly the simulator's ground truth — every expected
// address once per owner, with the right status, and nothing else — even
// with faults injected and one worker killed with SIGKILL mid-run.
func TestAuditMatchesGroundTruth(t *testing.T) {
	t.Parallel() // a Redis database, simulator and workers of its own
	dir := t.TempDir()
	redisURL := newRedis(t)
	s := startSim(t, dir, "--users", "2000", "--seed", "7", "--realm-rate", "400", "--realm-penalty", "200ms",
		"--fault-5xx", "0.02", "--fault-bad-json", "0.01", "--fault-code4", "0.01", "--fault-missing-flag", "0.01")
	env := s.env(redisURL)
	workerArgs := []string{"--concurrency", "4", "--tenant-rate", "300", "--initial-rate", "100",
		"--max-attempts", "12", "--backoff-base", "20ms", "--backoff-max", "300ms", "--realm-timeout", "2s"}
	w1 := startWorker(t, dir, "worker1", s, redisURL, workerArgs...)
	startWorker(t, dir, "worker2", s, redisURL, workerArgs...)

	out := enqueue(t, env, "submit", "--tenant-id", s.TenantID, "--client-id", clientID,
		"--graph-url", s.GraphURL, "--authority-host", s.Authority, "-o", "json")
	var sub struct {
		RunID string `json:"run_id"`
	}
	if err := json.Unmarshal(out, &sub); err != nil || sub.RunID == "" {
		t.Fatalf("submit output %q: %v", out, err)
	}

	killed := false
	st := waitDone(t, env, sub.RunID, 5*time.Minute, func(st status) {
		if !killed && st.Checked > st.AddressesTotal/4 {
			w1.kill() // SIGKILL: its active batches are recovered by asynq
			w1.start()
			killed = true
		}
	})
	if !killed {
		t.Fatal("the run ended before a worker could be killed mid-run")
	}
	gt := s.truth(t)
	if st.AddressesTotal != int64(len(gt.Addresses)) || st.Checked+st.DeadLettered != st.AddressesTotal || st.DeadLettered != 0 || st.FailedPending != 0 {
		t.Fatalf("status %+v, ground truth has %d addresses", st, len(gt.Addresses))
	}

	type key struct{ addr, user string }
	want := make(map[key]string)
	present := int64(0)
	for _, a := range gt.Addresses {
		status := "absent"
		if a.ConsumerAccount {
			status = "present"
			present++
		}
		for _, o := range a.Owners {
			want[key{a.Address, o.UserID}] = status
		}
	}
	if st.Present != present {
		t.Errorf("present = %d, ground truth %d", st.Present, present)
	}
	rows := jsonReport(t, env, dir, sub.RunID)
	if len(rows) != len(want) {
		t.Errorf("report has %d rows, ground truth %d user-address pairs", len(rows), len(want))
	}
	for _, r := range rows {
		k := key{r.Address, r.UserID}
		ws, ok := want[k]
		if !ok {
			t.Errorf("report row not in ground truth (or listed twice): %+v", r)
			continue
		}
		delete(want, k)
		if r.Status != ws || r.MSRequestID == "" || r.CheckedAt == "" || r.Attempts < 1 || r.Error != "" {
			t.Errorf("row %+v, want status %s with request ID and time", r, ws)
		}
	}
	for k := range want {
		t.Errorf("ground-truth pair missing from the report: %v", k)
	}
	for _, f := range []string{"worker1.log", "worker2.log", "tenantsim.log"} {
		b, _ := os.ReadFile(dir + "/" + f)
		if strings.Contains(string(b), secret) {
			t.Errorf("%s contains the client secret", f)
		}
	}
}
