package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msaudit/msaudit/internal/redistest"
	"github.com/msaudit/msaudit/internal/runstore"
)

// rollbacks is how many runs TestRollbacks rolls back, one rollback each
// (MSAUDIT_ROLLBACKS, 10 by default).
func rollbacks(t *testing.T) int {
	n, err := strconv.Atoi(cmp.Or(os.Getenv("MSAUDIT_ROLLBACKS"), "10"))
	if err != nil || n < 1 {
		t.Fatalf("MSAUDIT_ROLLBACKS=%q: want a count of runs", os.Getenv("MSAUDIT_ROLLBACKS"))
	}
	return n
}

// rollbackFigures is what one rolled-back run showed.
type rollbackFigures struct {
	addresses      int
	at             float64       // the run's progress when Redis was copied
	rolledBack     time.Duration // how much older than the moment of the kill the restored copy was
	erased         int64         // answers the restore took back (checked before it, minus after)
	stillInFlight  int64         // repeated realm requests beyond the erased answers
	longestStill   time.Duration // the longest time without a new answer, from the restore to completion
	afterRestore   time.Duration // from the restore to completion
	equalsTruth    bool
	reconcileTaken time.Duration // how long 'enqueue reconcile' right after the restore took
}

// TestRollbacks rolls Redis back by a few seconds of acknowledged writes (a
// failover to a lagging replica, a restore of a recent copy) at a random
// moment of a run's checking, runs 'enqueue reconcile' at once as the
// README advises, and lets the run complete. Every run must end equal to
// the simulator's ground truth; the figures, among them the longest time a
// run went without a new answer after the restore, are printed. Each run
// takes a minute and a half or more (the workers' reconcile comes 40 s
// after a failover), so it runs in 'make chaos' (MSAUDIT_CHAOS=full), not
// in 'make test', whose TestChaos rolls back once and the worker package's
// tests cover the late acknowledgements.
func TestRollbacks(t *testing.T) {
	if os.Getenv("MSAUDIT_CHAOS") != "full" {
		t.Skip("ten rollbacks take a quarter of an hour: MSAUDIT_CHAOS=full ('make chaos') runs them")
	}
	t.Parallel() // a Redis, simulators and workers of its own
	srv := privateRedis(t, redisAOF...)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	var all []rollbackFigures
	for i := 0; i < rollbacks(t); i++ {
		var f rollbackFigures
		// A subtest, so that each run's simulator and workers stop with it.
		t.Run(fmt.Sprintf("run%d", i+1), func(t *testing.T) { f = rollBackOneRun(t, srv, rdb, i) })
		all = append(all, f)
		t.Logf("rollback %d: %d addresses, copied at %.0f%%, %s of writes rolled back, %d answers erased, %d more realm requests repeated; after the restore: %s to complete, longest without an answer %s, reconcile took %s; equal to the ground truth: %v",
			i+1, f.addresses, 100*f.at, f.rolledBack.Round(100*time.Millisecond), f.erased, f.stillInFlight,
			f.afterRestore.Round(100*time.Millisecond), f.longestStill.Round(100*time.Millisecond),
			f.reconcileTaken.Round(100*time.Millisecond), f.equalsTruth)
	}
	longest := time.Duration(0)
	for _, f := range all {
		longest = max(longest, f.longestStill)
	}
	t.Logf("rollbacks: %d runs, %d rolled back; the longest any run went without an answer after a restore: %s",
		len(all), len(all), longest.Round(100*time.Millisecond))
}

