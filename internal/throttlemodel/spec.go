package throttlemodel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Kind is the shape of a throttle.
type Kind int

// The kinds of the family. See docs/throttle-models.md for why each is
// plausible.
const (
	// BucketSmall is a token bucket refilled at the capacity with a burst
	// allowance of a fraction of a second of it.
	BucketSmall Kind = iota
	// BucketLarge is a token bucket with a burst allowance of several
	// seconds of capacity: overshoot goes unpunished for a while.
	BucketLarge
	// FixedWindow allows floor(capacity) requests in each one-second window
	// (boundaries at a drawn phase), counting admitted requests.
	FixedWindow
	// SlidingWindow allows floor(capacity·Window) admitted requests in any
	// Window.
	SlidingWindow
	// PenaltyFixed is a token bucket; a request finding no token opens a
	// penalty box of Penalty during which every request is throttled.
	PenaltyFixed
	// PenaltyExtend is PenaltyFixed whose box every request sent into it
	// extends to its own time plus Penalty.
	PenaltyExtend
	// SoftLimit counts every request over a sliding Window; above the
	// capacity a share of answers rising linearly with the excess is
	// throttled, all of them at capacity·(1+Slope).
	SoftLimit
	// Concurrency admits at most N requests at once, each held for the
	// service time N/capacity.
	Concurrency
	// Queue serves requests one after another at the capacity, so latency
	// grows with the backlog; a request that would wait more than MaxQueue
	// is throttled instead.
	Queue
	kindCount
)

var kindNames = [kindCount]string{
	BucketSmall:   "bucket-small",
	BucketLarge:   "bucket-large",
	FixedWindow:   "fixed-window",
	SlidingWindow: "sliding-window",
	PenaltyFixed:  "penalty-fixed",
	PenaltyExtend: "penalty-extend",
	SoftLimit:     "soft-limit",
	Concurrency:   "concurrency",
	Queue:         "queue",
}

// Kinds lists every kind in order.
func Kinds() []Kind {
	ks := make([]Kind, kindCount)
	for i := range ks {
		ks[i] = Kind(i)
	}
	return ks
}

// String is the kind's name in model names and flags.
func (k Kind) String() string {
	if k < 0 || k >= kindCount {
		return "kind(" + strconv.Itoa(int(k)) + ")"
	}
	return kindNames[k]
}

// ParseKind reads a kind's name.
func ParseKind(s string) (Kind, error) {
	for i, n := range kindNames {
		if n == s {
			return Kind(i), nil
		}
	}
	return 0, fmt.Errorf("throttle kind %q: want one of %s", s, strings.Join(kindNames[:], ", "))
}

// Params are a model's drawn parameters; each kind uses some of them and
// leaves the others zero.
type Params struct {
	// Burst is the token bucket's allowance in seconds of capacity (at
	// least one request): BucketSmall, BucketLarge, PenaltyFixed,
	// PenaltyExtend.
	Burst time.Duration
	// Window is the counting window: FixedWindow (one second),
	// SlidingWindow, SoftLimit.
	Window time.Duration
	// Phase offsets FixedWindow's boundaries from whole seconds.
	Phase time.Duration
	// Penalty is the penalty box's length: PenaltyFixed, PenaltyExtend.
	Penalty time.Duration
	// Slope is SoftLimit's excess over capacity, as a share of it, at which
	// every answer is throttled.
	Slope float64
	// Service is Concurrency's service time at which N/Service would equal
	// the capacity (N is rounded, then the service time adjusted to N/capacity),
	// and Queue's fixed work per request on top of its wait.
	Service time.Duration
	// MaxQueue is the longest wait Queue accepts before it throttles.
	MaxQueue time.Duration
}

// Spec is one member of the family: a kind, whether throttled answers carry
// Retry-After, the seed its parameters are drawn from, and which half of the
// family it is in.
type Spec struct {
	Kind       Kind
	RetryAfter bool
	Seed       int64
	// HeldOut: the spec is in the half a limiter is judged on, not tuned on.
	HeldOut bool
	Params  Params
}

// NewSpec draws the parameters of kind from seed. HeldOut is false; Family
// and Parse set it for members of the held-out half.
func NewSpec(kind Kind, retryAfter bool, seed int64) Spec {
	s := Spec{Kind: kind, RetryAfter: retryAfter, Seed: seed}
	r := rand.New(rand.NewPCG(uint64(seed), 0x7e57+uint64(kind)))
	between := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(r.Float64()*float64(hi-lo))
	}
	p := &s.Params
	switch kind {
	case BucketSmall:
		p.Burst = between(100*time.Millisecond, 500*time.Millisecond)
	case BucketLarge:
		p.Burst = between(3*time.Second, 10*time.Second)
	case FixedWindow:
		p.Window = time.Second
		p.Phase = between(0, time.Second).Truncate(time.Millisecond)
	case SlidingWindow:
		p.Window = between(time.Second, 10*time.Second).Truncate(10 * time.Millisecond)
	case PenaltyFixed:
		p.Burst = between(250*time.Millisecond, 1500*time.Millisecond)
		p.Penalty = between(2*time.Second, 15*time.Second).Truncate(100 * time.Millisecond)
	case PenaltyExtend:
		p.Burst = between(250*time.Millisecond, 1500*time.Millisecond)
		p.Penalty = between(time.Second, 5*time.Second).Truncate(100 * time.Millisecond)
	case SoftLimit:
		p.Window = between(time.Second, 5*time.Second).Truncate(10 * time.Millisecond)
		p.Slope = math.Round((0.1+r.Float64()*0.4)*100) / 100
	case Concurrency:
		p.Service = between(100*time.Millisecond, 600*time.Millisecond).Truncate(time.Millisecond)
	case Queue:
		p.Service = between(20*time.Millisecond, 150*time.Millisecond).Truncate(time.Millisecond)
		p.MaxQueue = between(500*time.Millisecond, 3*time.Second).Truncate(10 * time.Millisecond)
	}
	p.Burst = p.Burst.Truncate(10 * time.Millisecond)
	return s
}

