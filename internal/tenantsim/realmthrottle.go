package tenantsim

import "time"

// bucket is one token bucket and its penalty window.
type bucket struct {
	tokens       float64
	last         time.Time
	penaltyUntil time.Time
}

// rateAt is the rate in effect at now and when it ends (zero: never).
func (rs *realmState) rateAt(now time.Time) (float64, time.Time) {
	if rs.start.IsZero() {
		rate, _ := rs.cfg.rateAt(0)
		return rate, time.Time{}
	}
	rate, until := rs.cfg.rateAt(now.Sub(rs.start))
	if until < 0 {
		return rate, time.Time{}
	}
	return rate, rs.start.Add(until)
}

// refill brings b's tokens from b.last to now one schedule segment at a
// time, so that a capacity step takes effect at its own instant and the
// tokens left at a step are capped by the new burst.
func (rs *realmState) refill(b *bucket, now time.Time) {
	for b.last.Before(now) {
		rate, until := rs.rateAt(b.last)
		end := now
		if !until.IsZero() && until.Before(now) {
			end = until
		}
		burst := rs.cfg.burstAt(rate)
		if rate <= 0 {
			b.tokens = burst // unlimited: nothing was taken
		} else {
			b.tokens = min(burst, b.tokens+end.Sub(b.last).Seconds()*rate)
		}
		b.last = end
	}
}

// take applies tenant's token bucket and penalty window (one shared bucket
// under ScopePerSource).
func (rs *realmState) take(tenant string, now time.Time) (bool, time.Duration) {
	cfg := rs.cfg
	rate, _ := rs.rateAt(now)
	if rate <= 0 {
		return true, 0
	}
	if cfg.scope() != ScopePerTenant {
		tenant = ""
	}
	b := rs.buckets[tenant]
	if b == nil {
		b = &bucket{tokens: cfg.burstAt(rate), last: now}
		rs.buckets[tenant] = b
	}
	rs.refill(b, now)
	if now.Before(b.penaltyUntil) {
		// Hammering during the penalty keeps the penalty alive.
		b.penaltyUntil = now.Add(cfg.Penalty)
		return false, cfg.Penalty
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	if cfg.Penalty > 0 {
		b.penaltyUntil = now.Add(cfg.Penalty)
		return false, cfg.Penalty
	}
	return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
}
