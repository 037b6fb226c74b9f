package checker

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestSleeperSleepsItsTime: a pass's sleeps end at their time, never
// before, and a cancelled one at once, without cutting the next one short.
func TestSleeperSleepsItsTime(t *testing.T) {
	s := newSleepers(1)
	tfd := s.get()
	defer s.put(tfd)
	ctx := context.Background()
	for _, d := range []time.Duration{3 * time.Millisecond, 4700 * time.Microsecond, 20 * time.Millisecond} {
		start := time.Now()
		if err := sleepOn(ctx, tfd, d); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(start); got < d || got > d+50*time.Millisecond {
			t.Errorf("slept %s for %s", got, d)
		}
	}

	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(10*time.Millisecond, cancel)
	start := time.Now()
	if err := sleepOn(cctx, tfd, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled sleep: %v", err)
	}
	if got := time.Since(start); got > time.Second {
		t.Fatalf("cancelled sleep took %s", got)
	}
	if err := sleepOn(cctx, tfd, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("sleep on a done context: %v", err)
	}

	// The cancellation is spent: the next sleep lasts its time.
	start = time.Now()
	if err := sleepOn(ctx, tfd, 15*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if got := time.Since(start); got < 15*time.Millisecond {
		t.Errorf("sleep after a cancelled one took %s, want 15ms", got)
	}
}

// TestSleepersAreReused: a pass's timerfd goes back for the next pass, and
// one more than the pool keeps is closed.
func TestSleepersAreReused(t *testing.T) {
	s := newSleepers(1)
	a, b := s.get(), s.get()
	s.put(a)
	s.put(b) // closed: the pool keeps one
	if c := s.get(); c != a {
		t.Errorf("got a new sleeper, want the one put back")
	}
	if err := sleepOn(context.Background(), nil, time.Millisecond); err != nil {
		t.Errorf("runtime timer fallback: %v", err)
	}
}
