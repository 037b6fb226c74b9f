package submit

import (
	"context"
	"errors"
	"fmt"
	"sort"
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
	// LockWait is how long to wait for the run's lock while a submit,
	// requeue or another reconcile holds it (0: fail at once).
	LockWait time.Duration
}

// Reconcile repairs one run: it gives every active task of the run's lane
// that has no lease an expired one, so that asynq's recoverer hands it back;
// it queues, as new batches, the run's pending addresses that no task
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
	queue := tasks.LaneQueue(run.Lane)
	if res.Orphans, err = r.recoverOrphans(ctx, queue, runID); err != nil {
		return res, err
	}

	missing, err := r.uncarried(ctx, queue, runID)
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

// liveTasksScript lists, in one atomic step, the IDs of a queue's tasks
// that will still run: pending, active, retry and scheduled. Listing the
// states one after the other would miss a task that moves between them
// meanwhile (a rate-limited batch cycles through them every second or so).
// The key names are asynq's own (v0.26, internal to it).
//
// Input: KEYS[1] -> asynq:{q}:pending (list), KEYS[2] -> asynq:{q}:active
// (list), KEYS[3] -> asynq:{q}:retry (zset), KEYS[4] -> asynq:{q}:scheduled
// (zset), ARGV[1] -> a task ID prefix ("RUN:"). Output: the matching IDs.
var liveTasksScript = redis.NewScript(`
local out = {}
local function keep(ids)
  for _, id in ipairs(ids) do
    if string.sub(id, 1, #ARGV[1]) == ARGV[1] then out[#out+1] = id end
  end
end
keep(redis.call('LRANGE', KEYS[1], 0, -1))
keep(redis.call('LRANGE', KEYS[2], 0, -1))
keep(redis.call('ZRANGE', KEYS[3], 0, -1))
keep(redis.call('ZRANGE', KEYS[4], 0, -1))
return out
`)

func asynqKey(queue, name string) string { return "asynq:{" + queue + "}:" + name }

// uncarried returns the run's pending addresses that no live task carries,
// nor a batch stored unsent.
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
	keys := []string{asynqKey(queue, "pending"), asynqKey(queue, "active"), asynqKey(queue, "retry"), asynqKey(queue, "scheduled")}
	ids, err := liveTasksScript.Run(ctx, r.Redis, keys, runID+":").StringSlice()
	if err != nil {
		return nil, fmt.Errorf("list tasks of %s: %w", queue, err)
	}
	for _, id := range ids {
		info, err := r.Inspector.GetTaskInfo(queue, id)
		if errors.Is(err, asynq.ErrTaskNotFound) {
			continue // finished since: its addresses are final
		}
		if err != nil {
			return nil, fmt.Errorf("read task %s: %w", id, err)
		}
		carry(info.Payload)
	}
	return pending, nil
}

// orphanScript gives every active task of the run that has no lease an
// expired one, in one step, so that a task finishing meanwhile is left
// alone. The key names are asynq's own (v0.26, internal to it): the
// queue's active list and its sorted set of leases (task ID scored by
// expiry, unix seconds).
//
// Input: KEYS[1] -> asynq:{q}:active, KEYS[2] -> asynq:{q}:lease, ARGV[1] ->
// a task ID prefix ("RUN:"), ARGV[2] -> an expired lease time. Output: how
// many tasks it gave a lease.
var orphanScript = redis.NewScript(`
local n = 0
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if string.sub(id, 1, #ARGV[1]) == ARGV[1] and not redis.call('ZSCORE', KEYS[2], id) then
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    n = n + 1
  end
end
return n
`)

// recoverOrphans finds the run's active tasks that have no lease and gives
// each an expired one: asynq's recoverer then moves it back to the retry
// set, as it does for the task of a worker that died. An active task with a
// lease belongs to a live worker (or one whose lease will expire by
// itself) and is left alone.
func (r *Reconciler) recoverOrphans(ctx context.Context, queue, runID string) (int, error) {
	keys := []string{asynqKey(queue, "active"), asynqKey(queue, "lease")}
	n, err := orphanScript.Run(ctx, r.Redis, keys, runID+":", time.Now().Add(-time.Hour).Unix()).Int()
	if err != nil {
		return 0, fmt.Errorf("recover orphaned tasks of %s: %w", queue, err)
	}
	return n, nil
}
