package worker

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/failover"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/submit"
)

// failoverLockTTL is how long the worker reconciling after a failover holds
// its lease without renewing it; it renews it after every run. After a
// round that did not reconcile every run it keeps the lease until it runs
// out, and tries no round before then itself, which spaces the next round.
const failoverLockTTL = 30 * time.Second

// failoverLoop looks at Redis every failover.CheckEvery (w.watch) and, once
// the work in flight at a failover has settled, reconciles every open run:
// the acknowledgements of that work may have removed tasks whose answers
// the failover erased, and the failover itself may have lost tasks. One
// worker does it, under a lease; the shared record says when it is done,
// so that a worker started later, or another if this one dies meanwhile,
// does it otherwise.
func (w *Worker) failoverLoop(ctx context.Context, rdb redis.UniversalClient, settle time.Duration) {
	r := newReconciler(rdb, w.log)
	lock := failover.NewLock(rdb, runstore.NewRunID(time.Now()), failoverLockTTL)
	t := time.NewTicker(failover.CheckEvery)
	defer t.Stop()
	var next time.Time // no round before, after a partial one
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		// A failed look is Redis unreachable or refusing: readiness says
		// so; the next look tries again.
		rec, err := w.watch.Check(ctx, time.Now())
		if err != nil || !rec.Due(time.Now(), settle) || time.Now().Before(next) {
			continue
		}
		if ok, err := lock.Hold(ctx); err != nil || !ok {
			continue
		}
		if w.reconcileAfterFailover(ctx, rdb, r, lock, rec.Epoch) {
			_ = lock.Release(context.WithoutCancel(ctx))
		} else {
			next = time.Now().Add(failoverLockTTL)
		}
	}
}

// reconcileAfterFailover reconciles every open run and, if none had to be
// skipped, records the failover's epoch as reconciled and reports true.
func (w *Worker) reconcileAfterFailover(ctx context.Context, rdb redis.UniversalClient, r *submit.Reconciler, lock *failover.Lock, epoch int64) bool {
	store := r.Submitter.Store
	runs, err := store.OpenRuns(ctx)
	if err != nil {
		w.log.Warn("reconcile after a Redis failover: list open runs", zap.Error(err))
		return false
	}
	requeued, skipped := 0, 0
	for _, run := range runs {
		if ok, err := lock.Hold(ctx); err != nil || !ok {
			return false // another worker took over
		}
		res, err := r.Reconcile(ctx, run.ID)
		switch {
		case ctx.Err() != nil:
			return false
		case errors.Is(err, runstore.ErrSubmitRunning):
			// A submit or requeue holds the run: it is tried again at
			// the next round.
			skipped++
		case err != nil:
			// Not repairable by a retry (an old layout, a run cancelled
			// meanwhile): said once, not again every round.
			w.log.Warn("reconcile after a Redis failover", zap.String("run_id", run.ID), zap.Error(err))
		default:
			requeued += res.Requeued
			if res.Changed() {
				logReconciled(w.log, run.ID, res)
			}
		}
	}
	if skipped > 0 {
		w.log.Info("reconcile after a Redis failover: runs held by a submit are tried again later", zap.Int("runs", skipped))
		return false
	}
	if err := failover.MarkReconciled(ctx, rdb, epoch); err != nil {
		w.log.Warn("reconcile after a Redis failover", zap.Error(err))
		return false
	}
	w.log.Info("reconciled the open runs after a Redis failover", zap.Int("runs", len(runs)), zap.Int("requeued_addresses", requeued))
	return true
}
