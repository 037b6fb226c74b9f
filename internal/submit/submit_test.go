package submit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/redistest"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/tasks"
)

// flakyQueue enqueues through q, but its failAt-th call (1-based) runs
// before and then fails, as a queue whose connection drops would.
type flakyQueue struct {
	q      Queue
	mu     sync.Mutex
	calls  int
	failAt int
	before func() // run at the failing call (nil: nothing)
}

func (f *flakyQueue) EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	f.mu.Lock()
	f.calls++
	fail := f.calls == f.failAt
	f.mu.Unlock()
	if fail {
		if f.before != nil {
			f.before()
		}
		return nil, errors.New("connection reset by peer")
	}
	return f.q.EnqueueContext(ctx, t, opts...)
}

func manyAddresses(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("user%03d@contoso.com", i)
	}
	return out
}

// queued returns, per address, how many live tasks of the run's lane carry it.
func queued(t *testing.T, rdb redis.UniversalClient, runID string) map[string]int {
	t.Helper()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	infos, err := insp.ListPendingTasks(tasks.LaneQueue(0), asynq.PageSize(1000))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, ti := range infos {
		p, err := tasks.DecodeCheckBatch(ti.Payload)
		if err != nil || p.RunID != runID {
			continue
		}
		for _, e := range p.Entries {
			out[e.Address]++
		}
	}
	return out
}

func checkQueuedOnce(t *testing.T, rdb redis.UniversalClient, runID string, addrs []string) {
	t.Helper()
	got := queued(t, rdb, runID)
	for _, a := range addrs {
		if got[a] != 1 {
			t.Errorf("%s is carried by %d tasks, want exactly 1", a, got[a])
		}
	}
	if len(got) != len(addrs) {
		t.Errorf("%d addresses queued, want %d", len(got), len(addrs))
	}
}

// TestSubmitResumesAfterTheQueueFails: the enqueue of the 3rd batch fails
// after the batch was written to the run store. The submit stops with the
// error and the run stays resumable; the resume enqueues the stored batch
// and the rest, and every address ends on exactly one task.
func TestSubmitResumesAfterTheQueueFails(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	rdb := redistest.Client(t)
	store := runstore.New(rdb)
	addrs := manyAddresses(95)
	run := runstore.Run{ID: runstore.NewRunID(time.Now()), TenantID: "t1", Source: "list", Retention: time.Hour}
	q := &flakyQueue{q: asynq.NewClientFromRedisClient(rdb), failAt: 3}
	sub := &Submitter{Store: store, Queue: q, Log: zap.NewNop()}

	_, err := sub.Submit(ctx, Request{Run: run, BatchSize: 10}, listSource(addrs))
	if err == nil || q.calls != 3 {
		t.Fatalf("submit: %v after %d enqueues, want the 3rd enqueue's error", err, q.calls)
	}
	r, err := store.GetRun(ctx, run.ID)
	if err != nil || r.State() != runstore.StateIncomplete || r.LastError == "" {
		t.Fatalf("run after the failure: %+v, %v; want incomplete with its error", r, err)
	}
	if unsent, _ := store.Unsent(ctx, run.ID); len(unsent) != 1 {
		t.Errorf("%d batches stored unsent, want the one whose enqueue failed", len(unsent))
	}

	if _, err := sub.Submit(ctx, Request{Run: run, Resume: true, BatchSize: 10}, listSource(addrs)); err != nil {
		t.Fatalf("resume: %v", err)
	}
	checkQueuedOnce(t, rdb, run.ID, addrs)
	if r, _ := store.GetRun(ctx, run.ID); r.AddressesTotal != int64(len(addrs)) || r.State() != runstore.StateRunning {
		t.Errorf("after the resume: %d addresses, state %s", r.AddressesTotal, r.State())
	}
}

// TestSubmitResumesAfterRedisGoesAway: Redis dies between writing a batch
// and enqueuing it, and comes back from its AOF. Nothing written before the
// crash is lost or sent twice: the resume sends the stored batch.
func TestSubmitResumesAfterRedisGoesAway(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv, err := redistest.Start("appendonly yes", "appendfsync always")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1})
	defer rdb.Close()
	store := runstore.New(rdb)
	addrs := manyAddresses(60)
	run := runstore.Run{ID: runstore.NewRunID(time.Now()), TenantID: "t1", Source: "list", Retention: time.Hour}
	q := &flakyQueue{q: asynq.NewClientFromRedisClient(rdb), failAt: 2, before: srv.Kill}
	sub := &Submitter{Store: store, Queue: q, Log: zap.NewNop()}
	if _, err := sub.Submit(ctx, Request{Run: run, BatchSize: 20}, listSource(addrs)); err == nil {
		t.Fatal("submit went on with Redis gone")
	}
	if err := srv.Restart("appendonly yes", "appendfsync always"); err != nil {
		t.Fatal(err)
	}
	// The dead submit could not release its lock: skip the wait for its
	// expiry (runstore.LockTTL) that the error message asks of an operator.
	if err := rdb.Del(ctx, "msaudit:run:"+run.ID+":lock").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Submit(ctx, Request{Run: run, Resume: true, BatchSize: 20}, listSource(addrs)); err != nil {
		t.Fatalf("resume: %v", err)
	}
	checkQueuedOnce(t, rdb, run.ID, addrs)
}
