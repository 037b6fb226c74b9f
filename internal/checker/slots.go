package checker

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/msaudit/msaudit/internal/ratelimit"
)

// refillSpan is how much of its own use of a tenant's slots a worker
// reserves in one round trip: taking slots here at rate R (this worker's
// part of the tenant's rate, and no more than the tenant's rate),
// ⌊R·refillSpan⌋ slots (at least one, and no more than the pass asking
// still has addresses to send), kept in the tenant's pool for the next
// requests of any of its passes here. A round trip per request cost a paced
// worker a wake-up more per request (its answer comes back on its own). The
// span is short, so that few slots are left unused when the tenant's passes
// stop, and so that the round trips that refill the pool also confirm the
// epochs of the slots it hands out (staleCheckAfter): a slot needs a Stale
// round trip of its own only when none did for that long. Sized by the
// tenant's whole rate instead, the pools of several workers held slots
// their passes took late, and the sweep at C = 100 with four workers lost
// 2 to 3 % of the capacity.
const refillSpan = 20 * time.Millisecond

// takeGapWeight is the weight of a new gap between two takes in a pool's
// average gap, from which its rate of use is known.
const takeGapWeight = 0.2

// slotPools keeps, per tenant, the rate-limit slots this process reserved
// and has not handed out yet, and the newest epochs its round trips saw.
type slotPools struct {
	mu     sync.Mutex
	pools  map[string]*slotPool
	epochs map[string]epochSeen
}

// slotPool is one tenant's reserved slots, in time order.
type slotPool struct {
	mu   sync.Mutex
	held []heldSlot
	rate float64   // the tenant's rate at the last reservation; 0: unknown
	gap  float64   // average seconds between takes here; 0: unknown
	last time.Time // the time of the last slot handed out
	used time.Time // the last take, for the rate of use and pruning
}

// useRate is how many slots a second this process takes from the pool,
// 0 while unknown.
func (p *slotPool) useRate() float64 {
	if p.gap <= 0 {
		return 0
	}
	return 1 / p.gap
}

// refillSize is how many slots to reserve for a pass with want addresses
// left (see refillSpan). p.mu is held.
func (p *slotPool) refillSize(want int) int {
	return max(1, min(want, int(min(p.rate, p.useRate())*refillSpan.Seconds())))
}

// minTakeGap keeps passes that ask at the same instant from reading as an
// unbounded rate of use.
const minTakeGap = time.Millisecond

// took notes a take at now. p.mu is held.
func (p *slotPool) took(now time.Time) {
	if !p.used.IsZero() {
		// A pause or an idle spell is one long gap, not a rate: the
		// average moves by at most a second.
		g := min(max(now.Sub(p.used), minTakeGap).Seconds(), 1)
		if p.gap <= 0 {
			p.gap = g
		} else {
			p.gap += takeGapWeight * (g - p.gap)
		}
	}
	p.used = now
}

// heldSlot is a slot reserved and not handed out yet.
type heldSlot struct {
	r   ratelimit.Reservation
	due time.Time // its time, on this process's clock
}

// epochSeen is the newest epochs of a tenant a round trip saw, and when
// that round trip was sent.
type epochSeen struct {
	tenant, source int64
	at             time.Time
}

func newSlotPools() *slotPools {
	return &slotPools{pools: make(map[string]*slotPool), epochs: make(map[string]epochSeen)}
}

// pool is tenant's pool.
func (s *slotPools) pool(tenant string) *slotPool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pools[tenant]
	if p == nil {
		if len(s.pools) > 1000 {
			s.prune()
		}
		p = &slotPool{}
		s.pools[tenant] = p
	}
	return p
}

// prune forgets the tenants not seen for a minute. s.mu is held.
func (s *slotPools) prune() {
	now := time.Now()
	for t, p := range s.pools {
		p.mu.Lock()
		idle := !p.used.IsZero() && now.Sub(p.used) > time.Minute
		p.mu.Unlock()
		if idle {
			delete(s.pools, t)
		}
	}
	for t, e := range s.epochs {
		if now.Sub(e.at) > time.Minute {
			delete(s.epochs, t)
		}
	}
}

