package checker

import (
	"testing"
	"time"
)

func TestShareLimitsATenantToWhatItsRateUses(t *testing.T) {
	s := newShare(8)
	for i := 0; i < 8; i++ {
		if ok, _ := s.acquire("a", 50); !ok {
			t.Fatalf("unmeasured tenant refused slot %d", i)
		}
	}
	for i := 0; i < 8; i++ {
		s.release("a")
	}
	// 100 requests/s at 10 ms each: 2·100·0.01+2 = 4 batches.
	s.observe("a", 10*time.Millisecond, 100)
	for i := 0; i < 4; i++ {
		if ok, _ := s.acquire("a", 50); !ok {
			t.Fatalf("slot %d refused", i)
		}
	}
	ok, wait := s.acquire("a", 50)
	if ok || wait != minShareDelay {
		t.Fatalf("5th batch: ok=%v wait=%s, want refused for %s", ok, wait, minShareDelay)
	}
	if ok, _ := s.acquire("b", 50); !ok {
		t.Error("another tenant was refused")
	}
	s.release("a")
	if ok, _ := s.acquire("a", 50); !ok {
		t.Error("a freed slot was not reusable")
	}
	// A slow tenant (5/s) waits half a batch time, 50/5/2 = 5s, the most.
	s.observe("slow", 200*time.Millisecond, 5)
	for i := 0; i < 4; i++ { // 2·5·0.2+2 = 4
		s.acquire("slow", 50)
	}
	if ok, wait := s.acquire("slow", 50); ok || wait != maxShareDelay {
		t.Errorf("slow tenant: ok=%v wait=%s, want refused for %s", ok, wait, maxShareDelay)
	}
	// Never above the worker's slots.
	s.observe("huge", 10*time.Second, 1000)
	if got := s.load("huge").limit(8); got != 8 {
		t.Errorf("limit = %d, want 8", got)
	}
}
