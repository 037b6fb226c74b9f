package throttlemodel

import (
	"fmt"
	"math"
	"testing"
	"time"
)

var capacities = []float64{5, 20, 100}

// Every member sustains its available capacity, evenly spaced, for a
// minute without one throttled request, per key.
func TestSustainsAvailable(t *testing.T) {
	t.Parallel()
	for _, s := range Family() {
		for _, c := range capacities {
			dr := newDriver(s, c)
			if got := dr.run(s.Available(c), time.Minute); got.throttled > 0 {
				t.Errorf("%s at C=%g: %d of %d throttled at the available %g/s", s.Name(), c, got.throttled,
					got.admitted+got.throttled, s.Available(c))
			}
		}
	}
}

// Available is honest: a little above it, every member throttles.
func TestOvershootThrottled(t *testing.T) {
	t.Parallel()
	for _, s := range Family() {
		for _, c := range capacities {
			dr := newDriver(s, c)
			if got := dr.run(1.2*s.Available(c), 2*time.Minute); got.throttled == 0 {
				t.Errorf("%s at C=%g: nothing throttled at 1.2× the available %g/s", s.Name(), c, s.Available(c))
			}
		}
	}
}

// Keys are throttled apart: each gets the whole capacity.
func TestKeysApart(t *testing.T) {
	t.Parallel()
	for _, s := range Family() {
		m := s.New(20)
		step := time.Duration(math.Ceil(float64(time.Second) / s.Available(20)))
		for at := t0; at.Before(t0.Add(30 * time.Second)); at = at.Add(step) {
			for _, key := range []string{"a", "b"} {
				if d := m.Admit(at, key); d.Throttled {
					t.Fatalf("%s: key %s throttled at %v with each key at its own capacity", s.Name(), key, at.Sub(t0))
				}
			}
		}
	}
}

// Bucket kinds admit the burst at once and the capacity after it, however
// hard they are pushed.
func TestBucketAdmitsBurstThenRate(t *testing.T) {
	t.Parallel()
	for _, s := range []Spec{NewSpec(BucketSmall, false, 1), NewSpec(BucketLarge, false, 1)} {
		const c = 20.0
		burst := int(max(1, c*s.Params.Burst.Seconds()))
		dr := newDriver(s, c)
		if got := dr.burst(burst + 5); got.admitted != burst {
			t.Errorf("%s: a burst of %d admitted %d, want the allowance %d", s.Name(), burst+5, got.admitted, burst)
		}
		got := dr.run(3*c, 10*time.Second)
		if want := int(10 * c); got.admitted < want-1 || got.admitted > want+1 {
			t.Errorf("%s: at 3×C for 10 s admitted %d, want %d±1", s.Name(), got.admitted, want)
		}
	}
}

// A fixed window admits its limit in each window and nothing more; the
// count starts again at the drawn boundary.
func TestFixedWindow(t *testing.T) {
	t.Parallel()
	s := NewSpec(FixedWindow, true, 3)
	dr := newDriver(s, 20)
	dr.now = t0.Add(s.Params.Phase) // a boundary
	if got := dr.burst(30); got.admitted != 20 {
		t.Fatalf("a burst of 30 admitted %d, want 20", got.admitted)
	}
	dr.now = dr.now.Add(time.Second - time.Nanosecond)
	if got := dr.burst(1); got.throttled != 1 {
		t.Fatal("the window's last nanosecond admitted a 21st request")
	}
	dr.now = dr.now.Add(time.Nanosecond)
	if got := dr.burst(30); got.admitted != 20 {
		t.Errorf("the next window admitted %d, want 20", got.admitted)
	}
}

// A sliding window never admits more than its limit within any window, and
// over a long overshoot admits the available rate.
func TestSlidingWindow(t *testing.T) {
	t.Parallel()
	for _, s := range []Spec{NewSpec(SlidingWindow, false, 3), NewSpec(SlidingWindow, true, 4)} {
		const c = 20.0
		m := s.New(c)
		limit := windowLimit(c, s.Params.Window)
		var admitted []time.Time
		step := 10 * time.Millisecond
		end := t0.Add(60 * time.Second)
		for at := t0; at.Before(end); at = at.Add(step) {
			if !m.Admit(at, "k").Throttled {
				admitted = append(admitted, at)
			}
		}
		for i := limit; i < len(admitted); i++ {
			if admitted[i].Sub(admitted[i-limit]) < s.Params.Window {
				t.Fatalf("%s: %d admitted within %v", s.Name(), limit+1, admitted[i].Sub(admitted[i-limit]))
			}
		}
		// A full window at once, then one more for each that leaves.
		windows := 60 / s.Params.Window.Seconds()
		if lo, hi := limit*int(windows), limit*int(math.Ceil(windows)); len(admitted) < lo || len(admitted) > hi {
			t.Errorf("%s: admitted %d in 60 s at 5×C, want %d..%d", s.Name(), len(admitted), lo, hi)
		}
	}
}

