package checker

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
)

// Backoff returns the "full jitter" delay before attempt number attempt+1 of
// an address that failed attempt times: uniform in [0, min(max, base·2^(attempt-1))].
// Full jitter spreads retries of many workers so they do not hit the service
// in lockstep. rnd returns a uniform int64 in [0, n).
func Backoff(attempt int, base, max time.Duration, rnd func(n int64) int64) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	ceil := base
	for i := 1; i < attempt && ceil < max; i++ {
		ceil *= 2
	}
	if ceil > max {
		ceil = max
	}
	if ceil <= 0 {
		return 0
	}
	return time.Duration(rnd(int64(ceil) + 1))
}

// deferError hands a task back to the queue until a delay has passed.
type deferError struct {
	delay       time.Duration
	rateLimited bool // waiting for a slot: not a failure, costs no retry
	reason      string
}

func (e *deferError) Error() string { return e.reason }

// Retry delays of a batch that failed as a whole: its worker died holding it
// (asynq recovers it once its lease expires) or Redis failed. asynq's
// default waits 15 s to 45 s on the first retry and grows as n⁴.
const (
	taskRetryBase = time.Second
	taskRetryMax  = time.Minute
)

// RetryDelay is asynq's RetryDelayFunc: the handler decides the delay of a
// deferred batch; any other failure is retried after a full-jitter backoff
// over the task's n earlier retries.
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var d *deferError
	if errors.As(err, &d) {
		return d.delay
	}
	return Backoff(n+1, taskRetryBase, taskRetryMax, randInt64N)
}

// IsFailure is asynq's IsFailure: waiting for the rate limiter is not one.
func IsFailure(err error) bool {
	var d *deferError
	return !errors.As(err, &d) || !d.rateLimited
}

func randInt64N(n int64) int64 { return rand.Int64N(n) }
