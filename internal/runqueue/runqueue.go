// Package runqueue finds a run's batches among asynq's tasks, by the run ID
// that starts every batch's task ID (tasks.TaskID), and acts on them: it
// deletes them in every state, for purge and for runs whose retention
// ended, since their payloads hold the run's addresses; and it hands a
// resumed run's waiting batches back to the queue at once. It talks to asynq
// only through its Inspector and never to the run store's keys.
package runqueue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/msaudit/msaudit/tasks"
)

// Inspector is the part of *asynq.Inspector used here.
type Inspector interface {
	ListPendingTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListActiveTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListScheduledTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListRetryTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListArchivedTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListCompletedTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	DeleteTask(queue, id string) error
	RunTask(queue, id string) error
}

type listFunc func(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)

// resting are the states a task can be deleted from.
func resting(in Inspector) []listFunc {
	return []listFunc{in.ListPendingTasks, in.ListScheduledTasks, in.ListRetryTasks, in.ListArchivedTasks, in.ListCompletedTasks}
}

const pageSize = 1000

// ids lists the IDs of the tasks in queue, in the states of lists, that
// keep returns true for. Listing comes first and acting after, so that
// deleting does not shift the pages being read.
func ids(queue string, keep func(id string) bool, lists ...listFunc) ([]string, error) {
	var out []string
	for _, list := range lists {
		for page := 1; ; page++ {
			infos, err := list(queue, asynq.PageSize(pageSize), asynq.Page(page))
			if errors.Is(err, asynq.ErrQueueNotFound) || (err != nil && strings.Contains(err.Error(), "NOT_FOUND")) {
				break // a lane never used
			}
			if err != nil {
				return nil, fmt.Errorf("list tasks of %s: %w", queue, err)
			}
			for _, t := range infos {
				if keep(t.ID) {
					out = append(out, t.ID)
				}
			}
			if len(infos) < pageSize {
				break
			}
		}
	}
	return out, nil
}

func ofRun(runID string) func(string) bool {
	prefix := runID + ":"
	return func(id string) bool { return strings.HasPrefix(id, prefix) }
}

// deleteIDs deletes tasks, ignoring those gone meanwhile (a task that
// completed, or was handed back, between the listing and the delete).
func deleteIDs(in Inspector, queue string, list []string) (int, error) {
	n := 0
	for _, id := range list {
		err := in.DeleteTask(queue, id)
		switch {
		case err == nil:
			n++
		case errors.Is(err, asynq.ErrTaskNotFound):
		case strings.Contains(err.Error(), "active"):
			// running: Purge waits for it and deletes it once it rests
		default:
			return n, fmt.Errorf("delete task %s: %w", id, err)
		}
	}
	return n, nil
}

// Purge deletes every task of the run from every lane: pending, scheduled,
// retrying, archived (dead-lettered batches) and completed. Tasks running
// while it does are waited for, up to wait, and deleted once they rest: a
// worker drops a batch of a purged run at its next address. It returns how
// many tasks it deleted and how many were still running when wait ran out.
func Purge(ctx context.Context, in Inspector, runID string, wait time.Duration) (deleted, running int, err error) {
	deadline := time.Now().Add(wait)
	for {
		for lane := 0; lane < tasks.Lanes; lane++ {
			q := tasks.LaneQueue(lane)
			list, err := ids(q, ofRun(runID), resting(in)...)
			if err != nil {
				return deleted, 0, err
			}
			n, err := deleteIDs(in, q, list)
			deleted += n
			if err != nil {
				return deleted, 0, err
			}
		}
		running = 0
		for lane := 0; lane < tasks.Lanes; lane++ {
			list, err := ids(tasks.LaneQueue(lane), ofRun(runID), in.ListActiveTasks)
			if err != nil {
				return deleted, 0, err
			}
			running += len(list)
		}
		if running == 0 || !time.Now().Before(deadline) {
			return deleted, running, nil
		}
		select {
		case <-ctx.Done():
			return deleted, running, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Orphans deletes the tasks of runs the run store no longer has (purged,
// or expired at the end of their retention) from the states where asynq
// keeps them after they are done or while they wait: archived, completed,
// retrying and scheduled. Pending ones are dropped by the workers as they
// come. exists reports whether a run is still stored; it is asked once per
// run. It returns how many tasks it deleted.
func Orphans(ctx context.Context, in Inspector, exists func(ctx context.Context, runID string) (bool, error)) (int, error) {
	known := make(map[string]bool)
	var ferr error
	gone := func(id string) bool {
		run, ok := tasks.RunOfTaskID(id)
		if !ok || ferr != nil {
			return false
		}
		e, seen := known[run]
		if !seen {
			e, ferr = exists(ctx, run)
			if ferr != nil {
				return false
			}
			known[run] = e
		}
		return !e
	}
	deleted := 0
	for lane := 0; lane < tasks.Lanes; lane++ {
		q := tasks.LaneQueue(lane)
		list, err := ids(q, gone, in.ListArchivedTasks, in.ListCompletedTasks, in.ListRetryTasks, in.ListScheduledTasks)
		if err == nil {
			err = ferr
		}
		if err != nil {
			return deleted, err
		}
		n, err := deleteIDs(in, q, list)
		deleted += n
		if err != nil {
			return deleted, err
		}
	}
	return deleted, nil
}

// Wake moves the run's batches waiting in the retry or scheduled sets (a
// paused run's, each waiting a couple of minutes to look again) to pending,
// so that a resumed run continues at once. It returns how many it moved.
func Wake(ctx context.Context, in Inspector, runID string, lane int) (int, error) {
	q := tasks.LaneQueue(lane)
	list, err := ids(q, ofRun(runID), in.ListRetryTasks, in.ListScheduledTasks)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range list {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		switch err := in.RunTask(q, id); {
		case err == nil:
			n++
		case errors.Is(err, asynq.ErrTaskNotFound) || strings.Contains(err.Error(), "already"):
			// Gone, or moved on by a worker meanwhile (asynq v0.26: "task is
			// already running", "task is already in pending state").
		default:
			return n, fmt.Errorf("wake task %s: %w", id, err)
		}
	}
	return n, nil
}
