package throttlemodel

import (
	"math"
	"time"
)

// t0 is where every test's clock starts.
var t0 = time.Unix(1_700_000_000, 0)

// driver sends requests to one model under one key on a virtual clock.
type driver struct {
	m   Model
	key string
	now time.Time
}

func newDriver(s Spec, capacity float64) *driver {
	return &driver{m: s.New(capacity), key: "k", now: t0}
}

// tally counts a run's decisions.
type tally struct {
	admitted, throttled int
	retryAfter          []time.Duration // of the throttled answers
}

func (t tally) share() float64 { return float64(t.throttled) / float64(max(1, t.admitted+t.throttled)) }

// run sends requests evenly spaced at rate (the spacing rounded up to a
// nanosecond, so never faster than rate) for d, and leaves the clock one
// spacing after the last, where the next request at that rate would go.
func (dr *driver) run(rate float64, d time.Duration) tally {
	step := time.Duration(math.Ceil(float64(time.Second) / rate))
	end := dr.now.Add(d)
	var t tally
	for ; dr.now.Before(end); dr.now = dr.now.Add(step) {
		t.add(dr.m.Admit(dr.now, dr.key))
	}
	return t
}

// burst sends n requests at once and leaves the clock where it was.
func (dr *driver) burst(n int) tally {
	var t tally
	for range n {
		t.add(dr.m.Admit(dr.now, dr.key))
	}
	return t
}

func (t *tally) add(d Decision) {
	if d.Throttled {
		t.throttled++
		t.retryAfter = append(t.retryAfter, d.RetryAfter)
		return
	}
	t.admitted++
}

// settle is how long a model may still throttle a rate within its new
// capacity after the capacity dropped: what it counted at the old one must
// leave its window, finish or be served.
func settle(s Spec) time.Duration {
	return max(time.Second, s.Params.Window, s.Params.Service+time.Second, s.Params.MaxQueue+time.Second,
		s.Params.Penalty)
}