// rollBackOneRun runs one audit on its own simulated tenant, rolls Redis
// back once during it and checks the outcome against the ground truth.
func rollBackOneRun(t *testing.T, srv *redistest.Server, rdb *redis.Client, i int) rollbackFigures {
	dir := t.TempDir()
	const realmRate = 100
	s := startSim(t, dir, "--users", "1500", "--seed", strconv.Itoa(100+i), "--realm-rate", strconv.Itoa(realmRate),
		"--realm-penalty", "500ms", "--fault-5xx", "0.01")
	env := s.env(srv.URL)
	workerArgs := []string{"--concurrency", "4", "--tenant-rate", strconv.Itoa(5 * realmRate),
		"--initial-rate", strconv.Itoa(realmRate / 2), "--max-attempts", "40", "--backoff-base", "100ms",
		"--backoff-max", "2s", "--realm-timeout", "2s"}
	var workers []*worker
	for j := 0; j < 3; j++ {
		workers = append(workers, startWorker(t, dir, fmt.Sprintf("worker%d", j), s, srv.URL, workerArgs...))
	}
	defer func() {
		for _, w := range workers {
			w.kill()
		}
	}()
	var sub struct {
		RunID string `json:"run_id"`
	}
	out := enqueue(t, env, "submit", "--tenant-id", s.TenantID, "--client-id", clientID,
		"--graph-url", s.GraphURL, "--authority-host", s.Authority, "-o", "json")
	if err := json.Unmarshal(out, &sub); err != nil {
		t.Fatalf("submit output %q: %v", out, err)
	}
	run := sub.RunID
	store := runstore.New(rdb)
	var f rollbackFigures

	// A random moment of the checking: the copy, then a few seconds of
	// writes the restore takes back.
	f.at = 0.1 + 0.7*rand.Float64()
	before := waitProgress(t, store, run, f.at)
	snapshot, copied := copyAOF(t, srv), time.Now()
	time.Sleep(2*time.Second + rand.N(4*time.Second))
	checkedAtKill := before.Checked
	if r, err := store.GetRun(context.Background(), run); err == nil {
		checkedAtKill = r.Checked
	}
	srv.Kill()
	f.rolledBack = time.Since(copied)
	restoreAOF(t, srv, snapshot)
	restart(t, srv)
	loaded(t, rdb)
	restored := time.Now()
	reasked := repeatedRequests(t, s)

	// The operator's reconcile, at once.
	reconciled := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		out, errOut, err := enqueueErr(env, "reconcile", run)
		if err != nil {
			t.Errorf("reconcile: %v\n%s", err, errOut)
		}
		t.Logf("reconcile: %s%s", errOut, out)
		reconciled <- time.Since(start)
	}()

	final, still, erased := watchUntilCompleted(t, store, run, checkedAtKill, 10*time.Minute)
	f.longestStill, f.afterRestore, f.erased = still, time.Since(restored), erased
	f.reconcileTaken = <-reconciled
	f.stillInFlight = repeatedRequests(t, s) - reasked

	gt := s.truth(t)
	f.addresses = len(gt.Addresses)
	lost, mismatched := againstTruth(gt, jsonReport(t, env, dir, run))
	f.equalsTruth = lost == 0 && mismatched == 0 && final.DeadLettered == 0 && final.AddressesTotal == int64(len(gt.Addresses))
	if !f.equalsTruth {
		t.Errorf("rollback %d: lost %d, mismatched %d, final %+v for %d addresses: want every address in one final state, equal to the ground truth",
			i+1, lost, mismatched, final, len(gt.Addresses))
	}
	return f
}

// loaded waits until Redis has loaded its data: it answers while it loads,
// but only to say so (LOADING).
func loaded(t *testing.T, rdb *redis.Client) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for rdb.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Redis did not load its data: %v", rdb.Ping(context.Background()).Err())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitProgress waits until the run has checked at least the fraction p of
// its addresses, and returns it then.
func waitProgress(t *testing.T, store *runstore.Store, run string, p float64) *runstore.Run {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		r, err := store.GetRun(context.Background(), run)
		if err == nil && r.AddressesTotal > 0 && float64(r.Checked) >= p*float64(r.AddressesTotal) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s did not reach %.0f%%: %+v, %v", run, 100*p, r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// watchUntilCompleted follows the run from a restore to its completion and
// returns it completed, the longest time it went without a new answer
// (checked growing) and how many answers the restore erased (checked at
// the kill, minus at the first look after the restore).
func watchUntilCompleted(t *testing.T, store *runstore.Store, run string, checkedAtKill int64, limit time.Duration) (*runstore.Run, time.Duration, int64) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(limit)
	last, lastAt := int64(-1), start
	var longest time.Duration
	erased := int64(0)
	for {
		r, err := store.GetRun(context.Background(), run)
		now := time.Now()
		if err == nil {
			if last < 0 {
				erased = checkedAtKill - r.Checked
				last = r.Checked
			}
			if r.Checked > last {
				longest = max(longest, now.Sub(lastAt))
				last, lastAt = r.Checked, now
			}
			if r.State() == runstore.StateCompleted {
				return r, max(longest, now.Sub(lastAt)), erased
			}
		}
		if now.After(deadline) {
			t.Fatalf("run %s not completed %s after the restore: %+v, %v", run, limit, r, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// againstTruth counts the ground truth's addresses the report has no final
// state for, and those it has the wrong one for.
func againstTruth(gt truth, rows []reportRow) (lost, mismatched int) {
	final := make(map[string]string, len(rows))
	for _, r := range rows {
		final[r.Address] = r.Status
	}
	for _, a := range gt.Addresses {
		want := "absent"
		if a.ConsumerAccount {
			want = "present"
		}
		switch got := final[a.Address]; {
		case got == "" || got == "pending":
			lost++
		case got != want:
			mismatched++
		}
	}
	return lost, mismatched
}
