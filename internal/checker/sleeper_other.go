//go:build !linux

package checker

import (
	"context"
	"errors"
	"time"
)

// timerFD exists only on Linux; elsewhere passes sleep on the runtime's
// timers.
type timerFD struct{}

func newTimerFD() (*timerFD, error) { return nil, errors.ErrUnsupported }

func (*timerFD) sleep(ctx context.Context, d time.Duration) error { return sleep(ctx, d) }

func (*timerFD) close() {}
