package throttlemodel

import "time"

// tokenEpsilon absorbs floating-point drift in a bucket refilled at exactly
// one token per request.
const tokenEpsilon = 1e-9

// bucketModel is a token bucket per key, with a penalty box for the penalty
// kinds.
type bucketModel struct {
	spec    Spec
	rate    float64
	buckets keyed[tokenBucket]
	penalty time.Duration // 0: no box
	extend  bool          // every request in the box extends it
}

type tokenBucket struct {
	tokens   float64
	last     time.Time
	boxUntil time.Time
	started  bool
}

func newBucketModel(s Spec, capacity float64) *bucketModel {
	m := &bucketModel{spec: s, rate: capacity}
	m.buckets = newKeyed(func() *tokenBucket { return &tokenBucket{} })
	if s.Kind == PenaltyFixed || s.Kind == PenaltyExtend {
		m.penalty = s.Params.Penalty
		m.extend = s.Kind == PenaltyExtend
	}
	return m
}

// burst is the bucket's size at the current rate: at least one request.
func (m *bucketModel) burst() float64 {
	return max(1, m.rate*m.spec.Params.Burst.Seconds())
}

// refill brings b to now at the current rate; a new bucket starts full.
func (m *bucketModel) refill(b *tokenBucket, now time.Time) {
	if !b.started {
		b.tokens, b.last, b.started = m.burst(), now, true
		return
	}
	if now.After(b.last) {
		b.tokens = min(m.burst(), b.tokens+now.Sub(b.last).Seconds()*m.rate)
		b.last = now
	}
}

func (m *bucketModel) Admit(now time.Time, key string) Decision {
	b := m.buckets.get(key)
	m.refill(b, now)
	if now.Before(b.boxUntil) {
		if m.extend {
			b.boxUntil = now.Add(m.penalty)
		}
		return m.spec.throttled(b.boxUntil.Sub(now))
	}
	if b.tokens >= 1-tokenEpsilon {
		b.tokens = max(0, b.tokens-1)
		return Decision{}
	}
	if m.penalty > 0 {
		b.boxUntil = now.Add(m.penalty)
		return m.spec.throttled(m.penalty)
	}
	return m.spec.throttled(seconds((1 - b.tokens) / m.rate))
}

// SetCapacity refills every bucket to now at the old rate, then caps its
// tokens at the new burst; a penalty box in progress stays.
func (m *bucketModel) SetCapacity(now time.Time, perSecond float64) {
	for _, b := range m.buckets.m {
		m.refill(b, now)
	}
	m.rate = max(perSecond, minCapacity)
	for _, b := range m.buckets.m {
		b.tokens = min(b.tokens, m.burst())
	}
}
