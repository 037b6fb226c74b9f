package checker

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// acquireNow takes a slot that must be free at once.
func acquireNow(t *testing.T, s *share, tenant string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if ok, _, err := s.acquire(ctx, tenant, 50); !ok || err != nil {
		t.Fatalf("%s: slot refused (err %v)", tenant, err)
	}
}

func TestShareLimitsATenantToWhatItsRateUses(t *testing.T) {
	t.Parallel()
	// The share's waits are on its own channels and timers: in a bubble
	// the test knows when a waiting batch blocks, and waits no real time.
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		s := newShare(8)
		for i := 0; i < 8; i++ {
			acquireNow(t, s, "a") // not measured yet: all slots
		}
		for i := 0; i < 8; i++ {
			s.release("a")
		}
		// 100 requests/s at 50 ms each, 8 in flight per batch:
		// ⌈2·100·0.05/8⌉+2 = 4 batches.
		s.observe("a", 50*time.Millisecond, 100)
		for i := 0; i < 4; i++ {
			acquireNow(t, s, "a")
		}

		// The 5th and 6th wait in their slots; each freed slot goes to one.
		got := make(chan bool, 2) // a failed test leaves no sender blocked
		for i := 0; i < 2; i++ {
			go func() {
				ok, _, _ := s.acquire(ctx, "a", 50)
				got <- ok
			}()
		}
		acquireNow(t, s, "b") // another tenant is not held up
		for i := 0; i < 2; i++ {
			// Both wait for a slot again: the one that did not get the
			// last freed slot went back to waiting for the next.
			synctest.Wait()
			select {
			case <-got:
				t.Fatalf("a waiting batch took a slot before one was freed (%d freed)", i)
			default:
			}
			s.release("a")
			if !<-got {
				t.Fatal("the waiting batch was refused the freed slot")
			}
		}
		if s.tenants["a"].active != 4 {
			t.Fatalf("after takeovers: %d active, want 4", s.tenants["a"].active)
		}

		// A waiting batch whose tenant frees nothing goes back to the queue
		// after the share delay: half a batch time at 100/s, but at least
		// minShareDelay.
		start := time.Now()
		if ok, wait, err := s.acquire(ctx, "a", 50); ok || err != nil || wait != minShareDelay {
			t.Fatalf("waiting batch: ok=%v wait=%s err=%v, want refused for %s", ok, wait, err, minShareDelay)
		}
		if waited := time.Since(start); waited < minShareDelay {
			t.Errorf("the batch gave up after %s, before %s", waited, minShareDelay)
		}
		// ... or at once when its task is cancelled.
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, _, err := s.acquire(cctx, "a", 50); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled wait: err %v", err)
		}

		// A slow tenant (5/s) waits half a batch time, 50/5/2 = 5s, the most;
		// so does one whose rate is not known yet, at least minShareDelay.
		s.observe("slow", 200*time.Millisecond, 5)
		if d := s.tenants["slow"].delay(50); d != maxShareDelay {
			t.Errorf("slow tenant: share delay %s, want %s", d, maxShareDelay)
		}
		if d := s.load("new").delay(50); d != minShareDelay {
			t.Errorf("new tenant: share delay %s, want %s", d, minShareDelay)
		}
		// Never above the worker's slots.
		s.observe("huge", 10*time.Second, 1000)
		if got := s.load("huge").need(8); got != 8 {
			t.Errorf("limit = %d, want 8", got)
		}
	})
}

func TestShareLeavesOtherTenantsTheirPart(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := newShare(10)
		now := time.Now()
		s.now = func() time.Time { return now }
		// Each tenant's rate could keep every slot busy: 200/s at 300 ms.
		s.observe("a", 300*time.Millisecond, 200)
		s.observe("b", 300*time.Millisecond, 200)
		s.observe("c", 300*time.Millisecond, 200)
		// Alone, a takes every slot.
		for i := 0; i < 10; i++ {
			acquireNow(t, s, "a")
		}
		for i := 0; i < 5; i++ {
			s.release("a")
		}
		// b's batch comes: a may hold only half the slots now, and b the other
		// half.
		for i := 0; i < 5; i++ {
			acquireNow(t, s, "b")
		}
		refused := func(tenant string) {
			t.Helper()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
			defer cancel()
			if ok, _, _ := s.acquire(ctx, tenant, 50); ok {
				t.Fatalf("%s took a slot over its part", tenant)
			}
		}
		refused("a")
		refused("b")
		// A third tenant's batch is owed a part too: a third each.
		for i := 0; i < 2; i++ {
			s.release("a")
			s.release("b")
		}
		acquireNow(t, s, "c")
		if got, want := s.limit("a", s.tenants["a"]), 10-2*(10/3); got != want {
			t.Errorf("a's limit beside two other tenants: %d, want %d", got, want)
		}
		// Once the others are gone for a while, a has every slot again.
		for i := 0; i < 3; i++ {
			s.release("b")
		}
		s.release("c")
		now = now.Add(presence)
		if got := s.limit("a", s.tenants["a"]); got != 10 {
			t.Errorf("a's limit once alone again: %d, want 10", got)
		}
	})
}
