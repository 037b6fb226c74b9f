package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/msaudit/msaudit/tasks"
)

// TestPurgeLeavesNoTrace: after purging a run that had dead letters
// (archived batches) and completed batches, no Redis key or value holds
// any of its addresses, and another run's data and tasks are untouched.
func TestPurgeLeavesNoTrace(t *testing.T) {
	t.Parallel() // a Redis database, simulator and workers of its own
	dir := t.TempDir()
	redisURL := newRedis(t)
	gt := startSim(t, t.TempDir(), "--users", "200", "--seed", "9").truth(t)
	failFile := filepath.Join(dir, "fail.txt")
	os.WriteFile(failFile, []byte(gt.Addresses[3].Address+"\n"+gt.Addresses[50].Address+"\n"), 0o600)
	s := startSim(t, dir, "--users", "200", "--seed", "9", "--fail-addresses-file", failFile)
	env := s.env(redisURL)
	startWorker(t, dir, "worker", s, redisURL, "--concurrency", "4", "--tenant-rate", "500", "--initial-rate", "300",
		"--max-attempts", "3", "--backoff-base", "10ms", "--backoff-max", "50ms")

	run := submitRun(t, s, env, graphArgs(s)...)
	if st := waitDone(t, env, run, 2*time.Minute, nil); st.DeadLettered != 2 {
		t.Fatalf("run %+v, want 2 dead letters", st)
	}
	var others []string
	for i := 0; i < 120; i++ {
		others = append(others, fmt.Sprintf("other.person%d@contoso.com", i))
	}
	list := filepath.Join(dir, "others.txt")
	os.WriteFile(list, []byte(strings.Join(others, "\n")+"\n"), 0o600)
	other := submitRun(t, s, env, "--addresses-file", list)
	waitDone(t, env, other, 2*time.Minute, nil)
	otherRows := jsonReport(t, env, dir, other)

	rdb := client(t, redisURL)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	if n := countTasks(t, insp, run, insp.ListArchivedTasks); n == 0 {
		t.Fatal("the run has no archived batch to purge")
	}
	// A finished batch leaves its task only while asynq retains it.
	if n := countTasks(t, insp, run, insp.ListCompletedTasks); (n > 0) != (tasks.Retention > 0) {
		t.Fatalf("the run has %d completed batches with a task retention of %s", n, tasks.Retention)
	}
	otherTasks := countTasks(t, insp, other, insp.ListCompletedTasks)

	enqueue(t, env, "purge", run)

	dump := dumpRedis(t, rdb)
	var found []string
	for _, a := range gt.Addresses {
		if strings.Contains(dump, a.Address) {
			found = append(found, a.Address)
		}
	}
	if strings.Contains(dump, strings.ToLower(run)) {
		found = append(found, "the run ID")
	}
	if len(found) > 0 {
		sort.Strings(found)
		t.Errorf("after purge Redis still holds %d of the run's addresses, e.g. %v", len(found), found[:min(5, len(found))])
	}
	for _, a := range others[:5] {
		if !strings.Contains(dump, a) {
			t.Errorf("purge removed %s of the other run", a)
		}
	}
	if got := jsonReport(t, env, dir, other); len(got) != len(otherRows) {
		t.Errorf("the other run's report has %d rows after the purge, %d before", len(got), len(otherRows))
	}
	if n := countTasks(t, insp, other, insp.ListCompletedTasks); n != otherTasks {
		t.Errorf("the other run has %d completed tasks after the purge, %d before", n, otherTasks)
	}
}

func client(t testing.TB, url string) *redis.Client {
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func countTasks(t testing.TB, insp *asynq.Inspector, run string, list func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error)) int {
	t.Helper()
	n := 0
	for i := 0; i < tasks.Lanes; i++ {
		infos, err := list(tasks.LaneQueue(i), asynq.PageSize(10000))
		if err != nil {
			continue // a lane never used
		}
		for _, ti := range infos {
			if strings.HasPrefix(ti.ID, run+":") {
				n++
			}
		}
	}
	return n
}
