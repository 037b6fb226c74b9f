package checker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/ratelimit"
	"github.com/msaudit/msaudit/internal/realm"
	"github.com/msaudit/msaudit/internal/redistest"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/runstore/runstoretest"
	"github.com/msaudit/msaudit/tasks"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// fakeRealm answers from a script per address and counts calls.
type fakeRealm struct {
	mu      sync.Mutex
	calls   map[string]int
	answers map[string][]error // per call; nil error = absent, errPresent = present
}

var errPresent = errors.New("present")

func (f *fakeRealm) Check(_ context.Context, addr string) (realm.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.calls[addr]
	f.calls[addr]++
	res := realm.Result{RequestID: "rq", CheckedAt: time.Now()}
	script := f.answers[addr]
	var err error
	if n < len(script) {
		err = script[n]
	}
	switch {
	case err == nil:
		res.Status = realm.Absent
		return res, nil
	case err == errPresent:
		res.Status = realm.Present
		return res, nil
	}
	return res, err
}

func setup(t *testing.T, rdb *redis.Client, lim ratelimit.Config, fr *fakeRealm, addrs ...string) (*Handler, tasks.CheckBatchPayload) {
	t.Helper()
	st := runstore.New(rdb)
	run := runstoretest.NewRun(t, st, runstoretest.Run{Addresses: addrs, BatchSize: len(addrs)})
	p := run.Batches[0]
	l, err := ratelimit.New(rdb, lim)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(st, l, fr, Config{MaxAttempts: 3, BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

var fastLimits = ratelimit.Config{TenantRate: 1000, MaxWait: time.Second}

func task(t *testing.T, p tasks.CheckBatchPayload) *asynq.Task {
	tk, err := tasks.NewCheckBatchTask(p)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestRetriesOnlyUnansweredAddresses(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	boom := errors.New("no answer: HTTP 500")
	fr := &fakeRealm{calls: map[string]int{}, answers: map[string][]error{
		"a@x.com": {errPresent},
		"b@x.com": {boom, nil},
		"c@x.com": {boom, boom, boom},
	}}
	h, p := setup(t, rdb, fastLimits, fr, "a@x.com", "b@x.com", "c@x.com")
	ctx := t.Context()

	err := h.ProcessTask(ctx, task(t, p))
	var d *deferError
	if !errors.As(err, &d) || d.rateLimited || !IsFailure(err) {
		t.Fatalf("first pass: %v, want a failure deferral", err)
	}
	if RetryDelay(0, err, nil) > 50*time.Millisecond {
		t.Errorf("retry delay %s exceeds --backoff-max", RetryDelay(0, err, nil))
	}
	if err := h.ProcessTask(ctx, task(t, p)); !errors.As(err, &d) {
		t.Fatalf("second pass: %v", err)
	}
	err = h.ProcessTask(ctx, task(t, p))
	if !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("third pass: %v, want archive (SkipRetry) for the dead-lettered address", err)
	}
	if err := h.ProcessTask(ctx, task(t, p)); err != nil {
		t.Fatalf("re-delivery after the end: %v", err)
	}
	want := map[string]int{"a@x.com": 1, "b@x.com": 2, "c@x.com": 3}
	for a, n := range want {
		if fr.calls[a] != n {
			t.Errorf("%s checked %d times, want %d", a, fr.calls[a], n)
		}
	}
	r, _ := h.store.GetRun(ctx, p.RunID)
	if r.Present != 1 || r.Absent != 1 || r.DeadLettered != 1 || r.State() != runstore.StateCompleted {
		t.Errorf("run = %+v", r)
	}
}

func TestThrottleStopsTheBatch(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	fr := &fakeRealm{calls: map[string]int{}, answers: map[string][]error{
		"b@x.com": {&realm.ThrottleError{Reason: "MicrosoftAccount 2"}},
	}}
	// 20/s: c's slot comes 50 ms after b's throttle answer, which must
	// stop the batch although c's slot was reserved before it arrived.
	h, p := setup(t, rdb, ratelimit.Config{TenantRate: 20, MaxWait: time.Second}, fr, "a@x.com", "b@x.com", "c@x.com")
	err := h.ProcessTask(t.Context(), task(t, p))
	var d *deferError
	if !errors.As(err, &d) || d.rateLimited {
		t.Fatalf("err = %v, want the throttle's deferral", err)
	}
	if fr.calls["c@x.com"] != 0 {
		t.Error("the batch went on after a throttle signal")
	}
	if err := h.ProcessTask(t.Context(), task(t, p)); err != nil {
		t.Fatalf("second pass: %v", err)
	}
	if fr.calls["a@x.com"] != 1 || fr.calls["b@x.com"] != 2 || fr.calls["c@x.com"] != 1 {
		t.Errorf("calls = %v", fr.calls)
	}
}

func TestRateLimitWaitIsNotAFailure(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	fr := &fakeRealm{calls: map[string]int{}}
	// 2 requests/s with 100ms max wait: the second address must yield.
	h, p := setup(t, rdb, ratelimit.Config{TenantRate: 2, MaxWait: 100 * time.Millisecond}, fr, "a@x.com", "b@x.com")
	err := h.ProcessTask(t.Context(), task(t, p))
	var d *deferError
	if !errors.As(err, &d) || !d.rateLimited || IsFailure(err) {
		t.Fatalf("err = %v, want a rate-limit deferral that is not a failure", err)
	}
	if d.delay < 300*time.Millisecond || d.delay > time.Second {
		t.Errorf("deferral %s, want about the 400ms until the next slot", d.delay)
	}
	if fr.calls["b@x.com"] != 0 {
		t.Error("b was checked without a slot")
	}
	st, _ := h.store.LoadBatch(t.Context(), p.RunID, []string{"b@x.com"})
	if st.Addresses[0].Attempts != 0 {
		t.Errorf("waiting for the limiter cost an attempt: %+v", st.Addresses[0])
	}
}

// A wait for the limiter no longer than WaitInPlace is slept in the
// batch's slot: the batch finishes in one delivery.
func TestShortRateLimitWaitIsSleptInPlace(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	fr := &fakeRealm{calls: map[string]int{}}
	h, p := setup(t, rdb, ratelimit.Config{TenantRate: 2, MaxWait: 100 * time.Millisecond}, fr, "a@x.com", "b@x.com", "c@x.com")
	h.cfg.WaitInPlace = 2 * time.Second
	if err := h.ProcessTask(t.Context(), task(t, p)); err != nil {
		t.Fatalf("err = %v, want the batch done in one delivery", err)
	}
	if r, _ := h.store.GetRun(t.Context(), p.RunID); r.Checked != 3 || r.State() != runstore.StateCompleted {
		t.Errorf("run = %+v", r)
	}
}

// gatedRealm holds every request until open is closed, and keeps the most
// requests it saw in flight at once.
type gatedRealm struct {
	mu         sync.Mutex
	now, peak  int
	full, open chan struct{} // full: closed the first time InFlightPerBatch are in flight
	fullOnce   sync.Once
	arrived    chan struct{} // a token per request, with room for all
}

func (g *gatedRealm) Check(ctx context.Context, addr string) (realm.Result, error) {
	g.arrived <- struct{}{}
	g.mu.Lock()
	g.now++
	g.peak = max(g.peak, g.now)
	if g.now == InFlightPerBatch {
		g.fullOnce.Do(func() { close(g.full) })
	}
	g.mu.Unlock()
	defer func() { g.mu.Lock(); g.now--; g.mu.Unlock() }()
	select {
	case <-g.open:
	case <-ctx.Done():
		return realm.Result{}, ctx.Err()
	}
	return realm.Result{Status: realm.Absent, RequestID: "rq", CheckedAt: time.Now()}, nil
}

// A batch keeps InFlightPerBatch requests in flight, and no more: one
// request at a time would cap a batch at 1/latency requests a second.
func TestBatchKeepsRequestsInFlight(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	var addrs []string
	for i := 0; i < 3*InFlightPerBatch; i++ {
		addrs = append(addrs, fmt.Sprintf("a%d@x.com", i))
	}
	h, p := setup(t, rdb, fastLimits, nil, addrs...)
	g := &gatedRealm{full: make(chan struct{}), open: make(chan struct{}), arrived: make(chan struct{}, len(addrs))}
	h.realm = g
	waiting := make(chan int, 1)
	h.roomWait = func(inFlight int) {
		select {
		case waiting <- inFlight:
		default:
		}
	}
	done := make(chan error, 1)
	go func() { done <- h.ProcessTask(t.Context(), task(t, p)) }()
	select {
	case <-g.full:
	case err := <-done:
		t.Fatalf("the batch ended (%v) before %d requests were in flight", err, InFlightPerBatch)
	case <-time.After(10 * time.Second):
		g.mu.Lock()
		t.Fatalf("%d requests in flight at most, want %d", g.peak, InFlightPerBatch)
	}
	// Room for a request too many: the pass sends nothing more until one
	// ends, and what it sent reaches the realm before any is answered.
	var sent int
	select {
	case sent = <-waiting:
	case <-time.After(10 * time.Second):
		g.mu.Lock()
		t.Fatalf("the pass never waited for room (%d requests in flight at most)", g.peak)
	}
	for range sent {
		<-g.arrived
	}
	close(g.open)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if g.peak != InFlightPerBatch {
		t.Errorf("%d requests in flight at once, want at most %d", g.peak, InFlightPerBatch)
	}
	if r, _ := h.store.GetRun(t.Context(), p.RunID); r.Checked != int64(len(addrs)) {
		t.Errorf("checked %d of %d", r.Checked, len(addrs))
	}
}

// TestLastRetryRateLimitedIsNotArchived runs a real asynq server: a task on
// its last retry (MaxRetry 0) that is rate-limited must wait, not be archived.
func TestLastRetryRateLimitedIsNotArchived(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	fr := &fakeRealm{calls: map[string]int{}}
	h, p := setup(t, rdb, ratelimit.Config{TenantRate: 4, MaxWait: 50 * time.Millisecond}, fr, "a@x.com", "b@x.com", "c@x.com")
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: 1, Queues: tasks.Queues(), RetryDelayFunc: RetryDelay, IsFailure: IsFailure,
		LogLevel: asynq.FatalLevel,
	})
	// Each delivery's outcome, as asynq gets it.
	delivered := make(chan error, 1)
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypeCheckBatch, func(ctx context.Context, tk *asynq.Task) error {
		err := h.ProcessTask(ctx, tk)
		delivered <- err
		return err
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	cl := asynq.NewClientFromRedisClient(rdb)
	tk := task(t, p)
	if _, err := cl.Enqueue(asynq.NewTask(tk.Type(), tk.Payload()), asynq.Queue(tasks.LaneQueue(0)), asynq.MaxRetry(0)); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	select {
	case err := <-delivered:
		// On the last retry asynq archives a task that returns any error,
		// a deferral that is not a failure included.
		if err != nil {
			t.Fatalf("the rate-limited task was archived: its last retry returned %v", err)
		}
	case <-time.After(30 * time.Second):
		r, _ := h.store.GetRun(t.Context(), p.RunID)
		t.Fatalf("run not completed: %+v", r)
	}
	if r, _ := h.store.GetRun(t.Context(), p.RunID); r.State() != runstore.StateCompleted {
		t.Fatalf("run not completed: %+v", r)
	}
	q, _ := insp.GetQueueInfo(tasks.LaneQueue(0))
	if q.Archived != 0 || fr.calls["a@x.com"]+fr.calls["b@x.com"]+fr.calls["c@x.com"] != 3 {
		t.Errorf("archived %d, calls %v", q.Archived, fr.calls)
	}
}

func TestBackoffFullJitter(t *testing.T) {
	t.Parallel()
	maxRnd := func(n int64) int64 { return n - 1 }
	for _, tt := range []struct {
		attempt int
		want    time.Duration
	}{{0, time.Second}, {1, time.Second}, {2, 2 * time.Second}, {4, 8 * time.Second}, {10, 30 * time.Second}, {100, 30 * time.Second}} {
		if got := Backoff(tt.attempt, time.Second, 30*time.Second, maxRnd); got != tt.want {
			t.Errorf("Backoff(%d) upper bound = %s, want %s", tt.attempt, got, tt.want)
		}
	}
	if got := Backoff(5, time.Second, 30*time.Second, func(int64) int64 { return 0 }); got != 0 {
		t.Errorf("lower bound = %s, want 0 (full jitter)", got)
	}
}

// A batch whose worker died (asynq recovers it when its lease expires) or
// that met a Redis error comes back within a second at first, and never
// later than a minute however often it failed.
func TestFailedBatchRetriesSoon(t *testing.T) {
	t.Parallel()
	lease := errors.New("asynq: task lease expired")
	for i := 0; i < 100; i++ {
		if d := RetryDelay(0, lease, nil); d > taskRetryBase {
			t.Fatalf("first retry after %s", d)
		}
		if d := RetryDelay(1000, lease, nil); d > taskRetryMax {
			t.Fatalf("1000th retry after %s", d)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	bad := []Config{
		{MaxAttempts: 0, BackoffBase: time.Second, BackoffMax: time.Second},
		{MaxAttempts: 1, BackoffBase: 0, BackoffMax: time.Second},
		{MaxAttempts: 1, BackoffBase: 2 * time.Second, BackoffMax: time.Second},
	}
	for _, c := range bad {
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
