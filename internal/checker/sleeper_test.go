package checker

import (
	"context"
	"errors"
	"testing"
	"time"
)

// cancelledOnWait is a context cancelled as soon as something waits for
// it to end (calls Done): a sleep is cancelled once it is under way,
// however long it took to get there.
type cancelledOnWait struct {
	context.Context
	cancel context.CancelFunc
}

func (c cancelledOnWait) Done() <-chan struct{} {
	c.cancel()
	return c.Context.Done()
}

// TestSleeperSleepsItsTime: a pass's sleeps end at their time, never
// before, and a cancelled one at once, without cutting the next one short.
// Not in parallel: it measures how late sleeps end, and other tests' work
// would be measured with them.
func TestSleeperSleepsItsTime(t *testing.T) {
	s := newSleepers(1)
	tfd := s.get()
	defer s.put(tfd)
	ctx := t.Context()
	for _, d := range []time.Duration{3 * time.Millisecond, 4700 * time.Microsecond, 20 * time.Millisecond} {
		// On a loaded machine a woken goroutine may wait for a thread:
		// one late end is the scheduler's, every one the sleeper's.
		var late []time.Duration
		for range 5 {
			start := time.Now()
			if err := sleepOn(ctx, tfd, d); err != nil {
				t.Fatal(err)
			}
			got := time.Since(start)
			if got < d {
				t.Errorf("slept %s for %s", got, d)
			}
			if got <= d+50*time.Millisecond {
				late = nil
				break
			}
			late = append(late, got)
		}
		if late != nil {
			t.Errorf("slept %v for %s", late, d)
		}
	}

	cctx, cancel := context.WithCancel(ctx)
	slept := make(chan error, 1)
	start := time.Now()
	go func() { slept <- sleepOn(cancelledOnWait{cctx, cancel}, tfd, time.Hour) }()
	select {
	case err := <-slept:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled sleep: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled sleep went on")
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
	t.Parallel()
	s := newSleepers(1)
	a, b := s.get(), s.get()
	s.put(a)
	s.put(b) // closed: the pool keeps one
	if c := s.get(); c != a {
		t.Errorf("got a new sleeper, want the one put back")
	}
	if err := sleepOn(t.Context(), nil, time.Millisecond); err != nil {
		t.Errorf("runtime timer fallback: %v", err)
	}
}
