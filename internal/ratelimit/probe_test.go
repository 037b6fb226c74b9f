package ratelimit

import (
	"testing"
	"time"
)

// probeEach takes slots for each tenant as soon as its last one is due (busy
// workers) for probeWithin, and fails if a tenant's rate ever falls below
// its estimate at the start; it returns each tenant's rate at the end.
func (b *clockBundle) probeEach(t *testing.T, l *Limiter, tenants ...string) map[string]float64 {
	t.Helper()
	floor := map[string]float64{}
	next := map[string]time.Time{}
	for _, tenant := range tenants {
		floor[tenant] = b.field(t, stateKey(tenant), "est")
		next[tenant] = b.now
	}
	rates := map[string]float64{}
	for end := b.now.Add(probeWithin); b.now.Before(end); {
		soonest := end
		for _, tenant := range tenants {
			if !b.now.Before(next[tenant]) {
				r := b.reserve(t, l, tenant)
				if !r.OK {
					t.Fatalf("slot refused: %+v", r)
				}
				if r.Rate < floor[tenant]*(1-1e-3) {
					t.Fatalf("%s's rate %g fell below its estimate %g with no throttle", tenant, r.Rate, floor[tenant])
				}
				rates[tenant] = r.Rate
				next[tenant] = b.now.Add(max(r.Wait, time.Millisecond))
			}
			if next[tenant].Before(soonest) {
				soonest = next[tenant]
			}
		}
		b.advance(max(time.Millisecond, soonest.Sub(b.now)))
	}
	return rates
}

// TestProbeInvariant: however the last throttle was read (the end of slow
// start, a plateau over the capacity, a pause that proved too short, a
// shared capacity), a scope that then sees no throttle signal for
// probeWithin from the end of its pause is paced at probeReach times its
// estimate or more: a capacity that recovered from a drop to 1/probeReach
// of itself is found within probeWithin, and no scope sits below its
// capacity for good. It fails with the probe disabled.
func TestProbeInvariant(t *testing.T) {
	t.Parallel()
	one := func(t *testing.T, initial float64, setup func(b *clockBundle, l *Limiter)) {
		b := setupClock(t)
		l := b.limiter(t, Config{TenantRate: 1000, Initial: initial})
		setup(b, l)
		est := b.field(t, stateKey("t"), "est")
		if r := b.probeEach(t, l, "t")["t"]; r < probeReach*est {
			t.Errorf("rate %g after %s without a throttle, want %g times the estimate %g = %g", r, probeWithin, probeReach, est, probeReach*est)
		}
	}
	t.Run("after slow start", func(t *testing.T) {
		t.Parallel()
		one(t, 5, func(b *clockBundle, l *Limiter) {
			b.sendFor(t, l, "t", 3*time.Second)
			b.advance(b.throttled(t, l, "t", b.reserve(t, l, "t")))
			b.reserve(t, l, "t") // resolves the cut
		})
	})
	t.Run("after a plateau over the capacity", func(t *testing.T) {
		t.Parallel()
		one(t, 500, func(b *clockBundle, l *Limiter) {
			b.steady(t, l, "t", 20)
			b.sendFor(t, l, "t", 5*time.Second)
			b.advance(b.throttled(t, l, "t", b.reserve(t, l, "t")))
			b.reserve(t, l, "t")
		})
	})
	t.Run("after a pause that proved too short", func(t *testing.T) {
		t.Parallel()
		one(t, 500, func(b *clockBundle, l *Limiter) {
			b.steady(t, l, "t", 20)
			b.sendFor(t, l, "t", 10*time.Second)
			b.throttled(t, l, "t", b.reserve(t, l, "t"))
			r := b.reserve(t, l, "t")
			b.advance(r.Wait + 100*time.Millisecond)
			b.advance(b.throttled(t, l, "t", r))
		})
	})
	t.Run("after a shared cut", func(t *testing.T) {
		t.Parallel()
		b, l := twoTenants(t, 20, 20)
		b.coincide(t, l)
		b.advance(b.pauseLeft(l))
		b.reserve(t, l, "a") // resolves a's part of the cut
		ea, eb := b.field(t, stateKey("a"), "est"), b.field(t, stateKey("b"), "est")
		rates := b.probeEach(t, l, "a", "b")
		for tenant, est := range map[string]float64{"a": ea, "b": eb} {
			if rates[tenant] < probeReach*est {
				t.Errorf("%s's rate %g after %s without a throttle, want %g times its estimate %g", tenant, rates[tenant], probeWithin, probeReach, est)
			}
		}
	})
}

// pauseLeft is how long the pause of a or b lasts, as l knows it.
func (b *clockBundle) pauseLeft(l *Limiter) time.Duration {
	return max(l.PausedFor("a"), l.PausedFor("b"))
}

// TestAnsweredAfterPauseMeansRateTooHigh: a throttle right after a pause
// grows the pause only if nothing sent after the pause was answered; once a
// request after it was, the penalty was over and the rate emptied a small
// burst allowance at once: the estimate is cut and the pause does not grow.
func TestAnsweredAfterPauseMeansRateTooHigh(t *testing.T) {
	t.Parallel()
	b := setupClock(t)
	l := b.limiter(t, Config{TenantRate: 1000, Initial: 500})
	b.steady(t, l, "t", 20)
	b.sendFor(t, l, "t", 10*time.Second)
	p := b.throttled(t, l, "t", b.reserve(t, l, "t"))
	b.advance(p) // the pause ends; the cut resolved during it
	first := b.reserve(t, l, "t")
	est := b.field(t, stateKey("t"), "est")
	b.advance(first.Wait + 100*time.Millisecond)
	l.Answered("t", first)
	second := b.reserve(t, l, "t")
	b.advance(second.Wait + 100*time.Millisecond)
	if p2 := b.throttled(t, l, "t", second); p2 > p {
		t.Errorf("pause grew from %s to %s though a request after the pause was answered", p, p2)
	}
	b.advance(5 * time.Second)
	b.reserve(t, l, "t")
	if got := b.field(t, stateKey("t"), "est"); got >= est*0.99 {
		t.Errorf("estimate %g after a throttle just after an answered request, want a cut from %g", got, est)
	}
}
