package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/msaudit/msaudit/internal/redistest"
	"github.com/msaudit/msaudit/tasks"
)

// chaosSize is how large a chaos run is: the short form runs in 'make test',
// the full one (MSAUDIT_CHAOS=full, 'make chaos') has over 20,000 addresses.
type chaosSize struct {
	users     int
	realmRate int // requests/s the simulated service sustains
	minKills  int
	// settle > 0 ends the kill-only phase with that long without chaos,
	// time for asynq to recover the killed workers' batches (30 s leases,
	// a recoverer every minute), so that the answers the kills cost are
	// all asked again, and counted, before Redis is touched.
	settle time.Duration
}

func chaosConfig() chaosSize {
	if os.Getenv("MSAUDIT_CHAOS") == "full" {
		return chaosSize{users: 9500, realmRate: 80, minKills: 12, settle: 100 * time.Second}
	}
	return chaosSize{users: 1500, realmRate: 60, minKills: 4}
}

// redisAOF is the configuration of the chaos run's Redis: AOF as production
// runs it, no rewrite during the run so that a copy of the AOF directory is
// a consistent earlier state to roll back to.
var redisAOF = []string{"appendonly yes", "appendfsync everysec", "auto-aof-rewrite-percentage 0"}

// TestChaos runs an audit through everything a cluster does to it: workers
// SIGKILLed every few seconds and started again, Redis restarted cleanly and
// with SIGKILL, Redis rolled back by seconds of acknowledged writes (a
// failover to a lagging replica, or a host crash between fsyncs), and tasks
// and leases deleted behind the system's back, repaired by 'enqueue
// reconcile'. The run must end with every address in exactly one final
// state, equal to the simulator's ground truth.
func TestChaos(t *testing.T) {
	t.Parallel() // a Redis database, simulator and workers of its own
	size := chaosConfig()
	dir := t.TempDir()
	srv := privateRedis(t, redisAOF...)
	s := startSim(t, dir, "--users", strconv.Itoa(size.users), "--seed", "21", "--realm-rate", strconv.Itoa(size.realmRate),
		"--realm-penalty", "500ms", "--fault-5xx", "0.01", "--fault-bad-json", "0.005")
	env := s.env(srv.URL)
	workerArgs := []string{"--concurrency", "4", "--tenant-rate", strconv.Itoa(5 * size.realmRate),
		"--initial-rate", strconv.Itoa(size.realmRate / 2), "--max-attempts", "40", "--backoff-base", "100ms",
		"--backoff-max", "2s", "--realm-timeout", "2s", "--reconcile-every", "20s"}
	var workers []*worker
	for i := 0; i < 4; i++ {
		workers = append(workers, startWorker(t, dir, fmt.Sprintf("worker%d", i), s, srv.URL, workerArgs...))
	}
	var sub struct {
		RunID string `json:"run_id"`
	}
	out := enqueue(t, env, "submit", "--tenant-id", s.TenantID, "--client-id", clientID,
		"--graph-url", s.GraphURL, "--authority-host", s.Authority, "-o", "json")
	if err := json.Unmarshal(out, &sub); err != nil {
		t.Fatalf("submit output %q: %v", out, err)
	}
	run := sub.RunID

	var (
		kills, restarts             int
		deletedTasks, deletedLeases int
		rolledBack                  time.Duration
		killPhaseRepeats            int64
		killPhaseKills              int
		lastKill                    = time.Now()
		snapshot                    string
		snapshotAt                  time.Time
		step                        int
	)
	progress := func(st status) float64 { return float64(st.Checked) / float64(max(st.AddressesTotal, 1)) }
	st := waitDone(t, env, run, 15*time.Minute, func(st status) {
		p := progress(st)
		settling := step == 0 && p > 0.2 && size.settle > 0
		if !settling && time.Since(lastKill) > 3*time.Second && (step < 5 || kills < size.minKills) {
			w := workers[rand.IntN(len(workers))]
			w.kill() // SIGKILL: what it had in flight is asked again
			w.start()
			kills++
			lastKill = time.Now()
		}
		switch {
		case step == 0 && p > 0.2 && time.Since(lastKill) > size.settle:
			// The kill-only phase ends: answers re-asked so far are what
			// the kills cost.
			killPhaseRepeats, killPhaseKills = repeatedRequests(t, s), kills
			shutdownRedis(t, srv) // a clean restart: AOF flushed
			restart(t, srv)
			restarts++
			step++
		case step == 1 && p > 0.35:
			srv.Kill() // at most a second of writes lost
			restart(t, srv)
			restarts++
			step++
		case step == 2 && p > 0.45:
			snapshot, snapshotAt = copyAOF(t, srv), time.Now()
			step++
		case step == 3 && time.Since(snapshotAt) > 6*time.Second:
			srv.Kill()
			rolledBack = time.Since(snapshotAt)
			restoreAOF(t, srv, snapshot)
			restart(t, srv)
			step++
		case step == 4 && p > 0.6:
			// Until two waiting tasks and one lease are gone (the tasks
			// may all be running at one moment, or none).
			w, l := deleteBehindTheBack(t, srv.URL, run, 2-deletedTasks, 1-deletedLeases)
			deletedTasks, deletedLeases = deletedTasks+w, deletedLeases+l
			if deletedTasks >= 2 && deletedLeases >= 1 || p > 0.9 {
				out := enqueue(t, env, "reconcile", run)
				t.Logf("reconcile: %s", out)
				step++
			}
		}
	})
	if step < 5 || deletedTasks < 2 || deletedLeases < 1 {
		t.Fatalf("the run completed at step %d of the chaos plan, %d tasks and %d leases deleted: it proves too little",
			step, deletedTasks, deletedLeases)
	}

	gt := s.truth(t)
	present := int64(0)
	for _, a := range gt.Addresses {
		if a.ConsumerAccount {
			present++
		}
	}
	rows := jsonReport(t, env, dir, run)
	lost, mismatched := againstTruth(gt, rows)
	repeated := repeatedRequests(t, s)
	t.Logf("chaos: %d addresses; %d worker kills, %d Redis restarts (1 clean, 1 SIGKILL), rollback of %s of writes, %d waiting tasks and %d leases deleted",
		len(gt.Addresses), kills, restarts, rolledBack.Round(100*time.Millisecond), deletedTasks, deletedLeases)
	t.Logf("chaos: lost %d, mismatched %d, dead-lettered %d; status present %d absent %d, ground truth present %d absent %d",
		lost, mismatched, st.DeadLettered, st.Present, st.Absent, present, int64(len(gt.Addresses))-present)
	t.Logf("chaos: %d repeated realm requests (answers asked again) in all", repeated)
	if size.settle > 0 {
		t.Logf("chaos: kill-only phase: %d repeated over %d kills, %.1f a kill (a worker has 4 requests in flight at most, plus answers of its last %s not yet written)",
			killPhaseRepeats, killPhaseKills, float64(killPhaseRepeats)/float64(max(killPhaseKills, 1)), "200ms")
	}
	if lost != 0 || mismatched != 0 || st.DeadLettered != 0 || st.AddressesTotal != int64(len(gt.Addresses)) ||
		st.Present != present || st.Checked != st.AddressesTotal {
		t.Errorf("final status %+v: want every address in one final state, equal to the ground truth", st)
	}
	if len(rows) < len(gt.Addresses) {
		t.Errorf("report has %d rows for %d addresses", len(rows), len(gt.Addresses))
	}
}