// A fixed penalty box throttles everything for its length, however hard
// it is pushed, then admits again.
func TestPenaltyFixed(t *testing.T) {
	t.Parallel()
	s := NewSpec(PenaltyFixed, true, 3)
	const c = 20.0
	dr := newDriver(s, c)
	burst := int(max(1, c*s.Params.Burst.Seconds()))
	if got := dr.burst(burst + 1); got.throttled != 1 || got.retryAfter[0] != s.retryAfter(s.Params.Penalty) {
		t.Fatalf("overshooting the burst: %+v, want one throttled with Retry-After %v", got, s.retryAfter(s.Params.Penalty))
	}
	opened := dr.now
	got := dr.run(2*c, s.Params.Penalty-time.Millisecond)
	if got.admitted != 0 {
		t.Errorf("%d admitted inside the penalty box", got.admitted)
	}
	dr.now = opened.Add(s.Params.Penalty)
	if d := dr.m.Admit(dr.now, dr.key); d.Throttled {
		t.Error("throttled when the box, hammered throughout, should have closed")
	}
}

// An extended penalty box stays shut while requests keep coming within its
// length, and opens its length after the last of them.
func TestPenaltyExtend(t *testing.T) {
	t.Parallel()
	s := NewSpec(PenaltyExtend, false, 3)
	const c = 20.0
	dr := newDriver(s, c)
	burst := int(max(1, c*s.Params.Burst.Seconds()))
	dr.burst(burst + 1)
	p := s.Params.Penalty
	// One request every 0.9 penalty for ten penalties: each finds the box
	// shut and extends it.
	for range 10 {
		dr.now = dr.now.Add(p * 9 / 10)
		if d := dr.m.Admit(dr.now, dr.key); !d.Throttled {
			t.Fatalf("admitted %v after the box opened although every request extended it", dr.now.Sub(t0))
		}
		if d := dr.m.Admit(dr.now, dr.key); d.RetryAfter != 0 {
			t.Fatalf("Retry-After %v from a spec without it", d.RetryAfter)
		}
	}
	dr.now = dr.now.Add(p - time.Millisecond)
	if d := dr.m.Admit(dr.now, dr.key); !d.Throttled {
		t.Fatal("admitted before the last extension ran out")
	}
	dr.now = dr.now.Add(p)
	if d := dr.m.Admit(dr.now, dr.key); d.Throttled {
		t.Error("throttled a full penalty after the last request")
	}
}

// A soft limit throttles a share rising with the excess: about half at
// capacity·(1+Slope/2), everything well beyond capacity·(1+Slope).
func TestSoftLimitShare(t *testing.T) {
	t.Parallel()
	for _, s := range []Spec{NewSpec(SoftLimit, false, 3), NewSpec(SoftLimit, true, 4)} {
		const c = 40.0
		half := newDriver(s, c).run(c*(1+s.Params.Slope/2), 2*time.Minute)
		if sh := half.share(); sh < 0.1 || sh > 0.5 {
			// offered x·C throttles (x-1)/Slope of the offered window, so
			// that the admitted rate is close to C: share ≈ 1-1/x… within
			// the linear ramp; about 0.3 at x = 1+Slope/2.
			t.Errorf("%s: %.2f throttled at (1+Slope/2)·C", s.Name(), sh)
		}
		over := newDriver(s, c)
		over.run(c*(1+2*s.Params.Slope), s.Params.Window) // fill the window
		if got := over.run(c*(1+2*s.Params.Slope), time.Minute); got.share() < 0.99 {
			t.Errorf("%s: %.3f throttled at (1+2·Slope)·C, want all", s.Name(), got.share())
		}
	}
}