// Name is the spec's name, KIND[-ra]-SEED, e.g. penalty-extend-ra-4: the
// form Parse reads.
func (s Spec) Name() string {
	ra := ""
	if s.RetryAfter {
		ra = "-ra"
	}
	return fmt.Sprintf("%s%s-%d", s.Kind, ra, s.Seed)
}

// Half is "held-out" or "tuning".
func (s Spec) Half() string {
	if s.HeldOut {
		return "held-out"
	}
	return "tuning"
}

// String describes the spec, its half and its parameters in one line.
func (s Spec) String() string {
	return fmt.Sprintf("%s (%s): %s", s.Name(), s.Half(), s.Describe())
}

// Describe says the spec's parameters and whether it sends Retry-After.
func (s Spec) Describe() string {
	p := s.Params
	var d string
	switch s.Kind {
	case BucketSmall, BucketLarge:
		d = fmt.Sprintf("burst %v of capacity", p.Burst)
	case FixedWindow:
		d = fmt.Sprintf("window %v at phase %v", p.Window, p.Phase)
	case SlidingWindow:
		d = fmt.Sprintf("window %v", p.Window)
	case PenaltyFixed, PenaltyExtend:
		d = fmt.Sprintf("burst %v of capacity, penalty %v", p.Burst, p.Penalty)
	case SoftLimit:
		d = fmt.Sprintf("window %v, all throttled at %.2f× capacity", p.Window, 1+p.Slope)
	case Concurrency:
		d = fmt.Sprintf("service time ~%v", p.Service)
	case Queue:
		d = fmt.Sprintf("service %v + backlog, throttled beyond a %v wait", p.Service, p.MaxQueue)
	}
	ra := "no Retry-After"
	if s.RetryAfter {
		ra = "Retry-After"
	}
	return d + "; " + ra
}

// Available is the rate a model built for capacity sustains indefinitely
// without throttling requests sent evenly spaced: capacity, except for the
// window kinds, which allow a whole number of requests per window.
func (s Spec) Available(capacity float64) float64 {
	switch s.Kind {
	case FixedWindow, SlidingWindow:
		w := s.Params.Window.Seconds()
		return float64(windowLimit(capacity, s.Params.Window)) / w
	}
	return capacity
}

// New builds the model for capacity requests/s (per key). The capacity
// must be positive; a caller wanting no limit does not call a model.
func (s Spec) New(capacity float64) Model {
	capacity = max(capacity, minCapacity)
	switch s.Kind {
	case BucketSmall, BucketLarge, PenaltyFixed, PenaltyExtend:
		return newBucketModel(s, capacity)
	case FixedWindow:
		return newFixedWindow(s, capacity)
	case SlidingWindow:
		return newSlidingWindow(s, capacity)
	case SoftLimit:
		return newSoftLimit(s, capacity)
	case Concurrency:
		return newConcurrency(s, capacity)
	case Queue:
		return newQueue(s, capacity)
	}
	panic("throttlemodel: unknown kind " + s.Kind.String())
}

// minCapacity keeps a model's arithmetic finite.
const minCapacity = 1e-3

// Parse reads a spec's name, KIND[-ra]-SEED: any seed, not only the
// family's. HeldOut is set when the name is a member of the held-out half.
func Parse(name string) (Spec, error) {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return Spec{}, fmt.Errorf("throttle model %q: want KIND[-ra]-SEED such as penalty-extend-ra-4", name)
	}
	seed, err := strconv.ParseInt(name[i+1:], 10, 64)
	if err != nil {
		return Spec{}, fmt.Errorf("throttle model %q: want KIND[-ra]-SEED such as penalty-extend-ra-4", name)
	}
	kindName, ra := strings.CutSuffix(name[:i], "-ra")
	kind, err := ParseKind(kindName)
	if err != nil {
		return Spec{}, fmt.Errorf("throttle model %q: %w", name, err)
	}
	s := NewSpec(kind, ra, seed)
	for _, m := range Family() {
		if m.Name() == s.Name() {
			s.HeldOut = m.HeldOut
		}
	}
	return s, nil
}
