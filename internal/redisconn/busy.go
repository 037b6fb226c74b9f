package redisconn

import (
	"context"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// busyPatience is how long a command refused by a Redis busy running a
// script is tried again before the refusal is returned.
const busyPatience = 20 * time.Second

// busyRetry waits out a Redis busy running a script. Once a Lua script has
// run longer than the server's busy-reply-threshold (5 s by default), Redis
// refuses every other client's command with a BUSY reply, running none of
// them, until the script ends. A script that takes milliseconds can cross
// that threshold on a starved host, and go-redis does not retry BUSY, so a
// status read or a worker's dequeue would fail outright. The hook tries a
// refused command again after 50 ms, doubling up to 1 s, for up to patience
// or until the command's context ends. A pipeline is tried again only when
// every command in it was refused: one that partly ran fails as before, since
// running it again would repeat what ran.
type busyRetry struct{ patience time.Duration }

func isBusy(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "BUSY ") }

func (busyRetry) DialHook(next redis.DialHook) redis.DialHook { return next }

func (b busyRetry) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if !isBusy(err) {
			return err
		}
		return b.again(ctx, err, isBusy, func() error {
			cmd.SetErr(nil)
			return next(ctx, cmd)
		})
	}
}

func (b busyRetry) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		allBusy := func(error) bool {
			for _, c := range cmds {
				if !isBusy(c.Err()) {
					return false
				}
			}
			return len(cmds) > 0
		}
		err := next(ctx, cmds)
		if !allBusy(err) {
			return err
		}
		return b.again(ctx, err, allBusy, func() error {
			for _, c := range cmds {
				c.SetErr(nil)
			}
			return next(ctx, cmds)
		})
	}
}

// again repeats try while refused says its last error is a refusal, waiting
// between tries, and returns the last error.
func (b busyRetry) again(ctx context.Context, err error, refused func(error) bool, try func() error) error {
	deadline := time.Now().Add(b.patience)
	for wait := 50 * time.Millisecond; refused(err); wait = min(2*wait, time.Second) {
		if time.Now().Add(wait).After(deadline) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		err = try()
	}
	return err
}
