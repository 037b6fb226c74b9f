package throttlemodel

import (
	"math/rand/v2"
	"time"
)

// softLimit counts every request per key (throttled ones too: the service
// sees them all) over a sliding Window. Up to capacity·Window requests, and
// one more for a request landing exactly on the window's edge, are all
// admitted; beyond that the share throttled rises linearly with the excess
// and reaches one at capacity·(1+Slope).
type softLimit struct {
	spec Spec
	rate float64
	logs keyed[timeLog]
	rng  *rand.Rand
}

func newSoftLimit(s Spec, capacity float64) *softLimit {
	return &softLimit{spec: s, rate: capacity, logs: newKeyed(func() *timeLog { return &timeLog{} }),
		rng: rand.New(rand.NewPCG(uint64(s.Seed), 0x50f7))}
}

func (m *softLimit) Admit(now time.Time, key string) Decision {
	l := m.logs.get(key)
	w := m.spec.Params.Window
	l.expire(now.Add(-w))
	l.push(now)
	allowed := m.rate * w.Seconds()
	share := (float64(l.len()) - 1 - allowed) / (m.spec.Params.Slope * allowed)
	if share <= 0 || m.rng.Float64() >= share {
		return Decision{}
	}
	// The share falls back once the excess leaves the window.
	return m.spec.throttled(w)
}

// SetCapacity changes the threshold at once.
func (m *softLimit) SetCapacity(_ time.Time, perSecond float64) {
	m.rate = max(perSecond, minCapacity)
}
