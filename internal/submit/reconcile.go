package submit

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/msaudit/msaudit/internal/runqueue"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/tasks"
)

// Reconciled says what a reconcile repaired.
type Reconciled struct {
	Leaseless int // active tasks with no live lease (none, or expired), put back in the queue
	Requeued  int // pending addresses no task carried, queued again
	Batches   int // new batches that carry them
	Before    runstore.Counters
	After     runstore.Counters
}

// Changed reports whether the reconcile repaired anything.
func (r Reconciled) Changed() bool { return r.Leaseless > 0 || r.Requeued > 0 || r.Before != r.After }

// Reconciler repairs runs after Redis lost or mixed up state: a failover to
// a lagging replica, a restore that is not a consistent prefix, evicted
// keys. asynq recovers none of that on its own: a task left active with no
// lease is never run again, and a task lost outright leaves its addresses
// pending forever, so the run never completes; and a restored copy holds
// the leases of tasks finished since, which asynq's recoverer hands back
// only a minute or two later.
type Reconciler struct {
	Submitter *Submitter
	Queue     runqueue.Queue
	BatchSize int
	// LockWait is how long to wait for the run's lock while a submit,
	// requeue or another reconcile holds it (0: fail at once).
	LockWait time.Duration
}

// Reconcile repairs one run: it puts back in the queue every active task of
// the run's lane that no worker runs any more (it has no lease, or one that
// expired); it queues, as new batches, the run's pending addresses that no task
// carries (in any asynq state, or stored unsent); and it recounts the run's
// counters from its address states. It holds the run's lock, so no submit
// or requeue adds batches meanwhile.
func (r *Reconciler) Reconcile(ctx context.Context, runID string) (Reconciled, error) {
	var res Reconciled
	s := r.Submitter
	run, err := s.Store.GetRun(ctx, runID)
	if err != nil {
		return res, err
	}
	if run.Cancelled {
		return res, fmt.Errorf("run %s is cancelled: nothing to reconcile", runID)
	}
	j := &job{s: s, ctx: ctx, req: Request{Run: *run, Resume: true, BatchSize: r.BatchSize}, holder: runstore.NewRunID(s.now())}
	if err := r.lock(ctx, runID, j.holder); err != nil {
		return res, err
	}
	defer s.Store.Unlock(context.WithoutCancel(ctx), runID, j.holder)
	if err := j.flushUnsent(ctx); err != nil {
		return res, err
	}
	if res.Leaseless, err = r.Queue.RequeueOrphans(ctx, runID, run.Lane); err != nil {
		return res, err
	}
	missing, err := r.uncarried(ctx, run)
	if err != nil {
		return res, err
	}
	if len(missing) > 0 {
		addrs := make([]string, 0, len(missing))
		for a := range missing {
			addrs = append(addrs, a)
		}
		sort.Strings(addrs)
		batches, err := s.newBatches(ctx, run, addrs, r.BatchSize)
		if err != nil {
			return res, err
		}
		if err := s.Store.AddBatches(ctx, runID, batches); err != nil {
			return res, err
		}
		if err := j.flushUnsent(ctx); err != nil {
			return res, err
		}
		res.Requeued, res.Batches = len(addrs), len(batches)
	}
	res.Before, res.After, err = s.Store.Recount(ctx, runID, s.now())
	return res, err
}

// lock takes the run's lock, waiting up to LockWait for its holder.
func (r *Reconciler) lock(ctx context.Context, runID, holder string) error {
	deadline := time.Now().Add(r.LockWait)
	for {
		err := r.Submitter.Store.Lock(ctx, runID, holder)
		if !errors.Is(err, runstore.ErrSubmitRunning) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// uncarried returns the run's pending addresses that no live task carries,
// nor a batch stored unsent.
func (r *Reconciler) uncarried(ctx context.Context, run *runstore.Run) (map[string]bool, error) {
	pending, err := r.Submitter.Store.PendingAddresses(ctx, run.ID)
	if err != nil || len(pending) == 0 {
		return nil, err
	}
	unsent, err := r.Submitter.Store.Unsent(ctx, run.ID)
	if err != nil {
		return nil, err
	}
	carry := func(payload []byte) {
		if p, err := tasks.DecodeCheckBatch(payload); err == nil && p.RunID == run.ID {
			for _, e := range p.Entries {
				delete(pending, e.Address)
			}
		}
	}
	for _, b := range unsent {
		carry(b)
	}
	if err := r.Queue.LivePayloads(ctx, run.ID, run.Lane, carry); err != nil {
		return nil, err
	}
	return pending, nil
}
