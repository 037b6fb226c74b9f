package submit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/tasks"
)

// Reconciled says what a reconcile repaired.
type Reconciled struct {
	Orphans  int // active tasks with no lease, handed back to asynq's recoverer
	Requeued int // pending addresses no task carried, queued again
	Batches  int // new batches that carry them
	Before   runstore.Counters
	After    runstore.Counters
}

// Changed reports whether the reconcile repaired anything.
func (r Reconciled) Changed() bool { return r.Orphans > 0 || r.Requeued > 0 || r.Before != r.After }

// Reconciler repairs runs after Redis lost or mixed up state: a failover to
// a lagging replica, a restore that is not a consistent prefix, evicted
// keys. asynq recovers none of that on its own: a task left active with no
// lease is never run again, and a task lost outright leaves its addresses
// pending forever, so the run never completes.
type Reconciler struct {
	Submitter *Submitter
	Inspector *asynq.Inspector
	Redis     redis.UniversalClient
	BatchSize int
	// Settle is the pause between the two scans of the queue (see
	// Reconcile); 0 means DefaultSettle.
	Settle time.Duration
	// LockWait is how long to wait for the run's lock while a submit,
	// requeue or another reconcile holds it (0: fail at once).
	LockWait time.Duration
}

// DefaultSettle is long enough for a task caught between two asynq states
// (pending, active, retry) while the first scan ran to be seen by the second.
const DefaultSettle = 2 * time.Second

// Reconcile repairs one run: it gives every active task of the run's lane
// that has no lease an expired one, so that asynq's recoverer hands it back;
// it queues, as new batches, the run's pending addresses that no task
// carries (in any asynq state, or stored unsent); and it recounts the run's
// counters from its address states. A task moves between asynq's states
// while they are listed one after the other, so an address counts as
// uncarried only if two scans, Settle apart, both miss it.
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
	queue := tasks.LaneQueue(run.Lane)
	if res.Orphans, err = r.recoverOrphans(ctx, queue, runID); err != nil {
		return res, err
	}

	missing, err := r.uncarried(ctx, queue, runID)
	if err != nil {
		return res, err
	}
	if len(missing) > 0 {
		settle := r.Settle
		if settle == 0 {
			settle = DefaultSettle
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(settle):
		}
		again, err := r.uncarried(ctx, queue, runID)
		if err != nil {
			return res, err
		}
		var addrs []string
		for a := range missing {
			if again[a] {
				addrs = append(addrs, a)
			}
		}
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

// uncarried returns the run's pending addresses that no live task carries.
func (r *Reconciler) uncarried(ctx context.Context, queue, runID string) (map[string]bool, error) {
	pending, err := r.Submitter.Store.PendingAddresses(ctx, runID)
	if err != nil || len(pending) == 0 {
		return nil, err
	}
	unsent, err := r.Submitter.Store.Unsent(ctx, runID)
	if err != nil {
		return nil, err
	}
	carry := func(payload []byte) {
		if p, err := tasks.DecodeCheckBatch(payload); err == nil && p.RunID == runID {
			for _, e := range p.Entries {
				delete(pending, e.Address)
			}
		}
	}
	for _, b := range unsent {
		carry(b)
	}
	err = r.eachTask(queue, runID, func(t *asynq.TaskInfo) { carry(t.Payload) },
		r.Inspector.ListPendingTasks, r.Inspector.ListActiveTasks, r.Inspector.ListRetryTasks, r.Inspector.ListScheduledTasks)
	return pending, err
}

type listFunc func(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)

// eachTask calls fn for every task of the run in queue, in the states the
// list functions read.
func (r *Reconciler) eachTask(queue, runID string, fn func(*asynq.TaskInfo), lists ...listFunc) error {
	const pageSize = 1000
	prefix := runID + ":"
	for _, list := range lists {
		for page := 1; ; page++ {
			infos, err := list(queue, asynq.PageSize(pageSize), asynq.Page(page))
			if errors.Is(err, asynq.ErrQueueNotFound) || (err != nil && strings.Contains(err.Error(), "NOT_FOUND")) {
				break // a lane never used
			}
			if err != nil {
				return fmt.Errorf("list tasks of %s: %w", queue, err)
			}
			for _, t := range infos {
				if strings.HasPrefix(t.ID, prefix) {
					fn(t)
				}
			}
			if len(infos) < pageSize {
				break
			}
		}
	}
	return nil
}

// orphanScript gives an active task with no lease an expired one, in one
// step, so that a task that finished meanwhile is left alone. The key names
// are asynq's own (v0.26, internal to it): the queue's active list and its
// sorted set of leases (task ID scored by expiry, unix seconds).
//
// Input: KEYS[1] -> asynq:{queue}:active, KEYS[2] -> asynq:{queue}:lease,
// ARGV[1] -> task ID, ARGV[2] -> an expired lease time. Output: 1 if the task
// was orphaned and now has an expired lease, else 0.
var orphanScript = redis.NewScript(`
if redis.call('LPOS', KEYS[1], ARGV[1]) and not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
  return 1
end
return 0
`)

// recoverOrphans finds the run's active tasks that have no lease and gives
// each an expired one: asynq's recoverer then moves it back to the retry
// set, as it does for the task of a worker that died. An active task with a
// lease belongs to a live worker (or one whose lease will expire by
// itself) and is left alone.
func (r *Reconciler) recoverOrphans(ctx context.Context, queue, runID string) (int, error) {
	var ids []string
	err := r.eachTask(queue, runID, func(t *asynq.TaskInfo) { ids = append(ids, t.ID) }, r.Inspector.ListActiveTasks)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	keys := []string{"asynq:{" + queue + "}:active", "asynq:{" + queue + "}:lease"}
	expired := time.Now().Add(-time.Hour).Unix()
	n := 0
	for _, id := range ids {
		added, err := orphanScript.Run(ctx, r.Redis, keys, id, expired).Int()
		if err != nil {
			return n, fmt.Errorf("recover task %s: %w", id, err)
		}
		n += added
	}
	return n, nil
}
