package worker

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/msaudit/msaudit/internal/checker"
	"github.com/msaudit/msaudit/internal/ratelimit"
	"github.com/msaudit/msaudit/internal/redistest"
	"github.com/msaudit/msaudit/internal/runqueue"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/submit"
	"github.com/msaudit/msaudit/tasks"
)

// gatedRealm is a fake realm service that answers a request only once the
// test lets it: each request takes a token (allow), and the test can wait
// for a number of requests to have arrived.
type gatedRealm struct {
	tokens chan struct{}

	mu      sync.Mutex
	arrived int
	waiters []requestsWait
}

func newGatedRealm(tb testing.TB) (*gatedRealm, string) {
	g := &gatedRealm{tokens: make(chan struct{}, 100000)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.arrive()
		select {
		case <-g.tokens:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("x-ms-request-id", "rq")
		w.Write([]byte(`{"NameSpaceType":"Managed","IsMicrosoftAccountSet":true,"MicrosoftAccount":1}`))
	}))
	tb.Cleanup(srv.Close)
	return g, srv.URL + "/common/userrealm"
}

func (g *gatedRealm) arrive() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.arrived++
	kept := g.waiters[:0]
	for _, w := range g.waiters {
		if g.arrived >= w.n {
			close(w.reached)
		} else {
			kept = append(kept, w)
		}
	}
	g.waiters = kept
}

// allow lets n more requests be answered.
func (g *gatedRealm) allow(n int) {
	for i := 0; i < n; i++ {
		g.tokens <- struct{}{}
	}
}

// waitArrived waits until n requests have arrived in all.
func (g *gatedRealm) waitArrived(tb testing.TB, n int) {
	tb.Helper()
	w := requestsWait{n: n, reached: make(chan struct{})}
	g.mu.Lock()
	if g.arrived >= n {
		g.mu.Unlock()
		return
	}
	g.waiters = append(g.waiters, w)
	g.mu.Unlock()
	select {
	case <-w.reached:
	case <-time.After(time.Minute):
		tb.Fatalf("the realm did not get %d requests", n)
	}
}

// restoreRig is one worker on a Redis of its own, which the test saves and
// restores, against a gated realm.
type restoreRig struct {
	srv   *redistest.Server
	rdb   *redis.Client
	store *runstore.Store
	sub   *submit.Submitter
	rec   *submit.Reconciler
	realm *gatedRealm
	w     *Worker
}

