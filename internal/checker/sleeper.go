package checker

import (
	"context"
	"time"
)

// A pass sleeps until each of its rate-limit slots, and every sleep ends in
// a wake-up of the process: at a paced rate the wake-ups, not the requests,
// are most of the worker's CPU. The runtime's own timers cost more per
// wake-up than they need to. Its poller waits for the next timer in whole
// milliseconds (epoll_wait), so a sleep of 4.7 ms wakes the process after
// 4 ms, finds nothing due, and sleeps again; and readying the sleeping
// goroutine wakes a second thread to look for more work, which mostly finds
// none. On Linux a pass therefore sleeps on a timerfd instead, read through
// the runtime's poller: the read ends when the timer expires, to the
// microsecond, and the thread that polled it runs the pass
// (sleeper_linux.go). Elsewhere, or if no timerfd can be had, it uses the
// runtime's timers.

// sleepers keeps the handler's timerfds between passes, so that a pass
// costs no system call to get one.
type sleepers struct{ free chan *timerFD }

func newSleepers(n int) *sleepers { return &sleepers{free: make(chan *timerFD, max(n, 1))} }

// get is a timerfd for one pass, nil if there is none to be had.
func (s *sleepers) get() *timerFD {
	select {
	case t := <-s.free:
		return t
	default:
	}
	t, err := newTimerFD()
	if err != nil {
		return nil
	}
	return t
}

// put takes back what get gave, once the pass is over.
func (s *sleepers) put(t *timerFD) {
	if t == nil {
		return
	}
	select {
	case s.free <- t:
	default:
		t.close()
	}
}

// sleepOn sleeps for d on t, or on the runtime's timers if t is nil. It
// returns ctx's error if ctx ends first.
func sleepOn(ctx context.Context, t *timerFD, d time.Duration) error {
	if t == nil || d <= 0 {
		return sleep(ctx, d)
	}
	return t.sleep(ctx, d)
}
