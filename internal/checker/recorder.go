package checker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msaudit/msaudit/internal/runstore"
)

// recordEvery is the longest an answer waits before it is written to the run
// store. A worker killed mid-batch loses only its requests in flight and the
// answers of this last interval, not the whole pass: every lost answer is an
// address asked again, and repeated checks are what these endpoints throttle
// (and, peers report, answer wrongly). Grouping keeps the round trips per
// address low when a batch runs fast.
const recordEvery = 200 * time.Millisecond

// recorder writes one pass's outcomes as they arrive, grouped over
// recordEvery, and keeps each written outcome with the state it led to.
type recorder struct {
	store       *runstore.Store
	runID       string
	maxAttempts int
	now         func() time.Time

	mu      sync.Mutex // guards queued
	queued  []runstore.Outcome
	writing sync.Mutex // one write at a time, in order
	outs    []runstore.Outcome
	states  []runstore.AddressState
	// failing is set while the last write failed: Redis refuses the
	// answers (out of memory, a read-only replica) or cannot be reached.
	failing atomic.Bool

	kick chan struct{} // an answer arrived with none queued
	stop chan struct{}
	done chan struct{}
}

func (h *Handler) newRecorder(runID string) *recorder {
	r := &recorder{store: h.store, runID: runID, maxAttempts: h.cfg.MaxAttempts, now: h.now,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	return r
}

// add queues an outcome for the next write.
func (r *recorder) add(o runstore.Outcome) {
	r.mu.Lock()
	r.queued = append(r.queued, o)
	first := len(r.queued) == 1
	r.mu.Unlock()
	if first {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

func (r *recorder) idle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.queued) == 0
}

// loop writes what is queued recordEvery after the first answer of each
// group. It sleeps while nothing is queued: a ticker would wake every
// batch five times a second, for nothing while it waits for its slots.
func (r *recorder) loop() {
	defer close(r.done)
	for {
		if r.idle() {
			select {
			case <-r.stop:
				return
			case <-r.kick:
			}
		}
		t := time.NewTimer(recordEvery)
		select {
		case <-r.stop:
			t.Stop()
			return
		case <-t.C:
		}
		// A failed write keeps its outcomes queued for the next one;
		// the final flush reports the error.
		_ = r.flush()
	}
}

// flush writes what is queued.
func (r *recorder) flush() error {
	r.writing.Lock()
	defer r.writing.Unlock()
	r.mu.Lock()
	outs := r.queued
	r.queued = nil
	r.mu.Unlock()
	if len(outs) == 0 {
		return nil
	}
	// Not the task's context: an answer got is recorded even as the task
	// is being cancelled.
	states, err := r.store.Record(context.Background(), r.runID, r.maxAttempts, r.now(), outs)
	r.failing.Store(err != nil)
	if err != nil {
		r.mu.Lock()
		r.queued = append(outs, r.queued...)
		r.mu.Unlock()
		return err
	}
	r.outs = append(r.outs, outs...)
	r.states = append(r.states, states...)
	return nil
}

// holdOnFor is how long the last write of a pass keeps trying while Redis
// is unreachable: long enough for a Sentinel failover, after which the
// answers and asynq's own bookkeeping of the task reach the new primary. A
// task that gave up at once would instead wait for its lease to expire and
// for asynq's recoverer, a minute and a half, and its answers would be
// asked again.
const holdOnFor = 30 * time.Second

// close stops the periodic writes, writes the rest, and returns every
// outcome of the pass with its resulting state. ctx ends the retries of a
// failing write early (the task's own context: asynq gave up on it).
func (r *recorder) close(ctx context.Context) ([]runstore.Outcome, []runstore.AddressState, error) {
	close(r.stop)
	<-r.done
	err := r.flush()
	for deadline := time.Now().Add(holdOnFor); err != nil && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return r.outs, r.states, err
		case <-time.After(500 * time.Millisecond):
		}
		err = r.flush()
	}
	return r.outs, r.states, err
}