func newRestoreRig(t *testing.T, cfg Config) *restoreRig {
	t.Helper()
	srv := redistest.StartT(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	g, url := newGatedRealm(t)
	cfg.Concurrency, cfg.RealmURL, cfg.RealmTimeout = 4, url, time.Minute
	cfg.Limits = ratelimit.Config{TenantRate: 1000, Initial: 1000, MaxWait: 2 * time.Second}
	cfg.Checker = checker.Config{MaxAttempts: 5, BackoffBase: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond}
	cfg.ShutdownTimeout = time.Second
	w, err := New(rdb, cfg, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	store := runstore.New(rdb)
	sub := &submit.Submitter{Store: store, Queue: asynq.NewClientFromRedisClient(rdb), Log: zap.NewNop()}
	return &restoreRig{srv: srv, rdb: rdb, store: store, sub: sub, realm: g, w: w,
		rec: &submit.Reconciler{Submitter: sub, Queue: runqueue.New(rdb), BatchSize: 50}}
}

// submitRun queues n addresses in batches of 50 and returns the run ID.
func (r *restoreRig) submitRun(t *testing.T, n int) string {
	t.Helper()
	id := runstore.NewRunID(time.Now())
	_, err := r.sub.Submit(context.Background(), submit.Request{
		Run: runstore.Run{ID: id, TenantID: "contoso", Source: "file", Retention: time.Hour}, BatchSize: 50,
	}, func(_ context.Context, emit submit.Emit) error {
		cands := make([]submit.Candidate, n)
		for i := range cands {
			cands[i] = submit.Candidate{Address: fmt.Sprintf("user%d@contoso.example", i)}
		}
		return emit(0, cands)
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// checked waits until the run has at least n addresses checked.
func (r *restoreRig) checked(t *testing.T, run string, n int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := r.store.GetRun(context.Background(), run)
		if err == nil && got.Checked >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s: %d checked, want %d (%v)", run, got.Checked, n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// save saves Redis to disk, once the worker's watch has looked at it: a
// failover before its first look is one it cannot tell.
func (r *restoreRig) save(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for r.rdb.Get(context.Background(), "msaudit:redis:marker").Val() == "" {
		if time.Now().After(deadline) {
			t.Fatal("the worker's watch never looked at Redis")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := r.rdb.Save(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
}

// restore brings Redis back to what it saved last: it is killed, so
// nothing written since reaches its disk, and started again on the same
// port.
func (r *restoreRig) restore(t *testing.T) {
	t.Helper()
	r.srv.Kill()
	if err := r.srv.Restart(); err != nil {
		t.Fatal(err)
	}
}

// stranded returns the run's pending addresses that no live task carries.
func (r *restoreRig) stranded(t *testing.T, run string) int {
	t.Helper()
	ctx := context.Background()
	pending, err := r.store.PendingAddresses(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	rr, err := r.store.GetRun(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	err = r.rec.Queue.LivePayloads(ctx, run, rr.Lane, func(payload []byte) {
		p, err := tasks.DecodeCheckBatch(payload)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Entries {
			delete(pending, e.Address)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return len(pending)
}

// waitCompleted waits up to limit for the run to complete; on timeout it
// fails, saying how many pending addresses no task carries.
func (r *restoreRig) waitCompleted(t *testing.T, run string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		got, err := r.store.GetRun(context.Background(), run)
		if err == nil && got.State() == runstore.StateCompleted {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s not completed after %s: %d of %d checked, %d pending addresses carried by no task",
				run, limit, got.Checked, got.AddressesTotal, r.stranded(t, run))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// noticed waits until the worker noticed n Redis failovers.
func (r *restoreRig) noticed(t *testing.T, n uint64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for r.w.watch.Failovers() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the worker noticed %d failovers, want %d", r.w.watch.Failovers(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLateAcknowledgementAfterARestore: a batch is running when Redis is
// saved; the worker records part of its answers, then Redis is restored to
// the copy (those answers are gone, the batch is active again with its
// lease), and 'reconcile' runs at once: the batch still holds the
// addresses, so it requeues nothing. Then the batch's last answers come in
// and the worker would acknowledge it as done, removing the task that
// carries the addresses whose answers the restore erased. Having noticed
// the restore, it checks the batch again first: the run completes, with no
// reconcile after the restore's (its own comes only after an hour here).
func TestLateAcknowledgementAfterARestore(t *testing.T) {
	t.Parallel()
	r := newRestoreRig(t, Config{settle: time.Hour})
	run := r.submitRun(t, 50)
	r.realm.waitArrived(t, 1) // the batch is active, with its lease
	r.save(t)
	r.realm.allow(10)
	r.checked(t, run, 10)
	r.restore(t)
	if got, err := r.store.GetRun(context.Background(), run); err != nil || got.Checked != 0 {
		t.Fatalf("after the restore: %+v, %v; want nothing checked", got, err)
	}
	res, err := r.rec.Reconcile(context.Background(), run)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("reconcile right after the restore: %d leaseless, %d requeued", res.Leaseless, res.Requeued)
	r.noticed(t, 1)
	r.realm.allow(1000)
	r.waitCompleted(t, run, 30*time.Second)
}

// TestReconcileAfterAFailover: Redis restarts with a batch running and
// another waiting, and the waiting one is lost (as a rollback loses tasks,
// or a late acknowledgement removes one before the workers notice the
// failover). No periodic reconcile runs; the worker's reconcile after the
// failover queues the lost batch's addresses again and the run completes.
func TestReconcileAfterAFailover(t *testing.T) {
	t.Parallel()
	r := newRestoreRig(t, Config{settle: 2 * time.Second})
	run := r.submitRun(t, 500)
	// Four batches running (the worker's slots), each with its requests
	// in flight; six waiting.
	r.realm.waitArrived(t, 4*checker.InFlightPerBatch)
	r.save(t)
	r.restore(t)
	got, err := r.store.GetRun(context.Background(), run)
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(r.rdb)
	pending, err := insp.ListPendingTasks(tasks.LaneQueue(got.Lane))
	if err != nil || len(pending) == 0 {
		t.Fatalf("pending tasks after the restart: %d, %v", len(pending), err)
	}
	if err := insp.DeleteTask(tasks.LaneQueue(got.Lane), pending[0].ID); err != nil {
		t.Fatal(err)
	}
	if n := r.stranded(t, run); n != 50 {
		t.Fatalf("%d addresses carried by no task, want 50", n)
	}
	r.realm.allow(100000)
	r.waitCompleted(t, run, time.Minute)
	if n := r.w.watch.Failovers(); n != 1 {
		t.Errorf("the worker noticed %d failovers, want 1", n)
	}
}
