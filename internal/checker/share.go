package checker

import (
	"context"
	"math"
	"sync"
	"time"
)

// share keeps one tenant from holding all of a worker's slots. A tenant at
// rate R whose requests take L seconds needs about R·L requests in flight,
// and a batch keeps up to InFlightPerBatch (k) of them; every batch beyond
// that only sleeps on the tenant's rate limit while holding a slot another
// tenant could use. So a tenant may have at most ⌈2·R·L/k⌉+2 batches of this
// worker checking at once (the factor 2 absorbs latency jitter, the 2 covers
// the batches about to finish, waiting for their slowest answers). Until a
// tenant's first requests are measured it is not limited. When other
// tenants' batches came to this worker lately, a tenant also leaves each of
// them its fair part of the slots (or what its rate uses, if less): a
// tenant that needs every slot would otherwise keep them, since a slot it
// frees is as likely to go to its own next batch as to another tenant's.
//
// A batch over the share waits in its slot, as a standby, for one of the
// tenant's batches to finish and takes over at once, so the tenant's rate
// does not dip while the queue hands out the next batch. The wait is short
// (the share delay): then the batch goes back to the queue and the slot
// takes the next task, which may be another tenant's. Handing every
// over-share batch straight back instead would cycle the whole queue
// through asynq's retry set, several Redis round trips per batch, as fast as
// the spare slots can move it.
type share struct {
	mu      sync.Mutex
	slots   int // the worker's concurrency
	tenants map[string]*tenantLoad
	now     func() time.Time
}

type tenantLoad struct {
	active  int
	freed   chan struct{} // closed, and replaced, when a batch releases
	latency float64       // EWMA of request latency, seconds; 0 = unknown
	rate    float64       // last rate seen from the limiter, requests/s
	seen    time.Time     // when its last batch came for a slot
	waiting int           // its batches waiting as standby
}

// presence is how long after its last batch came for a slot a tenant counts
// as wanting this worker's slots.
const presence = 5 * time.Second

func (t *tenantLoad) present(now time.Time) bool {
	return t.active > 0 || t.waiting > 0 || now.Sub(t.seen) < presence
}

// latencyWeight is the EWMA weight of a new latency sample.
const latencyWeight = 0.2

// minShareDelay and maxShareDelay bound the share delay, how long a batch
// over the share waits as standby and then back in the queue: about half
// the time one of the tenant's batches takes at its rate, and at least a
// second, since asynq forwards deferred tasks only so often; at most five,
// since the rate that sizes it may be climbing fast (slow start).
const (
	minShareDelay = time.Second
	maxShareDelay = 5 * time.Second
)

func newShare(slots int) *share {
	return &share{slots: slots, tenants: make(map[string]*tenantLoad), now: time.Now}
}

func (s *share) load(tenant string) *tenantLoad {
	t := s.tenants[tenant]
	if t == nil {
		t = &tenantLoad{freed: make(chan struct{})}
		s.tenants[tenant] = t
	}
	return t
}

// limit is how many batches tenant may hold now: what its rate uses, less
// what the other tenants present are owed (each its fair part of the slots,
// or what its rate uses if less), but at least one.
func (s *share) limit(tenant string, t *tenantLoad) int {
	need := t.need(s.slots)
	now := s.now()
	present := 1
	for name, o := range s.tenants {
		if name != tenant && o.present(now) {
			present++
		}
	}
	if present == 1 {
		return need
	}
	fair, owed := max(1, s.slots/present), 0
	for name, o := range s.tenants {
		if name != tenant && o.present(now) {
			owed += min(o.need(s.slots), fair)
		}
	}
	return max(1, min(need, s.slots-owed))
}

// need is how many batches the tenant's rate can keep busy, at most slots.
func (t *tenantLoad) need(slots int) int {
	if t.latency == 0 || t.rate == 0 || slots < 1 {
		return max(slots, 1)
	}
	return min(slots, SlotsFor(t.rate, time.Duration(t.latency*float64(time.Second))))
}

// SlotsFor is how many batches a tenant at rate requests/s whose requests
// take latency can keep busy: ⌈2·R·L/InFlightPerBatch⌉+2 (see share). The
// autoscaler sizes the worker count with the same rule, so it never asks for
// slots the workers would refuse the tenant.
func SlotsFor(rate float64, latency time.Duration) int {
	// A whole number of batches, off by floating-point rounding, is not
	// one more batch.
	return int(math.Ceil(2*rate*latency.Seconds()/InFlightPerBatch-1e-9)) + 2
}

// delay is the share delay of a batch of n addresses.
func (t *tenantLoad) delay(n int) time.Duration {
	d := minShareDelay
	if t.rate > 0 {
		d = max(d, time.Duration(float64(n)/t.rate/2*float64(time.Second)))
	}
	return min(d, maxShareDelay)
}

// acquire takes a slot for a batch of n addresses of tenant. Over the
// tenant's share, it waits up to the share delay for one of the tenant's
// batches to release; if none does, it returns false and the share delay,
// for the batch to go back to the queue for that long.
func (s *share) acquire(ctx context.Context, tenant string, n int) (bool, time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.load(tenant)
	t.seen = s.now()
	d := t.delay(n)
	var timeout <-chan time.Time
	for t.active >= s.limit(tenant, t) {
		if timeout == nil {
			timer := time.NewTimer(d)
			defer timer.Stop()
			timeout = timer.C
		}
		freed := t.freed
		t.waiting++
		s.mu.Unlock()
		select {
		case <-freed:
			s.mu.Lock()
			t.waiting--
		case <-timeout:
			s.mu.Lock()
			t.waiting--
			return false, d, nil
		case <-ctx.Done():
			s.mu.Lock()
			t.waiting--
			return false, 0, ctx.Err()
		}
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

// latency is the tenant's measured request latency, 0 if none yet.
func (s *share) latency(tenant string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tenants[tenant]; t != nil {
		return time.Duration(t.latency * float64(time.Second))
	}
	return 0
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
