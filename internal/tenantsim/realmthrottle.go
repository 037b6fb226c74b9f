package tenantsim

import (
	"time"

	"github.com/msaudit/msaudit/internal/throttlemodel"
)

// throttleVerdict is the throttle's answer to one request: whether it is
// admitted, else the wait to advertise and whether a 429 carries it as
// Retry-After; and the service time a throttle model adds to an admitted
// request's latency.
type throttleVerdict struct {
	ok      bool
	retry   time.Duration
	header  bool
	latency time.Duration
}

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

// take applies tenant's throttle (one shared throttle under
// ScopePerSource): the model, if one is set, else the token bucket and
// penalty window.
func (rs *realmState) take(tenant string, now time.Time) throttleVerdict {
	cfg := rs.cfg
	rate, _ := rs.rateAt(now)
	if rate <= 0 {
		return throttleVerdict{ok: true}
	}
	if cfg.scope() != ScopePerTenant {
		tenant = ""
	}
	if cfg.Model != "" {
		return rs.admitModel(tenant, now, rate)
	}
	ok, wait := rs.takeBucket(tenant, now, rate)
	return throttleVerdict{ok: ok, retry: wait, header: true}
}

// takeBucket applies tenant's token bucket and penalty window at rate.
func (rs *realmState) takeBucket(tenant string, now time.Time, rate float64) (bool, time.Duration) {
	cfg := rs.cfg
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

// admitModel asks the throttle model about key's request at now, building
// the model on first use and giving it each schedule step at the step's own
// instant. Requests decided out of arrival order by a few microseconds are
// taken as arriving with the latest, since a model's clock never goes back.
func (rs *realmState) admitModel(key string, now time.Time, rate float64) throttleVerdict {
	now = maxTime(now, rs.modelLast)
	switch {
	case rs.model == nil:
		spec, err := throttlemodel.Parse(rs.cfg.Model)
		if err != nil {
			panic("tenantsim: unchecked realm model: " + err.Error()) // Validate or clamped refused it
		}
		rs.model, rs.modelRate = spec.New(rate), rate
	case rate != rs.modelRate:
		rs.model.SetCapacity(maxTime(rs.stepStart(now), rs.modelLast), rate)
		rs.modelRate = rate
	}
	rs.modelLast = now
	d := rs.model.Admit(now, key)
	return throttleVerdict{ok: !d.Throttled, retry: d.RetryAfter, header: d.RetryAfter > 0, latency: d.Latency}
}

// stepStart is when the schedule step in effect at now began (the
// schedule's start if none has).
func (rs *realmState) stepStart(now time.Time) time.Time {
	el := now.Sub(rs.start)
	at := rs.start
	for _, st := range rs.cfg.Schedule {
		if st.After > el {
			break
		}
		at = rs.start.Add(st.After)
	}
	return at
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
