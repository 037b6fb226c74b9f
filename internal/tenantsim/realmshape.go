package tenantsim

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Throttle scopes of the realm model (RealmConfig.Scope).
const (
	// ScopePerSource: one token bucket and penalty window for every request,
	// as if the service counted per source IP. The default.
	ScopePerSource = "per-source"
	// ScopePerTenant: a bucket and penalty window per audited tenant, each
	// with the whole rate, burst and penalty. A realm request carries only
	// the address, so the tenant is read from its domain: the simulated
	// tenant's verified domains are that tenant; any other domain counts as
	// a tenant of its own.
	ScopePerTenant = "per-tenant"
)

// RateStep changes the realm model's rate After the schedule's start (the
// first realm request since the throttle model was set). Rate 0 is
// unlimited, as for RealmConfig.Rate.
type RateStep struct {
	After time.Duration
	Rate  float64
}

// Latency delays realm answers (not the request's place in the throttle,
// which is taken on arrival): uniformly between Min and Max, except that a
// share TailShare of requests takes between TailMin and TailMax instead.
// The zero value answers at once.
type Latency struct {
	Min, Max         time.Duration
	TailShare        float64
	TailMin, TailMax time.Duration
}

func (l Latency) isZero() bool { return l == Latency{} }

// draw picks one request's delay.
func (l Latency) draw(r *rand.Rand) time.Duration {
	lo, hi := l.Min, l.Max
	if l.TailShare > 0 && r.Float64() < l.TailShare {
		lo, hi = l.TailMin, l.TailMax
	}
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
}

func (l Latency) validate() error {
	switch {
	case l.Min < 0 || l.Max < l.Min:
		return fmt.Errorf("latency %v-%v: want 0 <= min <= max", l.Min, l.Max)
	case l.TailShare < 0 || l.TailShare > 1:
		return fmt.Errorf("latency tail share %v outside 0..1", l.TailShare)
	case l.TailMin < 0 || l.TailMax < l.TailMin:
		return fmt.Errorf("latency tail %v-%v: want 0 <= min <= max", l.TailMin, l.TailMax)
	}
	return nil
}

func validateSchedule(steps []RateStep) error {
	for i, st := range steps {
		if st.After < 0 || st.Rate < 0 {
			return fmt.Errorf("schedule step %v:%v: negative", st.After, st.Rate)
		}
		if i > 0 && st.After <= steps[i-1].After {
			return fmt.Errorf("schedule step at %v does not come after %v", st.After, steps[i-1].After)
		}
	}
	return nil
}

// ParseSchedule reads the --realm-schedule form "AFTER:RATE,...", e.g.
// "2m:15,4m:40": 15/s from two minutes after the schedule's start, 40/s from
// four. The empty string is no schedule.
func ParseSchedule(s string) ([]RateStep, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var steps []RateStep
	for item := range strings.SplitSeq(s, ",") {
		after, rate, ok := strings.Cut(strings.TrimSpace(item), ":")
		d, derr := time.ParseDuration(after)
		r, rerr := strconv.ParseFloat(rate, 64)
		if !ok || derr != nil || rerr != nil {
			return nil, fmt.Errorf("step %q: want AFTER:RATE such as 2m:15", item)
		}
		steps = append(steps, RateStep{After: d, Rate: r})
	}
	if err := validateSchedule(steps); err != nil {
		return nil, err
	}
	return steps, nil
}

// ParseDurationRange reads "LO-HI" (e.g. "100ms-400ms") or a single
// duration, which is both ends. The empty string is 0-0.
func ParseDurationRange(s string) (lo, hi time.Duration, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, 0, nil
	}
	a, b, isRange := strings.Cut(s, "-")
	if lo, err = time.ParseDuration(a); err == nil {
		hi = lo
		if isRange {
			hi, err = time.ParseDuration(b)
		}
	}
	if err != nil || lo < 0 || hi < lo {
		return 0, 0, fmt.Errorf("%q: want MIN-MAX such as 100ms-400ms, 0 <= MIN <= MAX", s)
	}
	return lo, hi, nil
}

// ParseLatencyTail reads the --realm-latency-tail form "SHARE:MIN-MAX",
// e.g. "0.02:1s-2s": 2 % of requests take 1 to 2 s. The empty string is no
// tail.
func ParseLatencyTail(s string) (share float64, lo, hi time.Duration, err error) {
	if strings.TrimSpace(s) == "" {
		return 0, 0, 0, nil
	}
	p, rng, ok := strings.Cut(strings.TrimSpace(s), ":")
	share, perr := strconv.ParseFloat(p, 64)
	if !ok || perr != nil || share < 0 || share > 1 {
		return 0, 0, 0, fmt.Errorf("%q: want SHARE:MIN-MAX such as 0.02:1s-2s, SHARE in 0..1", s)
	}
	if lo, hi, err = ParseDurationRange(rng); err != nil {
		return 0, 0, 0, err
	}
	return share, lo, hi, nil
}

// Wire forms: durations as jsonDuration, field names snake_case.
type rateStepWire struct {
	After jsonDuration `json:"after"`
	Rate  float64      `json:"rate"`
}

type latencyWire struct {
	Min       jsonDuration `json:"min"`
	Max       jsonDuration `json:"max"`
	TailShare float64      `json:"tail_share"`
	TailMin   jsonDuration `json:"tail_min"`
	TailMax   jsonDuration `json:"tail_max"`
}

func (l Latency) wire() latencyWire {
	return latencyWire{jsonDuration(l.Min), jsonDuration(l.Max), l.TailShare, jsonDuration(l.TailMin), jsonDuration(l.TailMax)}
}

func (w latencyWire) latency() Latency {
	return Latency{time.Duration(w.Min), time.Duration(w.Max), w.TailShare, time.Duration(w.TailMin), time.Duration(w.TailMax)}
}

func scheduleWire(steps []RateStep) []rateStepWire {
	if steps == nil {
		return nil
	}
	out := make([]rateStepWire, len(steps))
	for i, st := range steps {
		out[i] = rateStepWire{jsonDuration(st.After), st.Rate}
	}
	return out
}

func scheduleFromWire(w []rateStepWire) []RateStep {
	if w == nil {
		return nil
	}
	out := make([]RateStep, len(w))
	for i, st := range w {
		out[i] = RateStep{time.Duration(st.After), st.Rate}
	}
	return out
}
