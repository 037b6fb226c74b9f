package ratelimit

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// The adaptive tests run the scripts on miniredis, whose clock they set, so
// that seconds and days pass without sleeping.

type clockBundle struct {
	mr  *miniredis.Miniredis
	rdb *redis.Client
	now time.Time
	ctx context.Context
}

func setupClock(t *testing.T) *clockBundle {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	b := &clockBundle{mr: mr, rdb: rdb, now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), ctx: t.Context()}
	mr.SetTime(b.now)
	return b
}

func (b *clockBundle) advance(d time.Duration) {
	b.now = b.now.Add(d)
	b.mr.SetTime(b.now)
}

// limiter returns a limiter (a worker process) on the bundle's clock.
func (b *clockBundle) limiter(t *testing.T, cfg Config) *Limiter {
	t.Helper()
	if cfg.MaxWait == 0 {
		cfg.MaxWait = time.Hour
	}
	cfg.Adaptive = true
	l, err := New(b.rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	l.now = func() time.Time { return b.now }
	return l
}

func (b *clockBundle) reserve(t *testing.T, l *Limiter, tenant string) Reservation {
	t.Helper()
	r, err := l.Reserve(b.ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (b *clockBundle) throttled(t *testing.T, l *Limiter, tenant string, r Reservation) time.Duration {
	t.Helper()
	p, err := l.Throttled(b.ctx, tenant, 0, r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// field reads a number of a scope's state hash (0 if absent).
func (b *clockBundle) field(t *testing.T, key, name string) float64 {
	t.Helper()
	v, err := b.rdb.HGet(b.ctx, key, name).Float64()
	if err != nil && err != redis.Nil {
		t.Fatal(err)
	}
	return v
}

// sendFor takes slots at rate for d of the bundle's time, as busy workers
// do, and returns the last reservation.
func (b *clockBundle) sendFor(t *testing.T, l *Limiter, tenant string, d time.Duration) Reservation {
	t.Helper()
	end := b.now.Add(d)
	var r Reservation
	for b.now.Before(end) {
		r = b.reserve(t, l, tenant)
		if !r.OK {
			t.Fatalf("slot refused: %+v", r)
		}
		b.advance(max(r.Wait, time.Millisecond))
	}
	return r
}

func near(got, want, tolerance float64) bool { return math.Abs(got-want) <= tolerance*want }

func TestSlowStartGrowsWithUse(t *testing.T) {
	t.Parallel()
	b := setupClock(t)
	l := b.limiter(t, Config{TenantRate: 1000, Initial: 2})
	b.reserve(t, l, "t")
	// Idle time does not grow the rate: only slots taken do.
	b.advance(10 * time.Second)
	if r := b.reserve(t, l, "t"); r.Rate > 2*1.5 {
		t.Fatalf("rate %g after 10 idle seconds, want still about the initial 2/s", r.Rate)
	}
	// Slots taken for doublingTime at the rate double it: from 2/s, busy
	// for 3 s, about 2·2^3.
	r := b.sendFor(t, l, "t", 3*doublingTime)
	if r.Rate < 12 || r.Rate > 26 {
		t.Errorf("rate %g after 3 doubling times of use, want about 16", r.Rate)
	}
}

func TestThrottleEndsSlowStartAndPauses(t *testing.T) {
	t.Parallel()
	b := setupClock(t)
	l := b.limiter(t, Config{TenantRate: 1000, Initial: 40})
	other := b.limiter(t, Config{TenantRate: 1000, Initial: 40}) // another worker process
	r := b.reserve(t, l, "t")
	early := b.reserve(t, other, "t") // a slot given before the reaction
	if stale, _, _ := other.Stale(b.ctx, "t", early); stale {
		t.Fatal("a fresh slot is stale")
	}
	b.advance(300 * time.Millisecond)
	// The pause counts from the last request a worker may still send.
	if p := b.throttled(t, l, "t", r); p != firstPause+pauseGuard {
		t.Fatalf("pause %s, want %s", p, firstPause+pauseGuard)
	}
	if left := l.PausedFor("t"); left <= 0 || left > firstPause+pauseGuard {
		t.Error("the reporting process does not know of the pause")
	}
	if stale, left, _ := other.Stale(b.ctx, "t", early); !stale || left < firstPause-300*time.Millisecond {
		t.Errorf("slot from before the reaction: stale=%v, %s of pause left", stale, left)
	}
	// A report from a request already in flight at the reaction changes
	// nothing.
	if p := b.throttled(t, other, "t", early); p > firstPause+pauseGuard {
		t.Errorf("an in-flight report lengthened the pause to %s", p)
	}
	// The other process is held until the pause ends, then paced at the
	// first estimate: slowStartMargin of the rate that throttled.
	if r2 := b.reserve(t, other, "t"); r2.Wait < firstPause-400*time.Millisecond {
		t.Errorf("slot during the pause only %s ahead", r2.Wait)
	}
	b.advance(firstPause + pauseGuard)
	b.reserve(t, other, "t")
	want := r.Rate * slowStartMargin
	if got := b.field(t, stateKey("t"), "est"); !near(got, want, 0.01) {
		t.Errorf("estimate %g, want %g", got, want)
	}
	// Retry-After longer than the pause wins.
	if p, _ := l.Throttled(b.ctx, "u", 5*time.Second, b.reserve(t, l, "u")); p != 5*time.Second+pauseGuard {
		t.Errorf("pause with Retry-After 5s = %s", p)
	}
}

// TestSlowStartMarginFollowsTheBurstGuess: the slow-start margin is the
// one its comment derives from burstGuess and doublingTime, so that the
// first estimate lands on the capacity of a service whose burst allowance
// is the guess, not above it (a second throttle a few seconds later) nor
// below it (a probe's quiet time at a lower rate).
func TestSlowStartMarginFollowsTheBurstGuess(t *testing.T) {
	t.Parallel()
	burst := burstGuess.Seconds() / doublingTime.Seconds()
	excess := func(y float64) float64 { return (math.Exp2(y)-1)/math.Ln2 - y - burst }
	lo, hi := 0.0, 10.0
	for range 100 {
		if mid := (lo + hi) / 2; excess(mid) > 0 {
			hi = mid
		} else {
			lo = mid
		}
	}
	if want := math.Exp2(-lo); math.Abs(slowStartMargin-want) > 0.001 {
		t.Errorf("slowStartMargin %g, want %.3f for a burst of %s doubling every %s", slowStartMargin, want, burstGuess, doublingTime)
	}
}

// steady brings tenant out of slow start with the estimate rate and past
// its first pause.
func (b *clockBundle) steady(t *testing.T, l *Limiter, tenant string, rate float64) {
	t.Helper()
	r := b.reserve(t, l, tenant)
	r.Rate = rate / slowStartMargin
	p := b.throttled(t, l, tenant, r)
	b.advance(p + coincidence)
	b.reserve(t, l, tenant) // resolves the cut
	if got := b.field(t, stateKey(tenant), "est"); !near(got, rate, 0.01) {
		t.Fatalf("estimate %g after slow start, want %g", got, rate)
	}
}

func TestPauseTooShortGrowsThePause(t *testing.T) {
	t.Parallel()
	b := setupClock(t)
	l := b.limiter(t, Config{TenantRate: 1000, Initial: 500})
	b.steady(t, l, "t", 20)
	key := stateKey("t")
	b.sendFor(t, l, "t", 10*time.Second)
	p := b.throttled(t, l, "t", b.reserve(t, l, "t"))
	// The first request after that pause (from another process, which
	// books its slot for the pause's end) is throttled: the penalty was
	// still on. The pause grows, the estimate stays.
	other := b.limiter(t, Config{TenantRate: 1000, Initial: 500})
	r := b.reserve(t, other, "t")
	b.advance(r.Wait + 200*time.Millisecond)
	est := b.field(t, key, "pest")
	want := time.Duration(float64(p-pauseGuard)*pauseGrowth) + pauseGuard
	if p2 := b.throttled(t, other, "t", r); p2 != want {
		t.Fatalf("pause %s after a throttle right after a pause of %s, want %s", p2, p, want)
	}
	b.advance(5 * time.Second)
	b.reserve(t, l, "t")
	if got := b.field(t, key, "est"); !near(got, est, 0.001) {
		t.Errorf("a pause too short changed the estimate from %g to %g", est, got)
	}
	// Later pauses decay, but not below shortPauseMargin times the pause
	// that proved too short.
	floor := time.Duration(float64(firstPause) * shortPauseMargin)
	for range 20 {
		b.sendFor(t, l, "t", 10*time.Second)
		r := b.reserve(t, l, "t")
		p := b.throttled(t, l, "t", r)
		if p < floor+pauseGuard-time.Millisecond {
			t.Fatalf("pause decayed to %s, below %s", p, floor)
		}
		b.advance(p + coincidence)
	}
	if p := b.field(t, key, "pause"); !near(p, float64(floor.Microseconds()), 0.01) {
		t.Errorf("pause settled at %gus, want %s", p, floor)
	}
}

func TestCutDependsOnHowLongTheRateHeld(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		held time.Duration
		want float64 // new estimate over the rate that throttled
	}{
		{"at once: the capacity dropped far", coincidence, deepestCut},
		{"after 4s", 4 * time.Second, 0.8},
		{"after 15s", 15 * time.Second, 15.0 / 16},
		{"on the plateau, long", probeQuiet - 2*time.Second, plateauCut},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setupClock(t)
			l := b.limiter(t, Config{TenantRate: 1000, Initial: 500})
			b.steady(t, l, "t", 20)
			b.sendFor(t, l, "t", c.held-coincidence)
			r := b.reserve(t, l, "t")
			b.advance(300 * time.Millisecond)
			p := b.throttled(t, l, "t", r)
			b.advance(p)
			b.reserve(t, l, "t")
			if got := b.field(t, stateKey("t"), "est"); !near(got, r.Rate*c.want, 0.02) {
				t.Errorf("estimate %g after the rate %g held %s, want %g", got, r.Rate, c.held, r.Rate*c.want)
			}
		})
	}
}

func TestProbeFindsMoreCapacity(t *testing.T) {
	t.Parallel()
	b := setupClock(t)
	l := b.limiter(t, Config{TenantRate: 1000, Initial: 500})
	b.steady(t, l, "t", 20)
	rateAt := func(after time.Duration) float64 {
		return b.sendFor(t, l, "t", after).Rate
	}
	// A plateau near the estimate first, so a steady capacity is met
	// rarely...
	if r := rateAt(20 * time.Second); r < 20 || r > 20*1.05 {
		t.Errorf("rate %g 20s after the pause, want just over the estimate 20", r)
	}
	// ...then faster and faster: a capacity that grew to more than twice
	// the estimate is found within probeQuiet and half a minute.
	if r := rateAt(probeQuiet + 30*time.Second - 20*time.Second); r < 20*2.3 {
		t.Errorf("rate %g %s after the pause, want over %g", r, probeQuiet+30*time.Second, 20*2.3)
	}
}

func TestProbeGrowsWithUse(t *testing.T) {
	t.Parallel()
	b := setupClock(t)
	l := b.limiter(t, Config{TenantRate: 1000, Initial: 500})
	b.steady(t, l, "t", 20)
	// Workers that take 5 slots a second, well past the quiet time: the
	// probe does not run ahead of what they send.
	var r Reservation
	for end := b.now.Add(probeQuiet + 30*time.Second); b.now.Before(end); b.advance(200 * time.Millisecond) {
		r = b.reserve(t, l, "t")
	}
	if r.Rate > 20*1.01 {
		t.Errorf("rate %g after %s of 5 slots/s, want the estimate 20", r.Rate, probeQuiet+30*time.Second)
	}
	// What the autoscaler reads is not held back: more workers would use it.
	if got, _, _ := l.Rate(b.ctx, "t"); got < 20*2.3 {
		t.Errorf("Rate %g, want the probe's rate", got)
	}
}

// twoTenants brings tenants a and b to an estimate of ra and rb /s, then
// a sends for 10 s.
func twoTenants(t *testing.T, ra, rb float64) (*clockBundle, *Limiter) {
	b := setupClock(t)
	l := b.limiter(t, Config{TenantRate: 1000, Initial: 500})
	b.steady(t, l, "a", ra)
	b.steady(t, l, "b", rb)
	b.sendFor(t, l, "a", 10*time.Second)
	return b, l
}

// coincide reports throttles of a and b 200 ms apart, on slots taken
// together, and returns the slots.
func (b *clockBundle) coincide(t *testing.T, l *Limiter) (ra, rb Reservation) {
	ra = b.reserve(t, l, "a")
	rb = b.reserve(t, l, "b")
	b.advance(300 * time.Millisecond)
	b.throttled(t, l, "a", ra)
	b.advance(200 * time.Millisecond)
	b.throttled(t, l, "b", rb)
	return ra, rb
}

func TestCoincidentThrottlesPauseEveryTenant(t *testing.T) {
	t.Parallel()
	b, l := twoTenants(t, 20, 20)
	ra, rb := b.coincide(t, l)
	// b's throttle comes with a's: the tenants share one capacity.
	shared := b.field(t, sourceKey, "est")
	if shared <= 0 || shared >= ra.Rate+rb.Rate {
		t.Fatalf("shared capacity %g learned from two coincident throttles at %g and %g/s, want a cut of their sum", shared, ra.Rate, rb.Rate)
	}
	// Every tenant pauses, one that was not throttled too.
	if r := b.reserve(t, l, "c"); r.OK && r.Wait < firstPause/2 {
		t.Errorf("a third tenant is not paused: %+v", r)
	}
	// Each takes its part of the cut, a when its own cut resolves: together
	// they keep to the shared estimate.
	b.advance(5 * time.Second)
	b.reserve(t, l, "a")
	b.reserve(t, l, "b")
	ea, eb := b.field(t, stateKey("a"), "est"), b.field(t, stateKey("b"), "est")
	if !near(ea+eb, shared, 0.02) || !near(ea, eb, 0.02) {
		t.Errorf("tenants' estimates %g and %g after a shared cut to %g, want halves of it", ea, eb, shared)
	}
}

func TestSharedCutsConvergeToFairShares(t *testing.T) {
	t.Parallel()
	b, l := twoTenants(t, 30, 10)
	b.sendFor(t, l, "b", 10*time.Second)
	b.coincide(t, l)
	b.advance(5 * time.Second)
	b.reserve(t, l, "a")
	b.reserve(t, l, "b")
	ea, eb := b.field(t, stateKey("a"), "est"), b.field(t, stateKey("b"), "est")
	// Halfway to the mean: 30:10 becomes 25:15.
	if ratio := ea / eb; !near(ratio, 25.0/15, 0.03) {
		t.Errorf("tenants' estimates %g and %g after a shared cut (ratio %.2f), want 25:15", ea, eb, ratio)
	}
}

func TestAnsweredTenantIsNotSharingTheCapacity(t *testing.T) {
	t.Parallel()
	b, l := twoTenants(t, 20, 20)
	ra := b.reserve(t, l, "a")
	b.advance(300 * time.Millisecond)
	b.throttled(t, l, "a", ra)
	// b was answered for a request sent well after a's throttled one, then
	// throttled itself: its own capacity, not a shared one.
	b.advance(100 * time.Millisecond)
	later := b.reserve(t, l, "b")
	b.advance(200 * time.Millisecond)
	l.Answered("b", later)
	b.throttled(t, l, "b", b.reserve(t, l, "b"))
	if est := b.field(t, sourceKey, "est"); est != 0 {
		t.Errorf("a shared capacity %g learned although b was answered after a's throttle", est)
	}
	if r := b.reserve(t, l, "c"); !r.OK || r.Wait > 100*time.Millisecond {
		t.Errorf("a third tenant is paused: %+v", r)
	}
}

func TestSolitaryThrottleCutsOnlyTheTenant(t *testing.T) {
	t.Parallel()
	b, l := twoTenants(t, 20, 20)
	ra := b.reserve(t, l, "a")
	b.advance(300 * time.Millisecond)
	b.throttled(t, l, "a", ra)
	b.advance(coincidence)
	if r := b.reserve(t, l, "b"); !r.OK || r.Wait > 100*time.Millisecond {
		t.Errorf("tenant b paused by a's throttle: %+v", r)
	}
	b.advance(5 * time.Second)
	b.reserve(t, l, "a")
	if got := b.field(t, stateKey("a"), "est"); got >= ra.Rate*plateauCut*1.001 {
		t.Errorf("tenant a's estimate %g not cut below %g", got, ra.Rate)
	}
	if est := b.field(t, sourceKey, "est"); est != 0 {
		t.Errorf("a solitary throttle set a shared capacity %g", est)
	}
}

func TestGlobalScheduleKeepsEachTenantsPlace(t *testing.T) {
	t.Parallel()
	b := setupClock(t)
	l := b.limiter(t, Config{TenantRate: 1000, Initial: 500, GlobalRate: 46})
	b.steady(t, l, "a", 23)
	b.steady(t, l, "b", 19)
	// Busy workers of both tenants: each books its next slot as soon as
	// its last one is due, for 20 s.
	count := b.sendBoth(t, l, 20*time.Second)
	for tenant, want := range map[string]float64{"a": 23, "b": 19} {
		if got := float64(count[tenant]) / 20; !near(got, want, 0.05) {
			t.Errorf("tenant %s paced at %.1f/s beside the other under a global 46/s, want its own %g", tenant, got, want)
		}
	}
	// When the global rate is below the sum, the tenants together keep to
	// it.
	l = b.limiter(t, Config{TenantRate: 1000, Initial: 500, GlobalRate: 30})
	count = b.sendBoth(t, l, 20*time.Second)
	if got := float64(count["a"]+count["b"]) / 20; got > 30*1.05 || got < 30*0.9 {
		t.Errorf("tenants together at %.1f/s under a global 30/s", got)
	}
}

func TestLearnedStateResumesAfterIdle(t *testing.T) {
	t.Parallel()
	b := setupClock(t)
	l := b.limiter(t, Config{TenantRate: 1000, Initial: 500})
	b.steady(t, l, "t", 40)
	b.advance(idleRestart + time.Minute)
	r := b.reserve(t, l, "t")
	if want := 40 * resumeEstimate * resumeRate; !near(r.Rate, want, 0.01) {
		t.Errorf("rate %g after an idle spell, want %g", r.Rate, want)
	}
	if got := b.field(t, stateKey("t"), "est"); !near(got, 40*resumeEstimate, 0.01) {
		t.Errorf("estimate %g after an idle spell, want %g", got, 40*resumeEstimate)
	}
	// It is kept for months, and a month later the next audit starts from a
	// smaller share of it.
	if ttl := b.mr.TTL(stateKey("t")); ttl < learnedTTL-time.Minute {
		t.Fatalf("the learned state expires in %s, want %s", ttl, learnedTTL)
	}
	b.advance(30 * 24 * time.Hour)
	r = b.reserve(t, l, "t")
	if want := 40 * resumeEstimate * resumeStale * resumeRate; !near(r.Rate, want, 0.01) {
		t.Errorf("rate %g a month later, want %g", r.Rate, want)
	}
}

// sendBoth takes slots for tenants a and b, each as soon as its last one is
// due, for d of the bundle's time, and returns how many each took.
func (b *clockBundle) sendBoth(t *testing.T, l *Limiter, d time.Duration) map[string]int {
	t.Helper()
	end := b.now.Add(d)
	count := map[string]int{}
	next := map[string]time.Time{"a": b.now, "b": b.now}
	for b.now.Before(end) {
		for _, tenant := range []string{"a", "b"} {
			if b.now.Before(next[tenant]) {
				continue
			}
			r := b.reserve(t, l, tenant)
			if !r.OK {
				t.Fatalf("slot refused: %+v", r)
			}
			count[tenant]++
			next[tenant] = b.now.Add(max(r.Wait, time.Millisecond))
		}
		b.advance(max(time.Millisecond, min(next["a"].Sub(b.now), next["b"].Sub(b.now))))
	}
	return count
}

// TestTenantTakesUpTheSharedCapacityAnotherLeft: when one of two tenants
// sharing a capacity stops sending, the other takes up the whole shared
// estimate within a few windows instead of waiting out its quiet time.
func TestTenantTakesUpTheSharedCapacityAnotherLeft(t *testing.T) {
	t.Parallel()
	b, l := twoTenants(t, 20, 20)
	b.coincide(t, l)
	b.advance(5 * time.Second)
	// Both keep sending at their parts of the shared estimate: a keeps its
	// part.
	b.sendBoth(t, l, 15*time.Second)
	shared, half := b.field(t, sourceKey, "est"), b.field(t, stateKey("a"), "est")
	if !near(half, shared/2, 0.05) {
		t.Fatalf("a's estimate %g while both tenants send, want half the shared %g", half, shared)
	}
	// b's run ends: within a few windows, well before a's quiet time ends,
	// a takes the capacity b left.
	b.sendFor(t, l, "a", 10*time.Second)
	if est := b.field(t, stateKey("a"), "est"); est < 0.95*shared {
		t.Errorf("a's estimate %g 10 s after b stopped, want the shared %g", est, shared)
	}
	if r := b.reserve(t, l, "a"); r.Rate < 0.9*shared {
		t.Errorf("a's rate %g 10 s after b stopped, want about the shared %g", r.Rate, shared)
	}
}
