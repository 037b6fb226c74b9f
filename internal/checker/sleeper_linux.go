//go:build linux

package checker

import (
	"context"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// timerFD is a Linux timerfd read through the runtime's poller. One
// goroutine at a time sleeps on it.
type timerFD struct {
	f  *os.File
	fd int // f's descriptor (f.Fd would make it blocking)

	// mu and gen keep a cancellation that comes late, after its sleep
	// ended, from cutting short the next sleep.
	mu  sync.Mutex
	gen uint64
}

func newTimerFD() (*timerFD, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	// A non-blocking descriptor: the file is read through the poller.
	return &timerFD{f: os.NewFile(uintptr(fd), "timerfd"), fd: fd}, nil
}

// arm sets the timer to expire once, d from now. Setting it also clears
// any expiration not read yet.
func (t *timerFD) arm(d time.Duration) error {
	return unix.TimerfdSettime(t.fd, 0, &unix.ItimerSpec{Value: unix.NsecToTimespec(int64(max(d, 1)))}, nil)
}

func (t *timerFD) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	deadline := time.Now().Add(d)
	t.mu.Lock()
	t.gen++
	gen := t.gen
	err := t.arm(d)
	t.mu.Unlock()
	if err != nil {
		return sleep(ctx, d)
	}
	// A cancellation makes the timer expire at once.
	stop := context.AfterFunc(ctx, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.gen == gen {
			t.arm(0)
		}
	})
	var buf [8]byte
	_, err = t.f.Read(buf[:])
	stop()
	t.mu.Lock()
	t.gen++
	t.mu.Unlock()
	if err != nil {
		// Not expected of a timerfd; the runtime's timers will do.
		return sleep(ctx, time.Until(deadline))
	}
	return ctx.Err()
}

func (t *timerFD) close() { t.f.Close() }
