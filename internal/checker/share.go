package checker

import (
	"context"
	"math"
	"sync"
	"time"
)

// share keeps one tenant from holding all of a worker's slots. A tenant at
// rate R whose requests take L seconds needs about R·L requests in flight;
// every batch beyond that only sleeps on the tenant's rate limit while
// holding a slot another tenant could use. So a tenant may hold at most
// 2·R·L+2 batches of this worker at once (the factor 2 absorbs latency
// jitter, the 2 covers the batch that is about to finish). Until a tenant's
// first requests are measured it is not limited.
//
// One more batch of the tenant may wait in its slot as a standby: it takes
// over the moment one of the tenant's batches finishes, so the tenant's
// rate does not dip while the queue hands out the next batch. Batches
// beyond the standby go back to the queue until one of the tenant's batches
// could have finished.
type share struct {
	mu      sync.Mutex
	slots   int // the worker's concurrency
	tenants map[string]*tenantLoad
}

type tenantLoad struct {
	active  int
	standby bool          // a batch waits for the tenant's next free slot
	freed   chan struct{} // closed, and replaced, when a batch releases
	latency float64       // EWMA of request latency, seconds; 0 = unknown
	rate    float64       // last rate seen from the limiter, requests/s
}

// latencyWeight is the EWMA weight of a new latency sample.
const latencyWeight = 0.2

// minShareDelay and maxShareDelay bound how long a batch over the share
// waits, as standby or back in the queue: asynq forwards deferred tasks
// about once a second, so less is not useful, and the rate that sizes the
// delay may be climbing fast (slow start), so a batch parked for long would
// come back to find the tenant idle.
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
		t = &tenantLoad{freed: make(chan struct{})}
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

// delay is how long a batch of n addresses over the share waits: about
// half the time one of the tenant's batches takes at its rate.
func (t *tenantLoad) delay(n int) time.Duration {
	d := minShareDelay
	if t.rate > 0 {
		d = max(d, time.Duration(float64(n)/t.rate/2*float64(time.Second)))
	}
	return min(d, maxShareDelay)
}

// acquire takes a slot for a batch of n addresses of tenant. Over the
// tenant's share, the first such batch waits as the standby, up to the
// share delay, for one of the tenant's batches to release; any other gets
// false and how long until it is worth trying again.
func (s *share) acquire(ctx context.Context, tenant string, n int) (bool, time.Duration, error) {
	s.mu.Lock()
	t := s.load(tenant)
	if t.active < t.limit(s.slots) {
		t.active++
		s.mu.Unlock()
		return true, 0, nil
	}
	d := t.delay(n)
	if t.standby {
		s.mu.Unlock()
		return false, d, nil
	}
	t.standby = true
	s.mu.Unlock()

	timer := time.NewTimer(d)
	defer timer.Stop()
	s.mu.Lock()
	defer func() { t.standby = false; s.mu.Unlock() }()
	for t.active >= t.limit(s.slots) {
		freed := t.freed
		s.mu.Unlock()
		select {
		case <-freed:
		case <-timer.C:
			s.mu.Lock()
			return false, d, nil
		case <-ctx.Done():
			s.mu.Lock()
			return false, 0, ctx.Err()
		}
		s.mu.Lock()
	}
	t.active++
	return true, 0, nil
}

func (s *share) release(tenant string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tenants[tenant]; t != nil && t.active > 0 {
		t.active--
		close(t.freed)
		t.freed = make(chan struct{})
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
