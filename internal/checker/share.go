package checker

import (
	"math"
	"sync"
	"time"
)

// share keeps one tenant from holding all of a worker's slots. A tenant at
// rate R whose requests take L seconds needs about R·L requests in flight;
// every batch beyond that only sleeps on the tenant's rate limit while
// holding a slot another tenant could use. So a tenant may hold at most
// 2·R·L+2 batches of this worker at once (the factor 2 absorbs latency
// jitter), plus two: one for the batch being replaced when another finishes,
// which comes back from the queue only after a short delay. Extra batches go
// back to the queue until one of its batches could have finished. Until a
// tenant's first requests are measured it is not limited.
type share struct {
	mu      sync.Mutex
	slots   int // the worker's concurrency
	tenants map[string]*tenantLoad
}

type tenantLoad struct {
	active  int
	latency float64 // EWMA of request latency, seconds; 0 = unknown
	rate    float64 // last rate seen from the limiter, requests/s
}

// latencyWeight is the EWMA weight of a new latency sample.
const latencyWeight = 0.2

// minShareDelay and maxShareDelay bound when an over-share batch comes back:
// asynq forwards deferred tasks once a second, so less is not useful, and
// the rate that sizes the delay may be climbing fast (slow start), so a
// batch parked for long would come back to find the tenant idle.
const (
	minShareDelay = time.Second
	maxShareDelay = 5 * time.Second
)

func newShare(slots int) *share {
	return &share{slots: slots, tenants: make(map[string]*tenantLoad)}
}

func (s *share) load(tenant string) *tenantLoad {
	t := s.tenants[tenant]
	if t == nil {
		t = &tenantLoad{}
		s.tenants[tenant] = t
	}
	return t
}

// limit is how many batches tenant may hold now.
func (t *tenantLoad) limit(slots int) int {
	if t.latency == 0 || t.rate == 0 || slots < 1 {
		return max(slots, 1)
	}
	return min(slots, int(math.Ceil(2*t.rate*t.latency))+2)
}

// acquire takes a slot for a batch of n addresses of tenant. When the tenant
// holds its share, it returns false and how long until it is worth trying
// again: about half the time one of its batches takes at its rate.
func (s *share) acquire(tenant string, n int) (bool, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.load(tenant)
	if t.active >= t.limit(s.slots) {
		d := minShareDelay
		if t.rate > 0 {
			d = max(d, time.Duration(float64(n)/t.rate/2*float64(time.Second)))
		}
		return false, min(d, maxShareDelay)
	}
	t.active++
	return true, 0
}

func (s *share) release(tenant string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tenants[tenant]; t != nil && t.active > 0 {
		t.active--
	}
}

// observe records a request's latency and the tenant's current rate.
func (s *share) observe(tenant string, latency time.Duration, rate float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.load(tenant)
	if t.latency == 0 {
		t.latency = latency.Seconds()
	} else {
		t.latency += latencyWeight * (latency.Seconds() - t.latency)
	}
	if rate > 0 {
		t.rate = rate
	}
}