// repeatedRequests is how many valid answers the simulator gave beyond the
// first for each address: checks lost and asked again.
func repeatedRequests(t *testing.T, s *sim) int64 { return s.stats(t).RealmReasked }

func restart(t *testing.T, srv *redistest.Server) {
	t.Helper()
	if err := srv.Restart(redisAOF...); err != nil {
		t.Fatal(err)
	}
}

// shutdownRedis stops Redis the clean way: it writes and fsyncs its AOF.
func shutdownRedis(t *testing.T, srv *redistest.Server) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer c.Close()
	_ = c.Shutdown(context.Background()).Err() // the connection drops: no reply
	srv.Kill()                                 // reap the process
}

// copyAOF copies Redis' AOF directory as it is on disk now.
func copyAOF(t *testing.T, srv *redistest.Server) string {
	t.Helper()
	snap := filepath.Join(t.TempDir(), "appendonlydir")
	if out, err := exec.Command("cp", "-a", filepath.Join(srv.Dir, "appendonlydir"), snap).CombinedOutput(); err != nil {
		t.Fatalf("copy AOF: %v %s", err, out)
	}
	return snap
}

// restoreAOF puts the copy back, for the next start to load.
func restoreAOF(t *testing.T, srv *redistest.Server, snap string) {
	t.Helper()
	live := filepath.Join(srv.Dir, "appendonlydir")
	if err := os.RemoveAll(live); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", snap, live).CombinedOutput(); err != nil {
		t.Fatalf("restore AOF: %v %s", err, out)
	}
}

// deleteBehindTheBack does what evicted keys or a torn restore do: it
// deletes up to tasks of the run's waiting tasks (their addresses stay
// pending with no task to carry them) and up to leases leases of its active
// tasks (asynq never recovers an active task without a lease). It returns
// how many of each it deleted.
func deleteBehindTheBack(t *testing.T, redisURL, run string, tasksLeft, leasesLeft int) (deletedTasks, deletedLeases int) {
	t.Helper()
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	ofRun := func(id string) bool { return strings.HasPrefix(id, run+":") }
	for lane := 0; lane < tasks.Lanes; lane++ {
		q := tasks.LaneQueue(lane)
		for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){insp.ListPendingTasks, insp.ListRetryTasks} {
			infos, _ := list(q)
			for _, ti := range infos {
				if deletedTasks < tasksLeft && ofRun(ti.ID) && insp.DeleteTask(q, ti.ID) == nil {
					deletedTasks++
				}
			}
		}
		active, _ := insp.ListActiveTasks(q)
		for _, ti := range active {
			if deletedLeases < leasesLeft && ofRun(ti.ID) && rdb.ZRem(context.Background(), "asynq:{"+q+"}:lease", ti.ID).Val() == 1 {
				deletedLeases++
			}
		}
	}
	return deletedTasks, deletedLeases
}
