package runqueue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/msaudit/msaudit/internal/redistest"
	"github.com/msaudit/msaudit/tasks"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

type testBundle struct {
	rdb   *redis.Client
	queue Queue
	cli   *asynq.Client
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	rdb := redistest.Client(t)
	cli := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { cli.Close() })
	return &testBundle{rdb: rdb, queue: New(rdb), cli: cli}
}

// enqueue queues n batches of the run in lane 0, each with one address.
func (b *testBundle) enqueue(t *testing.T, runID string, n int, opts ...asynq.Option) {
	t.Helper()
	for i := 0; i < n; i++ {
		task, err := tasks.NewCheckBatchTask(tasks.CheckBatchPayload{RunID: runID, TenantID: "t1", Batch: i,
			Entries: []tasks.Entry{{Address: fmt.Sprintf("%s.%d@contoso.com", runID, i)}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.cli.Enqueue(task, opts...); err != nil {
			t.Fatal(err)
		}
	}
}

// count is how many tasks of the run are in lane 0, in any state.
func (b *testBundle) count(t *testing.T, runID string) int {
	t.Helper()
	ts, err := list(t.Context(), b.rdb, tasks.LaneQueue(0), runPrefix(runID), allLists, restingSets)
	if err != nil {
		t.Fatal(err)
	}
	return len(ts)
}

var errBounce = errors.New("rate limited")

// TestPurgeWhileTasksMove: a run's batches that a worker keeps bouncing
// through the queue — pending, active, retry, pending again, as a
// rate-limited batch does — are all deleted by one Purge, however they
// move while it looks; another run's are left alone.
func TestPurgeWhileTasksMove(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const run, other = "20260101T000000Z-aaaaaa", "20260101T000000Z-bbbbbb"
	b.enqueue(t, run, 60)
	b.enqueue(t, other, 5, asynq.ProcessIn(time.Hour))

	var handled atomic.Int64
	srv := asynq.NewServerFromRedisClient(b.rdb, asynq.Config{
		Concurrency:              8,
		Queues:                   map[string]int{tasks.LaneQueue(0): 1},
		DelayedTaskCheckInterval: 10 * time.Millisecond,
		TaskCheckInterval:        time.Millisecond,
		RetryDelayFunc:           func(int, error, *asynq.Task) time.Duration { return time.Millisecond },
		IsFailure:                func(error) bool { return false },
		LogLevel:                 asynq.FatalLevel,
	})
	err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		handled.Add(1)
		return errBounce
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	// Until every batch went round a few times.
	for deadline := time.Now().Add(time.Minute); handled.Load() < 300; {
		if time.Now().After(deadline) {
			t.Fatalf("the worker handled only %d batches in a minute", handled.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}

	deleted, running, err := b.queue.Purge(t.Context(), run, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if left := b.count(t, run); left != 0 || running != 0 {
		t.Errorf("after Purge %d of the run's 60 tasks are left (%d said running, %d deleted)", left, running, deleted)
	}
	if n := b.count(t, other); n != 5 {
		t.Errorf("the other run has %d tasks after the purge, want 5", n)
	}
}
