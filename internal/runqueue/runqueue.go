// Package runqueue finds a run's batches among asynq's tasks, by the run ID
// that starts every batch's task ID (tasks.TaskID), and acts on them: it
// deletes them in every state, for purge and for runs whose retention
// ended, since their payloads hold the run's addresses; it hands a resumed
// run's waiting batches back to the queue at once; and, for reconcile, it
// reads which of a run's batches are still live and puts back in the queue
// active tasks no worker runs any more. It is the one package that knows asynq's Redis
// keys (schema.go); it never touches the run store's.
package runqueue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/msaudit/msaudit/tasks"
)

// Inspector is the part of *asynq.Inspector used here.
type Inspector interface {
	GetTaskInfo(queue, id string) (*asynq.TaskInfo, error)
	DeleteTask(queue, id string) error
	RunTask(queue, id string) error
}

// Queue is the lanes of audit tasks in one Redis.
type Queue struct {
	Redis     redis.UniversalClient
	Inspector Inspector
}

// New returns the Queue of rdb, with an asynq Inspector over it.
func New(rdb redis.UniversalClient) Queue {
	return Queue{Redis: rdb, Inspector: asynq.NewInspectorFromRedisClient(rdb)}
}

// Every state a task can be in, and those a task rests in (it can be
// deleted from them).
var (
	allLists    = []string{statePending, stateActive}
	restingSets = []string{stateScheduled, stateRetry, stateArchived, stateCompleted}
	waitingSets = []string{stateRetry, stateScheduled}
)

// runPrefix starts the task ID of every batch of the run.
func runPrefix(runID string) string { return runID + ":" }

// Purge deletes every task of the run from every lane: pending, scheduled,
// retrying, archived (dead-lettered batches) and completed. Tasks running
// while it does are waited for, up to wait, and deleted once they rest: a
// worker drops a batch of a purged run at its next address. It ends when
// one atomic look at every lane finds no task of the run, so a task moving
// between states while it deletes is not missed. It returns how many tasks
// it deleted and how many were still running when wait ran out.
func (q Queue) Purge(ctx context.Context, runID string, wait time.Duration) (deleted, running int, err error) {
	deadline := time.Now().Add(wait)
	for again := true; ; {
		found := 0
		running = 0
		for lane := 0; lane < tasks.Lanes; lane++ {
			queue := tasks.LaneQueue(lane)
			ts, err := list(ctx, q.Redis, queue, runPrefix(runID), allLists, restingSets)
			if err != nil {
				return deleted, 0, err
			}
			found += len(ts)
			for _, t := range ts {
				if t.state == stateActive {
					running++
					continue
				}
				ok, active, err := q.delete(queue, t.id)
				if err != nil {
					return deleted, 0, err
				}
				if ok {
					deleted++
				}
				if active {
					running++
				}
			}
		}
		switch {
		case found == 0:
			return deleted, 0, nil
		case running == 0 && again:
			// Deleted all it saw: look once more at once, to be sure.
			again = false
			continue
		case !time.Now().Before(deadline):
			return deleted, running, nil
		}
		again = true
		select {
		case <-ctx.Done():
			return deleted, running, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// delete deletes a resting task. It reports whether it deleted it, and
// whether the task was running instead (it became active meanwhile); a
// task gone meanwhile is neither (it finished, and asynq keeps no finished
// batch: tasks.Retention).
func (q Queue) delete(queue, id string) (deleted, active bool, err error) {
	err = q.Inspector.DeleteTask(queue, id)
	switch {
	case err == nil:
		return true, false, nil
	case errors.Is(err, asynq.ErrTaskNotFound):
		return false, false, nil
	case strings.Contains(err.Error(), "active"):
		return false, true, nil
	}
	return false, false, fmt.Errorf("delete task %s: %w", id, err)
}

// DeleteLeftovers deletes the tasks of runs the run store no longer has
// (purged, or expired at the end of their retention) from the states where
// they rest: archived, completed, retrying and scheduled. Pending ones are
// dropped by the workers as they come. exists reports whether a run is
// still stored; it is asked once per run. It returns how many tasks it
// deleted.
func (q Queue) DeleteLeftovers(ctx context.Context, exists func(ctx context.Context, runID string) (bool, error)) (int, error) {
	known := make(map[string]bool)
	deleted := 0
	for lane := 0; lane < tasks.Lanes; lane++ {
		queue := tasks.LaneQueue(lane)
		ts, err := list(ctx, q.Redis, queue, "", nil, restingSets)
		if err != nil {
			return deleted, err
		}
		for _, t := range ts {
			run, ok := tasks.RunOfTaskID(t.id)
			if !ok {
				continue
			}
			e, seen := known[run]
			if !seen {
				if e, err = exists(ctx, run); err != nil {
					return deleted, err
				}
				known[run] = e
			}
			if e {
				continue
			}
			ok, _, err := q.delete(queue, t.id)
			if err != nil {
				return deleted, err
			}
			if ok {
				deleted++
			}
		}
	}
	return deleted, nil
}

// Wake moves the run's batches waiting in the retry or scheduled sets (a
// paused run's, each waiting a couple of minutes to look again) to pending,
// so that a resumed run continues at once. It returns how many it moved.
func (q Queue) Wake(ctx context.Context, runID string, lane int) (int, error) {
	queue := tasks.LaneQueue(lane)
	ts, err := list(ctx, q.Redis, queue, runPrefix(runID), nil, waitingSets)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range ts {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		switch err := q.Inspector.RunTask(queue, t.id); {
		case err == nil:
			n++
		case errors.Is(err, asynq.ErrTaskNotFound) || strings.Contains(err.Error(), "already"):
			// Gone, or moved on by a worker meanwhile (asynq v0.26: "task is
			// already running", "task is already in pending state").
		default:
			return n, fmt.Errorf("wake task %s: %w", t.id, err)
		}
	}
	return n, nil
}

// LivePayloads calls fn with the payload of every task of the run in its
// lane that will still run: pending, active, retrying or scheduled. The
// states are read in one atomic step; a task that finishes before its
// payload is read is skipped (its addresses are final).
func (q Queue) LivePayloads(ctx context.Context, runID string, lane int, fn func(payload []byte)) error {
	queue := tasks.LaneQueue(lane)
	ts, err := list(ctx, q.Redis, queue, runPrefix(runID), allLists, waitingSets)
	if err != nil {
		return err
	}
	for _, t := range ts {
		info, err := q.Inspector.GetTaskInfo(queue, t.id)
		if errors.Is(err, asynq.ErrTaskNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read task %s: %w", t.id, err)
		}
		fn(info.Payload)
	}
	return nil
}

// RequeueOrphans puts the run's active tasks in its lane that no worker
// runs any more (no lease, or one expired) back in the pending list (see
// requeueOrphans), and returns how many.
func (q Queue) RequeueOrphans(ctx context.Context, runID string, lane int) (int, error) {
	return requeueOrphans(ctx, q.Redis, tasks.LaneQueue(lane), runID, time.Now())
}
