package worker

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/runqueue"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/submit"
)

// reconcileLockKey makes one worker of all reconcile the open runs per
// interval.
const reconcileLockKey = "msaudit:reconcile:lock"

// reconcileLoop repairs the open runs that made no progress for an interval
// (see submit.Reconciler), so that a run whose tasks Redis lost still
// completes without an operator, and deletes the queued batches of runs
// whose data is gone. Only the worker that takes the lock does it.
func (w *Worker) reconcileLoop(ctx context.Context, rdb redis.UniversalClient, every time.Duration) {
	r := newReconciler(rdb, w.log)
	store := r.Submitter.Store
	for {
		// Jitter, so that workers started together do not all try at once.
		d := every/2 + time.Duration(rand.Int64N(int64(every)))
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		ok, err := rdb.SetNX(ctx, reconcileLockKey, 1, every/2).Result()
		if err != nil || !ok {
			continue
		}
		// Batches of runs purged or past their retention hold addresses
		// nobody will read again: delete them.
		if n, err := r.Queue.DeleteLeftovers(ctx, store.Exists); err != nil {
			w.log.Warn("reconcile: delete tasks of expired runs", zap.Error(err))
		} else if n > 0 {
			w.log.Info("deleted the queued batches of expired or purged runs", zap.Int("tasks", n))
		}
		runs, err := store.OpenRuns(ctx)
		if err != nil {
			w.log.Warn("reconcile: list open runs", zap.Error(err))
			continue
		}
		for _, run := range runs {
			// A run that records answers is healthy; a lost task shows as
			// a run that stops moving. Scanning only those spares Redis a
			// full scan of every large run at every interval.
			if time.Since(run.UpdatedAt) < every {
				continue
			}
			res, err := r.Reconcile(ctx, run.ID)
			switch {
			case errors.Is(err, runstore.ErrSubmitRunning) || ctx.Err() != nil:
			case err != nil:
				w.log.Warn("reconcile", zap.String("run_id", run.ID), zap.Error(err))
			case res.Changed():
				logReconciled(w.log, run.ID, res)
			}
		}
	}
}

// newReconciler returns the reconciler the workers repair runs with.
func newReconciler(rdb redis.UniversalClient, log *zap.Logger) *submit.Reconciler {
	return &submit.Reconciler{
		Submitter: &submit.Submitter{Store: runstore.New(rdb), Queue: asynq.NewClientFromRedisClient(rdb), Log: log},
		Queue:     runqueue.New(rdb), BatchSize: submit.DefaultBatchSize,
	}
}

// logReconciled says what a reconcile of a run repaired.
func logReconciled(log *zap.Logger, runID string, res submit.Reconciled) {
	log.Info("reconciled a run", zap.String("run_id", runID), zap.Int("leaseless_tasks", res.Leaseless),
		zap.Int("requeued_addresses", res.Requeued), zap.Any("counters_before", res.Before), zap.Any("counters_after", res.After))
}
