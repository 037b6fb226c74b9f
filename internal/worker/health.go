package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

const (
	// healthEvery is how often the worker checks that Redis takes a write
	// and answers a read.
	healthEvery = time.Second
	// healthTimeout is how long a check waits for its answer before the
	// worker calls Redis unreachable. The check goes on in the background
	// (until the client's own read timeout), and the next one waits for it
	// rather than pile up another command behind a dead connection.
	healthTimeout = time.Second
	// healthKeyTTL keeps a stopped worker's health key from lingering.
	healthKeyTTL = 10 * time.Second
	// healthMinGap is the shortest time between two checks, however often
	// a failing command asks for one.
	healthMinGap = 100 * time.Millisecond
)

// healthKeyPrefix starts each worker's health key: msaudit:health:<host>:<pid>:<random>.
const healthKeyPrefix = "msaudit:health:"

// A fault is what the last check found wrong with Redis, in words fit for
// a probe's answer; "" when nothing is.
type fault string

const (
	faultNone        fault = ""
	faultUnreachable fault = "redis unreachable"
	faultOOM         fault = "redis refusing writes (OOM)"
	faultReadOnly    fault = "redis refusing writes (read-only replica)"
	faultLoading     fault = "redis loading its data"
	faultRefusing    fault = "redis refusing writes"
)

// errNoAnswer is a check that got no answer within healthTimeout.
var errNoAnswer = fmt.Errorf("no answer within %s", healthTimeout)

// RedisFault is Ready's answer while the worker's last Redis check failed.
// Its text says what is wrong (unreachable, refusing writes for lack of
// memory, a read-only replica, ...) and quotes nothing of the connection.
type RedisFault struct{ What string }

func (e *RedisFault) Error() string { return e.What }

// healthState is what the checker last found. since is when Redis went
// from healthy to faulty (it stays as one fault turns into another).
type healthState struct {
	fault fault
	since time.Time
}

// healthChecker keeps the worker's view of Redis: a background loop writes
// and reads a key of this worker's every healthEvery, and the probe, the
// metrics and the log gate read the cached result without a Redis call.
// It logs one line per change of state.
type healthChecker struct {
	rdb   redis.UniversalClient
	key   string
	log   *zap.Logger
	state atomic.Pointer[healthState]
	kick  chan struct{}
	// pending is the check still awaiting its answer (loop only).
	pending chan error
}

func newHealthChecker(rdb redis.UniversalClient, log *zap.Logger) *healthChecker {
	h := &healthChecker{rdb: rdb, key: healthKey(), log: log, kick: make(chan struct{}, 1)}
	// redisconn.Open pinged Redis just before: healthy until checked.
	h.state.Store(&healthState{})
	return h
}

// healthKey names this process's key: unique, and telling whose it is.
func healthKey() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s%s:%d:%s", healthKeyPrefix, host, os.Getpid(), hex.EncodeToString(b))
}

// run checks Redis until ctx ends.
func (h *healthChecker) run(ctx context.Context) {
	for {
		h.check(ctx)
		last := time.Now()
		t := time.NewTimer(healthEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-h.kick:
			t.Stop()
			select {
			case <-ctx.Done():
				return
			case <-time.After(healthMinGap - time.Since(last)):
			}
		}
	}
}

// checkSoon asks for a check now, without waiting for it.
func (h *healthChecker) checkSoon() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// check probes Redis, waiting at most healthTimeout for the answer.
func (h *healthChecker) check(ctx context.Context) {
	if h.pending == nil {
		ch := make(chan error, 1)
		h.pending = ch
		go func() { ch <- h.probe(context.Background()) }()
	}
	t := time.NewTimer(healthTimeout)
	defer t.Stop()
	select {
	case err := <-h.pending:
		h.pending = nil
		h.set(classify(err), err)
	case <-t.C:
		h.set(faultUnreachable, errNoAnswer)
	case <-ctx.Done():
	}
}

// probe writes the worker's key and reads it back in one round trip. A
// write refused (OOM under noeviction, a read-only replica) fails the SET
// while the GET still answers.
func (h *healthChecker) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	pipe := h.rdb.Pipeline()
	set := pipe.Set(ctx, h.key, time.Now().UnixMilli(), healthKeyTTL)
	get := pipe.Get(ctx, h.key)
	_, _ = pipe.Exec(ctx)
	if err := set.Err(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := get.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("read: %w", err)
	}
	return nil
}

// classify names what err says of Redis.
func classify(err error) fault {
	var reply redis.Error
	switch {
	case err == nil:
		return faultNone
	case redis.IsOOMError(err):
		return faultOOM
	case redis.IsReadOnlyError(err):
		return faultReadOnly
	case redis.IsLoadingError(err):
		return faultLoading
	case errors.As(err, &reply):
		return faultRefusing
	default:
		return faultUnreachable
	}
}

// set records what a check found and logs a change of state, once.
func (h *healthChecker) set(f fault, err error) {
	prev := h.state.Load()
	if prev.fault == f {
		return
	}
	now := time.Now()
	next := &healthState{fault: f, since: prev.since}
	switch {
	case f == faultNone:
		next.since = time.Time{}
		h.log.Info("redis reachable and writable again", zap.String("was", string(prev.fault)),
			zap.Duration("fault_lasted", now.Sub(prev.since).Round(time.Millisecond)))
	case prev.fault == faultNone:
		next.since = now
		h.log.Warn(string(f), zap.Error(err))
	default:
		h.log.Warn(string(f), zap.String("was", string(prev.fault)), zap.Error(err))
	}
	h.state.Store(next)
}

// err is Ready's answer from the last check: nil or a *RedisFault.
func (h *healthChecker) err() error {
	if f := h.state.Load().fault; f != faultNone {
		return &RedisFault{What: string(f)}
	}
	return nil
}

// faulty reports whether the last check found Redis faulty.
func (h *healthChecker) faulty() bool { return h.state.Load().fault != faultNone }

// unreachable reports whether the last check got no answer from Redis.
func (h *healthChecker) unreachable() bool { return h.state.Load().fault == faultUnreachable }
