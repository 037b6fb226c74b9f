package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkRecurringAudit prints the realm requests and wall time of a
// re-audit of a 20,000-user tenant at a fixed simulated capacity, in full
// and with --since the previous audit, once 2 % of the users are new; about
// a tenth of the addresses have a consumer account (the simulator's share).
// The expected ratio is above 5×: only new, present and unanswered
// addresses are asked.
func BenchmarkRecurringAudit(b *testing.B) {
	const users, capacity = 20000, 400
	for b.Loop() {
		dir := b.TempDir()
		redisURL := newRedis(b)
		workerArgs := []string{"--concurrency", "16", "--tenant-rate", fmt.Sprint(capacity * 95 / 100), "--initial-rate", fmt.Sprint(capacity * 95 / 100),
			"--adaptive=false"}
		// start starts a simulator of the tenant with n users, and the one
		// worker, which asks its realm service.
		start := func(name string, n int) (*sim, []string, *worker) {
			d := filepath.Join(dir, name)
			os.Mkdir(d, 0o700)
			s := startSim(b, d, "--users", fmt.Sprint(n), "--seed", "41", "--realm-rate", fmt.Sprint(capacity))
			w := startWorker(b, d, "worker", s, redisURL, workerArgs...)
			return s, s.env(redisURL), w
		}
		// timed submits a run and waits for it: its realm requests and
		// wall time, submit included.
		timed := func(s *sim, env []string, extra ...string) (string, int64, time.Duration) {
			before := s.stats(b).RealmRequests
			start := time.Now()
			run := submitRun(b, s, env, append(graphArgs(s), extra...)...)
			st := waitDone(b, env, run, 30*time.Minute, nil)
			took := time.Since(start)
			if st.DeadLettered > 0 {
				b.Fatalf("run %s dead-lettered %d addresses", run, st.DeadLettered)
			}
			return run, s.stats(b).RealmRequests - before, took
		}

		s1, env1, w1 := start("last-month", users*98/100)
		baseline, _, _ := timed(s1, env1)
		w1.kill()
		s2, env2, _ := start("now", users)
		_, fullReqs, fullTook := timed(s2, env2)
		since, sinceReqs, sinceTook := timed(s2, env2, "--since", baseline)
		st := getStatus(b, env2, since)
		fmt.Printf("recurring audit of %d users (%d addresses, %d present), realm capacity %d/s:\n", users, st.AddressesTotal, st.Present, capacity)
		fmt.Printf("  full re-audit:      %6d requests, %8s\n", fullReqs, fullTook.Round(time.Second))
		fmt.Printf("  --since last month: %6d requests, %8s   (%.1fx fewer requests, %.1fx faster)\n", sinceReqs, sinceTook.Round(time.Second),
			float64(fullReqs)/float64(max(sinceReqs, 1)), fullTook.Seconds()/sinceTook.Seconds())
		b.ReportMetric(float64(fullReqs)/float64(max(sinceReqs, 1)), "requests-ratio")
		b.ReportMetric(fullTook.Seconds()/sinceTook.Seconds(), "time-ratio")
	}
}
