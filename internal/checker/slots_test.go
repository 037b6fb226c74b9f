package checker

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msaudit/msaudit/internal/ratelimit"
	"github.com/msaudit/msaudit/internal/redistest"
	"github.com/msaudit/msaudit/internal/runstore"
)

// reserveTrips counts the round trips that take rate-limit slots.
type reserveTrips struct{ n atomic.Int64 }

func (c *reserveTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func isReserve(cmd redis.Cmder) bool {
	return (cmd.Name() == "evalsha" || cmd.Name() == "eval") && len(cmd.Args()) > 3 &&
		strings.HasPrefix(cmd.Args()[3].(string), "msaudit:rl:tenant:")
}

func (c *reserveTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if isReserve(cmd) {
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (c *reserveTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && isReserve(cmds[0]) {
			c.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

// TestSlotsAreReservedSeveralAtATime: at 200/s a pass reserves the slots of
// about 20 ms in each round trip, and still sends at the rate. Not in
// parallel: a refill's size follows how the takes fall in time, which
// other tests' work would spread.
func TestSlotsAreReservedSeveralAtATime(t *testing.T) {
	rdb := redistest.Client(t)
	trips := &reserveTrips{}
	rdb.AddHook(trips)
	fr := &fakeRealm{calls: map[string]int{}}
	addrs := make([]string, 40)
	for i := range addrs {
		addrs[i] = string(rune('a'+i%26)) + string(rune('a'+i/26)) + "@x.com"
	}
	h, p := setup(t, rdb, ratelimit.Config{TenantRate: 200, MaxWait: time.Second}, fr, addrs...)
	start := time.Now()
	if err := h.ProcessTask(t.Context(), task(t, p)); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 190*time.Millisecond {
		t.Errorf("40 requests at 200/s took %s, want at least 195ms", took)
	}
	// The first two round trips take one slot each (the tenant's rate, then
	// this worker's use of its slots, are not known yet), the others about
	// four: about 11 in all, and far from one per slot however the takes
	// fall on a loaded machine.
	if n := trips.n.Load(); n > 20 {
		t.Errorf("%d round trips for 40 slots, want about 11", n)
	}
	if r, _ := h.store.GetRun(t.Context(), p.RunID); r.Checked != 40 || r.State() != runstore.StateCompleted {
		t.Errorf("run = %+v", r)
	}
}

// TestPooledSlotIsNotUsedAfterAReaction: a slot waiting in the pool while
// another worker reacted to a throttle is not used once no round trip of
// this worker has confirmed its epochs for staleCheckAfter.
func TestPooledSlotIsNotUsedAfterAReaction(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	cfg := ratelimit.Config{TenantRate: 1000, Initial: 100, Adaptive: true, MaxWait: time.Second}
	h, p := setup(t, rdb, cfg, &fakeRealm{calls: map[string]int{}}, "a@x.com")
	ctx, tenant := t.Context(), p.TenantID
	for range 2 { // learns the tenant's rate, then this worker's use
		if _, err := h.reserve(ctx, tenant, nil, 10); err != nil {
			t.Fatal(err)
		}
	}
	r, err := h.reserve(ctx, tenant, nil, 10) // reserves two, keeps one
	if err != nil || !r.OK {
		t.Fatalf("slot = %+v, %v", r, err)
	}
	pool := h.slots.pool(tenant)
	if len(pool.held) != 1 {
		t.Fatalf("pool holds %d slots, want 1", len(pool.held))
	}
	other, err := ratelimit.New(rdb, cfg) // another worker process
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Throttled(ctx, tenant, 0, r); err != nil {
		t.Fatal(err)
	}
	time.Sleep(staleCheckAfter + 5*time.Millisecond)
	got, err := h.reserve(ctx, tenant, nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got.OK || got.Wait < time.Second {
		t.Errorf("slot from before the reaction = %+v, want refused for the pause", got)
	}
	if len(pool.held) != 0 {
		t.Errorf("the pool kept %d stale slots", len(pool.held))
	}
}

// TestLateSlotsAreSpreadOut: slots nobody took in time are sent one
// interval apart, not together; slots on time keep their time.
func TestLateSlotsAreSpreadOut(t *testing.T) {
	t.Parallel()
	now := time.Now()
	r := ratelimit.Reservation{OK: true, Rate: 100} // 10 ms apart
	p := &slotPool{}
	for i := range 3 {
		p.insert(heldSlot{r: r, due: now.Add(time.Duration(i-5) * time.Millisecond)})
	}
	p.insert(heldSlot{r: r, due: now.Add(50 * time.Millisecond)})
	want := []time.Duration{0, 10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond}
	for i, w := range want {
		s := p.held[0]
		p.held = p.held[1:]
		if got := p.handOut(s, now).Sub(now); got != w {
			t.Errorf("slot %d sent %s from now, want %s", i, got, w)
		}
	}
}

// TestEpochsConfirmSlots: a round trip confirms the slots of the epochs it
// saw for staleCheckAfter; an older slot, or a reply overtaken by a newer
// one, confirms nothing.
func TestEpochsConfirmSlots(t *testing.T) {
	t.Parallel()
	s := newSlotPools()
	now := time.Now()
	r := ratelimit.Reservation{Epoch: 3, SourceEpoch: 1}
	if s.fresh("t", r, now) {
		t.Error("fresh before any round trip")
	}
	s.saw("t", r, now)
	if !s.fresh("t", r, now.Add(staleCheckAfter-time.Millisecond)) || s.fresh("t", r, now.Add(staleCheckAfter)) {
		t.Error("a round trip should confirm its epochs for staleCheckAfter, no longer")
	}
	newer := ratelimit.Reservation{Epoch: 4, SourceEpoch: 1}
	s.saw("t", newer, now.Add(time.Millisecond))
	if s.fresh("t", r, now.Add(2*time.Millisecond)) {
		t.Error("a slot of an older epoch is fresh")
	}
	s.saw("t", r, now.Add(3*time.Millisecond)) // overtaken reply
	if s.fresh("t", r, now.Add(4*time.Millisecond)) || !s.fresh("t", newer, now.Add(4*time.Millisecond)) {
		t.Error("an overtaken reply changed what is confirmed")
	}
	s.saw("t", ratelimit.Reservation{Epoch: 3, SourceEpoch: 2}, now.Add(5*time.Millisecond))
	if s.fresh("t", newer, now.Add(6*time.Millisecond)) {
		t.Error("with the tenant and source epochs seen moving apart, a slot is fresh")
	}
}

// TestRefillFollowsThisWorkersUse: a pool reserves 20 ms of what this
// worker takes, not of the tenant's whole rate, which several workers
// share.
func TestRefillFollowsThisWorkersUse(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		rate float64       // the tenant's, from the limiter
		gap  time.Duration // between this worker's takes
		want int
	}{
		{"one worker at 200/s", 200, 5 * time.Millisecond, 4},
		{"one of four workers at 100/s", 100, 40 * time.Millisecond, 1},
		{"passes asking together, tenant at 100/s", 100, 0, 2},
		{"rate not known yet", 0, 5 * time.Millisecond, 1},
	} {
		p := &slotPool{rate: c.rate}
		now := at
		for range 30 {
			p.took(now)
			now = now.Add(c.gap)
		}
		if got := p.refillSize(50); got != c.want {
			t.Errorf("%s: %d slots a refill, want %d", c.name, got, c.want)
		}
		if got := p.refillSize(1); got != 1 {
			t.Errorf("%s, one address left: %d slots a refill, want 1", c.name, got)
		}
	}
}
