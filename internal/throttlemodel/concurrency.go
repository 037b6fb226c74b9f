package throttlemodel

import (
	"container/heap"
	"math"
	"time"
)

// concurrency admits at most n requests in flight per key, each held for the
// service time n/capacity, so that n/service = capacity exactly: a rate at
// the capacity, evenly spaced, finds a slot freed for each request.
type concurrency struct {
	spec    Spec
	n       int
	service time.Duration
	flights keyed[finishHeap]
}

func newConcurrency(s Spec, capacity float64) *concurrency {
	m := &concurrency{spec: s, flights: newKeyed(func() *finishHeap { return &finishHeap{} })}
	m.size(capacity)
	return m
}

// size sets n to the drawn service time's worth of capacity (at least one)
// and the service time to n/capacity, truncated so that n/service is never
// below the capacity.
func (m *concurrency) size(capacity float64) {
	m.n = max(1, int(math.Round(capacity*m.spec.Params.Service.Seconds())))
	m.service = seconds(float64(m.n) / capacity)
}

func (m *concurrency) Admit(now time.Time, key string) Decision {
	h := m.flights.get(key)
	for h.Len() > 0 && !(*h)[0].After(now) {
		heap.Pop(h)
	}
	if h.Len() >= m.n {
		return m.spec.throttled((*h)[0].Sub(now))
	}
	heap.Push(h, now.Add(m.service))
	return Decision{Latency: m.service}
}

// SetCapacity resizes the limit and the service time for requests admitted
// from now on; requests in flight keep their finish times.
func (m *concurrency) SetCapacity(_ time.Time, perSecond float64) {
	m.size(max(perSecond, minCapacity))
}

// finishHeap is a min-heap of finish times.
type finishHeap []time.Time

func (h finishHeap) Len() int           { return len(h) }
func (h finishHeap) Less(i, j int) bool { return h[i].Before(h[j]) }
func (h finishHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *finishHeap) Push(x any)        { *h = append(*h, x.(time.Time)) }
func (h *finishHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}
