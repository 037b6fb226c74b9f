package checker

import (
	"context"
	"errors"
	"testing"
	"time"
)

// acquireNow takes a slot that must be free at once.
func acquireNow(t *testing.T, s *share, tenant string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if ok, _, err := s.acquire(ctx, tenant, 50); !ok || err != nil {
		t.Fatalf("%s: slot refused (err %v)", tenant, err)
	}
}

func TestShareLimitsATenantToWhatItsRateUses(t *testing.T) {
	ctx := context.Background()
	s := newShare(8)
	for i := 0; i < 8; i++ {
		acquireNow(t, s, "a") // not measured yet: all slots
	}
	for i := 0; i < 8; i++ {
		s.release("a")
	}
	// 100 requests/s at 10 ms each: 2·100·0.01+2 = 4 batches.
	s.observe("a", 10*time.Millisecond, 100)
	for i := 0; i < 4; i++ {
		acquireNow(t, s, "a")
	}

	// The 5th waits as the standby and takes the first slot freed.
	got := make(chan bool)
	go func() {
		ok, _, _ := s.acquire(ctx, "a", 50)
		got <- ok
	}()
	waitFor(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.tenants["a"].standby })
	// Meanwhile a 6th goes back to the queue at once, for half a batch
	// time at 100/s, but at least minShareDelay.
	if ok, wait, err := s.acquire(ctx, "a", 50); ok || err != nil || wait != minShareDelay {
		t.Fatalf("6th batch: ok=%v wait=%s err=%v, want refused for %s", ok, wait, err, minShareDelay)
	}
	acquireNow(t, s, "b") // another tenant is not held up
	s.release("a")
	if !<-got {
		t.Fatal("the standby did not take the freed slot")
	}
	if s.tenants["a"].active != 4 || s.tenants["a"].standby {
		t.Fatalf("after takeover: %+v", *s.tenants["a"])
	}

	// A standby whose tenant frees nothing gives up after the share delay.
	start := time.Now()
	if ok, wait, err := s.acquire(ctx, "a", 50); ok || err != nil || wait != minShareDelay {
		t.Fatalf("standby: ok=%v wait=%s err=%v", ok, wait, err)
	}
	if waited := time.Since(start); waited < minShareDelay {
		t.Errorf("standby gave up after %s, before %s", waited, minShareDelay)
	}
	// ... or when its task is cancelled.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := s.acquire(cctx, "a", 50); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled standby: err %v", err)
	}
	if s.tenants["a"].standby {
		t.Error("standby flag left set")
	}

	// A slow tenant (5/s) waits half a batch time, 50/5/2 = 5s, the most.
	s.observe("slow", 200*time.Millisecond, 5)
	for i := 0; i < 4; i++ { // 2·5·0.2+2 = 4
		acquireNow(t, s, "slow")
	}
	s.tenants["slow"].standby = true // as if another batch were waiting
	if ok, wait, _ := s.acquire(ctx, "slow", 50); ok || wait != maxShareDelay {
		t.Errorf("slow tenant: ok=%v wait=%s, want refused for %s", ok, wait, maxShareDelay)
	}
	// Never above the worker's slots.
	s.observe("huge", 10*time.Second, 1000)
	if got := s.load("huge").limit(8); got != 8 {
		t.Errorf("limit = %d, want 8", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
	}
}