// saw records that a round trip sent at sent found r's epochs current.
func (s *slotPools) saw(tenant string, r ratelimit.Reservation, sent time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.epochs[tenant]
	switch {
	case !ok:
	case r.Epoch < cur.tenant || r.SourceEpoch < cur.source:
		// An older view, its reply overtaken by a newer one's. If it is
		// newer in the other epoch, neither view is confirmed.
		if r.Epoch > cur.tenant || r.SourceEpoch > cur.source {
			s.epochs[tenant] = epochSeen{tenant: max(r.Epoch, cur.tenant), source: max(r.SourceEpoch, cur.source)}
		}
		return
	case r.Epoch == cur.tenant && r.SourceEpoch == cur.source && !sent.After(cur.at):
		return
	}
	s.epochs[tenant] = epochSeen{tenant: r.Epoch, source: r.SourceEpoch, at: sent}
}

// fresh reports whether a round trip sent less than staleCheckAfter before
// now found r's epochs current: then no reaction can have made r stale
// since, by the same reasoning that spares a slot near its own reservation
// the check.
func (s *slotPools) fresh(tenant string, r ratelimit.Reservation, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.epochs[tenant]
	return ok && cur.tenant == r.Epoch && cur.source == r.SourceEpoch && now.Sub(cur.at) < staleCheckAfter
}

// take hands out the tenant's next slot, reserving the next ones of its
// schedule when the pool is empty, for a pass with want addresses left.
// Callers that find it empty at the same time each reserve; the pool keeps
// what they got in time order. Wait is counted from now. A slot not OK is
// the limiter's refusal, for this caller alone.
func (p *slotPool) take(ctx context.Context, h *Handler, tenant string, want int) (ratelimit.Reservation, error) {
	p.mu.Lock()
	if len(p.held) == 0 {
		n := p.refillSize(want)
		p.mu.Unlock()
		sent := time.Now()
		rs, err := h.limiter.ReserveN(ctx, tenant, n)
		if err != nil {
			return ratelimit.Reservation{}, err
		}
		got := time.Now()
		if r := rs[0]; r.Rate > 0 {
			h.metrics.rate.WithLabelValues(tenant).Set(r.Rate)
		}
		if !rs[0].OK {
			return rs[0], nil
		}
		for _, r := range rs {
			h.slots.saw(tenant, r, sent)
		}
		p.mu.Lock()
		p.rate = rs[0].Rate
		for _, r := range rs {
			p.insert(heldSlot{r: r, due: got.Add(r.Wait)})
		}
	}
	now := time.Now()
	p.took(now)
	s := p.held[0]
	p.held = p.held[1:]
	s.r.Wait = p.handOut(s, now).Sub(now)
	p.mu.Unlock()
	return s.r, nil
}

// insert adds s in time order. p.mu is held.
func (p *slotPool) insert(s heldSlot) {
	i := len(p.held)
	for i > 0 && p.held[i-1].due.After(s.due) {
		i--
	}
	p.held = slices.Insert(p.held, i, s)
}

// handOut is when to send in s, handed out at now: its time, or, if nobody
// took it in time, now but no sooner than one interval of its rate after
// the slot handed out before it, so that slots taken late together are not
// sent together. p.mu is held.
func (p *slotPool) handOut(s heldSlot, now time.Time) time.Time {
	due := s.due
	if due.Before(now) {
		due = now
		if s.r.Rate > 0 {
			if next := p.last.Add(time.Duration(float64(time.Second) / s.r.Rate)); next.After(due) {
				due = next
			}
		}
	}
	if due.After(p.last) {
		p.last = due
	}
	return due
}

// dropUpTo forgets the slots given in r's epochs or before: a throttle
// reaction made r stale, and them with it.
func (p *slotPool) dropUpTo(r ratelimit.Reservation) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = slices.DeleteFunc(p.held, func(s heldSlot) bool {
		return s.r.Epoch <= r.Epoch && s.r.SourceEpoch <= r.SourceEpoch
	})
}
