package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

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
keys evicted under memory pressure. It hands back to the queue the run's tasks
left active with no lease (asynq never recovers those), queues again, as new
batches, the pending addresses that no task carries any more, and recounts the
run's counters from its address states. Addresses already answered are not
checked again. Workers run the same check by themselves every few minutes;
this command does it now.`,
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
	fmt.Fprintf(a.stdout, "run %s: %d active tasks without a lease handed back, %d addresses re-queued in %d batches\n",
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
