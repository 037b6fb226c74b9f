package ratelimit

import (
	"context"
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
				r, err := l.Reserve(context.Background(), "t")
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
	rdb := redistest.Client(t)
	l := newLimiter(t, rdb, Config{TenantRate: 1, MaxWait: 500 * time.Millisecond})
	ctx := context.Background()
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
	rdb := redistest.Client(t)
	l := newLimiter(t, rdb, Config{TenantRate: 100, GlobalRate: 10, MaxWait: time.Hour})
	ctx := context.Background()
	var last time.Duration
	for i := 0; i < 10; i++ {
		r, _ := l.Reserve(ctx, []string{"a", "b"}[i%2])
		last = r.Wait
	}
	if last < 850*time.Millisecond {
		t.Errorf("10th slot over two tenants at a global 10/s is %s ahead, want ~0.9s", last)
	}
}

func TestThrottleCutsAndPauses(t *testing.T) {
	rdb := redistest.Client(t)
	l := newLimiter(t, rdb, Config{TenantRate: 100, Initial: 40, Adaptive: true, MaxWait: time.Hour})
	ctx := context.Background()
	r, _ := l.Reserve(ctx, "t")
	if r.Rate < 39 || r.Rate > 45 {
		t.Fatalf("initial rate %g, want ~40", r.Rate)
	}
	early, _ := l.Reserve(ctx, "t") // a slot given before the reaction
	if stale, _, _ := l.Stale(ctx, "t", early); stale {
		t.Fatal("a fresh slot is stale")
	}
	pause, err := l.Throttled(ctx, "t", 0, r.Epoch)
	if err != nil || pause != Pause {
		t.Fatalf("pause = %s, %v", pause, err)
	}
	if !l.Paused("t") {
		t.Error("this process does not know of the pause")
	}
	if stale, left, _ := l.Stale(ctx, "t", early); !stale || left < 900*time.Millisecond {
		t.Errorf("slot from before the reaction: stale=%v, %s of pause left", stale, left)
	}
	l2 := newLimiter(t, rdb, Config{TenantRate: 100, Initial: 40, Adaptive: true, MaxWait: time.Hour}) // another process
	r2, _ := l2.Reserve(ctx, "t")
	if r2.Wait < 900*time.Millisecond || r2.Epoch != r.Epoch+1 {
		t.Errorf("slot during the pause only %s ahead, epoch %d", r2.Wait, r2.Epoch)
	}
	r = r2
	if r.Rate > 40*SlowStartBackoff*1.05 {
		t.Errorf("rate after the first cut %g, want ~%g", r.Rate, 40*SlowStartBackoff)
	}
	// A report from a slot given before the cut came from a request already
	// in flight: no second cut, no longer pause.
	if p2, _ := l2.Throttled(ctx, "t", 0, r.Epoch-1); p2 > Pause {
		t.Errorf("in-flight report lengthened the pause to %s", p2)
	}
	l3 := newLimiter(t, rdb, Config{TenantRate: 100, Initial: 40, Adaptive: true, MaxWait: time.Hour}) // a third process
	if r3, _ := l3.Reserve(ctx, "t"); r3.Epoch != r.Epoch || r3.Rate < r.Rate*0.95 {
		t.Errorf("stale report changed the state: %+v after %+v", r3, r)
	}
	// A report of the current epoch right after the pause doubles it.
	if p3, _ := l2.Throttled(ctx, "t", 0, r.Epoch); p3 < Pause {
		t.Errorf("current-epoch report during the pause: pause %s", p3)
	}
	// Retry-After longer than the pause wins.
	if p, _ := l2.Throttled(ctx, "u", 5*time.Second, 0); p != 5*time.Second {
		t.Errorf("pause with Retry-After 5s = %s", p)
	}
}

// TestPauseLearnsTheServicePenalty: a throttle right after a pause ends
// means the pause was too short, not the rate too high: the pause doubles
// and the estimate stays. Later pauses decay, but not back to the one that
// proved too short.
func TestPauseLearnsTheServicePenalty(t *testing.T) {
	rdb := redistest.Client(t)
	l := newLimiter(t, rdb, Config{TenantRate: 1000, Initial: 100, Adaptive: true, MaxWait: time.Hour})
	ctx := context.Background()
	key := stateKey("p")
	// endPause moves the pause's end ago into the past, as if time passed.
	endPause := func(ago time.Duration) {
		t.Helper()
		now, err := rdb.Time(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		us := now.Add(-ago).UnixMicro()
		rdb.HSet(ctx, key, "until", us, "changed", us, "tat", us)
		l.mu.Lock()
		delete(l.paused, "p")
		l.mu.Unlock()
	}
	throttle := func() (Reservation, time.Duration) {
		t.Helper()
		r, err := l.Reserve(ctx, "p")
		if err != nil || !r.OK {
			t.Fatalf("reserve: %+v, %v", r, err)
		}
		p, err := l.Throttled(ctx, "p", 0, r.Epoch)
		if err != nil {
			t.Fatal(err)
		}
		return r, p
	}
	estimate := func() float64 {
		t.Helper()
		est, err := rdb.HGet(ctx, key, "est").Float64()
		if err != nil {
			t.Fatal(err)
		}
		return est
	}

	if _, p := throttle(); p != Pause {
		t.Fatalf("first pause %s, want %s", p, Pause)
	}
	est := estimate()
	endPause(300 * time.Millisecond)
	if _, p := throttle(); p != 2*Pause {
		t.Fatalf("throttle 300ms after the pause: pause %s, want %s", p, 2*Pause)
	}
	if got := estimate(); got != est {
		t.Errorf("a too-short pause changed the estimate from %g to %g", est, got)
	}
	// Clean events (long after the pause) decay the pause by 10 % each, down
	// to ShortPauseMargin times the 1s pause that proved too short.
	want := []time.Duration{1800, 1620, 1458, 1312, 1250, 1250}
	for i, w := range want {
		endPause(10 * time.Second)
		r, p := throttle()
		if d := p - w*time.Millisecond; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("clean event %d: pause %s, want %dms", i+1, p, w)
		}
		if got := estimate(); got < r.Rate*Margin*0.99 || got > r.Rate*Margin*1.01 {
			t.Errorf("clean event %d at rate %g: estimate %g, want %g", i+1, r.Rate, got, r.Rate*Margin)
		}
	}
}

func TestFixedRateIgnoresThrottles(t *testing.T) {
	rdb := redistest.Client(t)
	l := newLimiter(t, rdb, Config{TenantRate: 7, MaxWait: time.Hour})
	ctx := context.Background()
	if p, _ := l.Throttled(ctx, "t", 0, 0); p != 0 {
		t.Errorf("pause = %s", p)
	}
	if r, _ := l.Reserve(ctx, "t"); r.Rate != 7 {
		t.Errorf("rate = %g", r.Rate)
	}
}

func TestConfigValidate(t *testing.T) {
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
