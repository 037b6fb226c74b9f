package throttlemodel

import (
	"math"
	"time"
)

// Decision is a model's answer to one request.
type Decision struct {
	// Throttled: the service refuses the request.
	Throttled bool
	// RetryAfter is the Retry-After a throttled answer carries, in whole
	// seconds (at least one); 0 means no header (the spec has none, or the
	// request was admitted).
	RetryAfter time.Duration
	// Latency is the time the service takes over an admitted request
	// (Concurrency and Queue; 0 for the others), to add to whatever latency
	// the caller models for the network and the rest of the service.
	Latency time.Duration
}

// Model is one throttling service. Times passed to it never go backwards.
type Model interface {
	// Admit decides the request arriving at now under key (the throttle's
	// scope: one key for every request, or one per tenant).
	Admit(now time.Time, key string) Decision
	// SetCapacity changes the capacity from now on, for every key: what
	// happened before now keeps the old capacity.
	SetCapacity(now time.Time, perSecond float64)
}

// retryAfter is the header a throttled answer of s carries for a wait of d:
// d rounded up to whole seconds, at least one; 0 when s carries none.
func (s Spec) retryAfter(d time.Duration) time.Duration {
	if !s.RetryAfter {
		return 0
	}
	return time.Duration(max(1, math.Ceil(d.Seconds()))) * time.Second
}

// throttled is a throttled decision of s for a wait of d.
func (s Spec) throttled(d time.Duration) Decision {
	return Decision{Throttled: true, RetryAfter: s.retryAfter(d)}
}

// keyed holds one state per key, made on first use.
type keyed[T any] struct {
	m    map[string]*T
	make func() *T
}

func newKeyed[T any](mk func() *T) keyed[T] {
	return keyed[T]{m: make(map[string]*T), make: mk}
}

func (k keyed[T]) get(key string) *T {
	v := k.m[key]
	if v == nil {
		v = k.make()
		k.m[key] = v
	}
	return v
}

// seconds is d for a rate: n requests at perSecond take seconds(n/perSecond).
func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second))
}

// windowLimit is how many requests a window of w allows at capacity: a
// whole number, at least one.
func windowLimit(capacity float64, w time.Duration) int {
	return max(1, int(math.Floor(capacity*w.Seconds()+1e-9)))
}
