package checker

import (
	"context"
	"sync"
	"time"

	"github.com/msaudit/msaudit/internal/runstore"
)

// gateTTL is how old a run's flags may be when a batch decides to send its
// next request: a pause, cancel or purge stops the run's requests within
// about this long, at one round trip per run and interval per worker
// process rather than one per request.
const gateTTL = 500 * time.Millisecond

// pausedDelay is how long a batch of a paused run waits in the retry set
// before it looks again. It is long so that a large paused run does not
// cycle its whole queue through the workers; resume hands the run's waiting
// batches back at once.
const pausedDelay = 2 * time.Minute

// errPaused hands a batch of a paused run back to the queue: not a failure,
// it costs no attempt and no retry.
var errPaused = &deferError{delay: pausedDelay, rateLimited: true, reason: "the run is paused"}

// errStopped hands back a batch whose run was cancelled or purged while it
// ran; its next delivery drops it.
var errStopped = &deferError{delay: 0, rateLimited: true, reason: "the run was cancelled or purged"}

// gate caches each run's flags for gateTTL.
type gate struct {
	store *runstore.Store
	now   func() time.Time
	mu    sync.Mutex
	runs  map[string]gateEntry
}

type gateEntry struct {
	flags runstore.Flags
	at    time.Time
}

func newGate(store *runstore.Store, now func() time.Time) *gate {
	return &gate{store: store, now: now, runs: make(map[string]gateEntry)}
}

// stop says why the run's next request must not be sent (nil: send it). A
// failed read does not stop the batch: the request's own recording would
// fail the same way.
func (g *gate) stop(ctx context.Context, runID string) *deferError {
	now := g.now()
	g.mu.Lock()
	e, ok := g.runs[runID]
	g.mu.Unlock()
	if !ok || now.Sub(e.at) >= gateTTL {
		f, err := g.store.RunFlags(ctx, runID)
		if err != nil {
			return nil
		}
		e = gateEntry{flags: f, at: now}
		g.mu.Lock()
		if len(g.runs) > 1000 {
			for id, old := range g.runs {
				if now.Sub(old.at) > time.Minute {
					delete(g.runs, id)
				}
			}
		}
		g.runs[runID] = e
		g.mu.Unlock()
	}
	switch f := e.flags; {
	case !f.Exists || f.Cancelled:
		return errStopped
	case f.Paused:
		return errPaused
	}
	return nil
}
