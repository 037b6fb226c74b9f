package ratelimit

import (
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msaudit/msaudit/internal/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

func newLimiter(t *testing.T, rdb *redis.Client, cfg Config) *Limiter {
	t.Helper()
	l, err := New(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestReservationsAreEvenlySpaced takes many slots at once, as many worker
// processes would: slot times must be spaced 1/rate apart, never bunched.
func TestReservationsAreEvenlySpaced(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	l := newLimiter(t, rdb, Config{TenantRate: 50, MaxWait: time.Hour})
	var mu sync.Mutex
	var waits []time.Duration
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				r, err := l.Reserve(t.Context(), "t")
				if err != nil || !r.OK {
					t.Error(r, err)
					return
				}
				mu.Lock()
				waits = append(waits, r.Wait)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Slice(waits, func(i, j int) bool { return waits[i] < waits[j] })
	// 200 slots at 50/s span ~4s; the last is about 199 intervals out.
	last := waits[len(waits)-1]
	if last < 3800*time.Millisecond || last > 4100*time.Millisecond {
		t.Errorf("last slot %s ahead, want about 3.98s", last)
	}
	for i := 1; i < len(waits); i++ {
		// Calls take real time, so a gap can be shorter than 20ms by the
		// time between two calls, never by more.
		if gap := waits[i] - waits[i-1]; gap > 21*time.Millisecond {
			t.Fatalf("gap %s between slots %d and %d", gap, i-1, i)
		}
	}
}

func TestFarSlotIsNotTaken(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	l := newLimiter(t, rdb, Config{TenantRate: 1, MaxWait: 500 * time.Millisecond})
	ctx := t.Context()
	if r, _ := l.Reserve(ctx, "t"); !r.OK || r.Wait != 0 {
		t.Fatalf("first = %+v", r)
	}
	r, _ := l.Reserve(ctx, "t")
	if r.OK || r.Wait < 400*time.Millisecond || r.Wait > 500*time.Millisecond {
		t.Fatalf("second = %+v, want refused with ~0.5s to wait", r)
	}
	// The refusal consumed nothing: another tenant is unaffected, and the
	// same tenant's next slot is still 1s after the first.
	if r, _ := l.Reserve(ctx, "other"); !r.OK || r.Wait != 0 {
		t.Errorf("other tenant = %+v", r)
	}
}

func TestGlobalCeilingSpansTenants(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	l := newLimiter(t, rdb, Config{TenantRate: 100, GlobalRate: 10, MaxWait: time.Hour})
	ctx := t.Context()
	var last time.Duration
	for i := 0; i < 10; i++ {
		r, _ := l.Reserve(ctx, []string{"a", "b"}[i%2])
		last = r.Wait
	}
	if last < 850*time.Millisecond {
		t.Errorf("10th slot over two tenants at a global 10/s is %s ahead, want ~0.9s", last)
	}
}

func TestFixedRateIgnoresThrottles(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	l := newLimiter(t, rdb, Config{TenantRate: 7, MaxWait: time.Hour})
	ctx := t.Context()
	if p, _ := l.Throttled(ctx, "t", 0, Reservation{}); p != 0 {
		t.Errorf("pause = %s", p)
	}
	if r, _ := l.Reserve(ctx, "t"); r.Rate != 7 {
		t.Errorf("rate = %g", r.Rate)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []Config{
		{TenantRate: 0, MaxWait: time.Second},
		{TenantRate: 1, GlobalRate: -1, MaxWait: time.Second},
		{TenantRate: 1, Adaptive: true, MaxWait: time.Second},
		{TenantRate: 1},
	} {
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