// A concurrency limit admits n at once; each frees its slot after the
// service time, which is n/capacity, the answer's latency.
func TestConcurrency(t *testing.T) {
	t.Parallel()
	for _, c := range capacities {
		s := NewSpec(Concurrency, true, 3)
		dr := newDriver(s, c)
		n := max(1, int(math.Round(c*s.Params.Service.Seconds())))
		d := dr.m.Admit(dr.now, dr.key)
		if got := dr.burst(n); got.admitted != n-1 || got.throttled != 1 {
			t.Fatalf("C=%g: a burst of %d after one admitted %d, want %d", c, n, got.admitted, n-1)
		}
		if want := seconds(float64(n) / c); d.Latency != want {
			t.Errorf("C=%g: latency %v, want n/C = %v", c, d.Latency, want)
		}
		dr.now = dr.now.Add(d.Latency)
		if got := dr.burst(n + 1); got.admitted != n {
			t.Errorf("C=%g: after the service time %d admitted, want %d", c, got.admitted, n)
		}
	}
}

// A queue's latency grows by 1/capacity with every request of a burst, and
// it throttles once the backlog passes MaxQueue.
func TestQueue(t *testing.T) {
	t.Parallel()
	s := NewSpec(Queue, false, 3)
	const c = 20.0
	m := s.New(c)
	var last time.Duration
	admitted := 0
	for i := range 200 {
		d := m.Admit(t0, "k")
		if d.Throttled {
			break
		}
		admitted++
		want := s.Params.Service + seconds(float64(i+1)/c)
		if math.Abs(float64(d.Latency-want)) > float64(time.Microsecond) {
			t.Fatalf("request %d of a burst: latency %v, want %v", i, d.Latency, want)
		}
		last = d.Latency
	}
	if want := int(s.Params.MaxQueue.Seconds()*c) + 1; admitted < want-1 || admitted > want+1 {
		t.Errorf("a burst queued %d (last latency %v), want about %d for a %v queue", admitted, last, want, s.Params.MaxQueue)
	}
}

// After the capacity drops to 40 %, the new available rate is throttled no
// more once the old traffic has left the model's memory, the old rate is
// throttled, and back at the old capacity the old rate is admitted again.
func TestSetCapacity(t *testing.T) {
	t.Parallel()
	for _, s := range Family() {
		for _, c := range capacities {
			name := fmt.Sprintf("%s C=%g", s.Name(), c)
			low := 0.4 * c
			dr := newDriver(s, c)
			dr.run(s.Available(c), 20*time.Second)
			dr.m.SetCapacity(dr.now, low)
			dr.run(s.Available(low), settle(s))
			if got := dr.run(s.Available(low), time.Minute); got.throttled > 0 {
				t.Errorf("%s: %d throttled at the new available %g/s", name, got.throttled, s.Available(low))
			}
			if got := dr.run(s.Available(c), 30*time.Second); got.throttled == 0 {
				t.Errorf("%s: the old rate was not throttled after the drop", name)
			}
			dr.now = dr.now.Add(settle(s)) // silence: a penalty box extended by every request closes
			dr.m.SetCapacity(dr.now, c)
			dr.run(s.Available(c), settle(s))
			if got := dr.run(s.Available(c), time.Minute); got.throttled > 0 {
				t.Errorf("%s: %d throttled at the recovered %g/s", name, got.throttled, s.Available(c))
			}
		}
	}
}

// Throttled answers carry Retry-After, whole seconds, exactly when the
// spec says so; and a client that waits what it says is admitted.
func TestRetryAfter(t *testing.T) {
	t.Parallel()
	for _, s := range Family() {
		dr := newDriver(s, 20)
		got := dr.run(60, 20*time.Second)
		if got.throttled == 0 {
			t.Fatalf("%s: nothing throttled at 3×C", s.Name())
		}
		for _, ra := range got.retryAfter {
			if s.RetryAfter != (ra > 0) || ra%time.Second != 0 {
				t.Fatalf("%s: Retry-After %v (spec says %v)", s.Name(), ra, s.RetryAfter)
			}
		}
		if !s.RetryAfter {
			continue
		}
		// Hammer again, then wait exactly the last answer's Retry-After.
		var d Decision
		for d = dr.m.Admit(dr.now, dr.key); !d.Throttled; d = dr.m.Admit(dr.now, dr.key) {
		}
		dr.now = dr.now.Add(d.RetryAfter)
		if d := dr.m.Admit(dr.now, dr.key); d.Throttled {
			t.Errorf("%s: throttled after waiting the advertised %v", s.Name(), d.RetryAfter)
		}
	}
}
