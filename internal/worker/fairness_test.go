package worker

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/checker"
	"github.com/msaudit/msaudit/internal/ratelimit"
	"github.com/msaudit/msaudit/internal/redistest"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/submit"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// fairnessRig is an in-process worker against a fake realm service that
// answers every address "absent" after a short latency.
type fairnessRig struct {
	rdb   *redis.Client
	store *runstore.Store
	sub   *submit.Submitter
	w     *Worker

	mu      sync.Mutex
	asked   map[string]int          // the realm's requests per tenant
	waiting map[string]requestsWait // what requestsOf waits for
}

type requestsWait struct {
	n       int
	reached chan struct{}
}

// ask counts a request for addr (user@tenant.example) of its tenant.
func (r *fairnessRig) ask(addr string) {
	_, domain, _ := strings.Cut(addr, "@")
	tenant := strings.TrimSuffix(domain, ".example")
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked[tenant]++
	if w, ok := r.waiting[tenant]; ok && r.asked[tenant] >= w.n {
		close(w.reached)
		delete(r.waiting, tenant)
	}
}

// requestsOf waits until the realm got n requests of tenant.
func (r *fairnessRig) requestsOf(tb testing.TB, tenant string, n int) {
	tb.Helper()
	w := requestsWait{n: n, reached: make(chan struct{})}
	r.mu.Lock()
	if r.asked[tenant] >= n {
		r.mu.Unlock()
		return
	}
	r.waiting[tenant] = w
	r.mu.Unlock()
	select {
	case <-w.reached:
	case <-time.After(2 * time.Minute):
		r.mu.Lock()
		defer r.mu.Unlock()
		tb.Fatalf("the realm got %d requests of %s, want %d", r.asked[tenant], tenant, n)
	}
}

func newFairnessRig(tb testing.TB, rate float64) *fairnessRig {
	tb.Helper()
	rig := &fairnessRig{asked: make(map[string]int), waiting: make(map[string]requestsWait)}
	realmSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rig.ask(r.URL.Query().Get("user"))
		time.Sleep(2 * time.Millisecond)
		w.Header().Set("x-ms-request-id", "rq")
		w.Write([]byte(`{"NameSpaceType":"Managed","IsMicrosoftAccountSet":true,"MicrosoftAccount":1}`))
	}))
	tb.Cleanup(realmSrv.Close)
	rdb := redistest.Client(tb)
	w, err := New(rdb, Config{
		Concurrency: 8, RealmURL: realmSrv.URL + "/common/userrealm", RealmTimeout: 2 * time.Second,
		Limits:          ratelimit.Config{TenantRate: rate, MaxWait: 2 * time.Second},
		Checker:         checker.Config{MaxAttempts: 3, BackoffBase: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond},
		ShutdownTimeout: time.Second,
	}, zap.NewNop(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(w.Shutdown)
	store := runstore.New(rdb)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	rig.rdb, rig.store, rig.w = rdb, store, w
	rig.sub = &submit.Submitter{Store: store, Queue: asynq.NewClientFromRedisClient(rdb), Log: zap.NewNop(), ChooseLane: submit.LeastBusyLane(insp)}
	return rig
}

// submitRun queues n addresses of tenant and returns the run ID.
func (r *fairnessRig) submitRun(tb testing.TB, tenant string, n int) string {
	tb.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("user%d@%s.example", i, tenant)
	}
	id := runstore.NewRunID(time.Now())
	_, err := r.sub.Submit(context.Background(), submit.Request{
		Run: runstore.Run{ID: id, TenantID: tenant, Source: "file", Retention: time.Hour}, BatchSize: 50,
	}, func(_ context.Context, emit submit.Emit) error {
		cands := make([]submit.Candidate, len(addrs))
		for i, a := range addrs {
			cands[i] = submit.Candidate{Address: a}
		}
		return emit(0, cands)
	})
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// waitCompleted polls until the run completes and returns the time it took
// since start, and the big run's progress at that moment (if big != "").
func (r *fairnessRig) waitCompleted(tb testing.TB, id string, start time.Time, big string) (time.Duration, *runstore.Run) {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		run, err := r.store.GetRun(context.Background(), id)
		if err != nil {
			tb.Fatal(err)
		}
		if run.State() == runstore.StateCompleted {
			took := run.CompletedAt.Sub(start)
			var b *runstore.Run
			if big != "" {
				b, _ = r.store.GetRun(context.Background(), big)
			}
			return took, b
		}
		if time.Now().After(deadline) {
			tb.Fatalf("run %s not completed: %+v", id, run)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSmallRunIsNotQueuedBehindALargeOne: a 500-address run submitted while a
// 20,000-address run of another tenant is in progress completes while the
// large run is still far from done — it is not processed after it.
func TestSmallRunIsNotQueuedBehindALargeOne(t *testing.T) {
	t.Parallel()
	r := newFairnessRig(t, 100)
	big := r.submitRun(t, "tenant-big", 20000)
	// The big run occupies the workers: the realm got a second of its
	// requests.
	r.requestsOf(t, "tenant-big", 100)
	start := time.Now()
	small := r.submitRun(t, "tenant-small", 500)
	took, b := r.waitCompleted(t, small, start, big)
	t.Logf("small run completed in %s; the big run had %d of %d addresses checked", took, b.Checked, b.AddressesTotal)
	if b.Checked > b.AddressesTotal/4 {
		t.Errorf("the small run finished only after %d of %d addresses of the big run", b.Checked, b.AddressesTotal)
	}
	if sr, _ := r.store.GetRun(context.Background(), small); sr.Lane == b.Lane {
		t.Errorf("both runs in lane %d", sr.Lane)
	}
}

// BenchmarkFairness prints how much longer a 500-address run takes while a
// 20,000-address run of another tenant is in progress than alone, at the same
// per-tenant ceiling (the bar: within 2x).
func BenchmarkFairness(b *testing.B) {
	for b.Loop() {
		alone := func() time.Duration {
			r := newFairnessRig(b, 100)
			start := time.Now()
			id := r.submitRun(b, "tenant-small", 500)
			took, _ := r.waitCompleted(b, id, start, "")
			return took
		}()
		r := newFairnessRig(b, 100)
		big := r.submitRun(b, "tenant-big", 20000)
		time.Sleep(2 * time.Second)
		start := time.Now()
		small := r.submitRun(b, "tenant-small", 500)
		with, br := r.waitCompleted(b, small, start, big)
		fmt.Printf("fairness: small run alone %s, beside a 20,000-address run %s: ratio %.2f (big run at %d/%d)\n",
			alone.Round(time.Millisecond), with.Round(time.Millisecond), with.Seconds()/alone.Seconds(), br.Checked, br.AddressesTotal)
		b.ReportMetric(with.Seconds()/alone.Seconds(), "with/alone")
	}
}
