package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/msaudit/msaudit/internal/failover"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/submit"
)

func newReconcileCommand(a *app) *cobra.Command {
	var (
		batchSize int
		output    string
	)
	cmd := &cobra.Command{
		Use:   "reconcile RUN",
		Short: "Repair a run after a Redis failure: re-queue what no task carries, recount",
		Long: `reconcile repairs a run whose queue Redis lost or mixed up: after a failover to
a lagging replica, a restore from a backup that is not a consistent prefix, or
keys evicted under memory pressure. It puts back in the queue the run's tasks
left active that no worker runs any more, with no lease (asynq never recovers
those) or one that expired (a restored copy's), queues again, as new
batches, the pending addresses that no task carries any more, and recounts the
run's counters from its address states. Addresses already answered are not
checked again. Right after Redis restarted or failed over it first waits, up
to 40 seconds, for the work that was in flight then: its late
acknowledgements would remove tasks the repair counts on. Workers run the
same repair by themselves every few minutes, and once after a failover they
notice; this command does it now.`,
		Example: `  enqueue reconcile 20261202T011655Z-d6c816`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkBatchSize(batchSize); err != nil {
				return err
			}
			if err := checkOutput(output); err != nil {
				return err
			}
			return a.withSession(cmd.Context(), func(sess *session) error {
				return runReconcile(cmd.Context(), a, sess, args[0], batchSize, output)
			})
		},
	}
	addBatchSizeFlag(cmd.Flags(), &batchSize, "addresses per new task")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func runReconcile(ctx context.Context, a *app, sess *session, runID string, batchSize int, output string) error {
	if err := waitSettled(ctx, a, sess); err != nil {
		return err
	}
	r := &submit.Reconciler{
		Submitter: &submit.Submitter{Store: sess.store, Queue: sess.queue, Log: sess.log},
		Queue:     sess.batches, BatchSize: batchSize,
		// A worker's own periodic reconcile holds the lock for seconds.
		LockWait: runstore.LockTTL + 5*time.Second,
	}
	res, err := r.Reconcile(ctx, runID)
	if err != nil {
		return err
	}
	if output == "json" {
		return json.NewEncoder(a.stdout).Encode(map[string]any{
			"run_id": runID, "leaseless_tasks": res.Leaseless, "requeued_addresses": res.Requeued,
			"new_batches": res.Batches, "counters_before": res.Before, "counters_after": res.After,
		})
	}
	fmt.Fprintf(a.stdout, "run %s: %d active tasks without a live lease put back in the queue, %d addresses re-queued in %d batches\n",
		runID, res.Leaseless, res.Requeued, res.Batches)
	if res.Before != res.After {
		fmt.Fprintf(a.stdout, "counters recounted: checked %d -> %d, present %d -> %d, absent %d -> %d, dead %d -> %d, retrying %d -> %d\n",
			res.Before.Checked, res.After.Checked, res.Before.Present, res.After.Present, res.Before.Absent, res.After.Absent,
			res.Before.Dead, res.After.Dead, res.Before.FailedPending, res.After.FailedPending)
	} else {
		fmt.Fprintln(a.stdout, "counters agree with the address states")
	}
	return nil
}

// waitSettled waits until the work that was in flight at Redis' last
// restart or failover can no longer acknowledge a task (failover.Settle
// after it), saying so on stderr.
func waitSettled(ctx context.Context, a *app, sess *session) error {
	at, err := failover.SettledAt(ctx, sess.rdb, time.Now())
	if err != nil {
		return err
	}
	wait := time.Until(at)
	if wait <= 0 {
		return nil
	}
	fmt.Fprintf(a.stderr, "Redis restarted or failed over less than %s ago: waiting %s for the work in flight then to settle\n",
		failover.Settle, wait.Round(time.Second))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(wait):
		return nil
	}
}
