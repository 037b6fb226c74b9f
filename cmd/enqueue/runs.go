package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/runview"
)

func newRunsCommand(a *app) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List runs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return a.withSession(cmd.Context(), func(sess *session) error {
				return runRuns(cmd.Context(), a, sess, output)
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func newCancelCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel RUN",
		Short: "Stop checking a run's remaining addresses",
		Long:  "cancel marks a run cancelled: workers drop its queued batches. Results so far stay until purged or expired.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withSession(cmd.Context(), func(sess *session) error {
				if err := sess.store.Cancel(cmd.Context(), args[0]); err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "run %s cancelled\n", args[0])
				return nil
			})
		},
	}
}

func newPurgeCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "purge RUN",
		Short: "Delete everything stored about a run (addresses are personal data)",
		Long: `purge deletes the run's record, results, pairs and dead letters from Redis, and
every batch of the run from the queue lanes, whatever its state (pending,
retrying, archived, completed): their payloads hold the run's addresses.
Batches running at that moment stop at their next address and are deleted
once they rest. Completed runs are also deleted automatically after their
--retention, and their remaining batches by the next 'submit' or 'sweep'.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withSession(cmd.Context(), func(sess *session) error {
				return runPurge(cmd.Context(), a, sess, args[0])
			})
		},
	}
}

// purgeWait bounds how long purge waits for the run's running batches to
// stop (a worker drops them within a second) so it can delete them too.
const purgeWait = 15 * time.Second

// runPurge deletes the run from the store first, so that the workers drop
// its batches, then its tasks from the queue.
func runPurge(ctx context.Context, a *app, sess *session, id string) error {
	gone := false
	if err := sess.store.Purge(ctx, id); errors.Is(err, runstore.ErrRunNotFound) {
		gone = true // purged or expired before: its tasks may still be queued
	} else if err != nil {
		return err
	}
	deleted, running, err := sess.batches.Purge(ctx, id, purgeWait)
	if gone && err == nil && deleted == 0 && running == 0 {
		return fmt.Errorf("%w: %s", runstore.ErrRunNotFound, id)
	}
	if err != nil {
		return fmt.Errorf("run %s purged from the run store, but not from the queue (run purge again): %w", id, err)
	}
	if running > 0 {
		fmt.Fprintf(a.stderr, "run %s purged; %d of its batches were still running: 'enqueue sweep' deletes them once done\n", id, running)
		return nil
	}
	fmt.Fprintf(a.stderr, "run %s purged (%d queued tasks deleted)\n", id, deleted)
	return nil
}

// runRuns lists the runs.
func runRuns(ctx context.Context, a *app, sess *session, output string) error {
	runs, err := sess.store.ListRuns(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	views := make([]runview.Status, len(runs))
	for i, r := range runs {
		views[i] = runview.Of(r, now)
	}
	if output == "json" {
		return json.NewEncoder(a.stdout).Encode(views)
	}
	tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTENANT\tSTATE\tPROGRESS\tFOUND\tAGE")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%5.1f%% %s/%s\t%s\t%s\n", v.RunID, v.TenantID, v.State, 100*v.Fraction(),
			runview.Thousands(v.AskedDone()), runview.Thousands(v.ToAsk()), runview.Thousands(v.Present), age(now.Sub(v.StartedAt)))
	}
	return tw.Flush()
}

// age is how long ago, to the unit that matters: 45s, 12m, 5h, 3d.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func newSweepCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "sweep",
		Short: "Delete the queued tasks of runs whose data is gone (purged or expired)",
		Long: `sweep deletes, from every queue lane, the archived, completed, retrying and
scheduled batches of runs the run store no longer has: their payloads hold the
runs' addresses, and asynq keeps archived batches for up to 90 days. 'submit'
sweeps too; run this from a scheduled job if no submit runs for weeks.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withSession(cmd.Context(), func(sess *session) error {
				n, err := sweepLeftovers(cmd.Context(), sess)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "deleted %d tasks of runs no longer kept\n", n)
				return nil
			})
		},
	}
}

// sweepLeftovers deletes the tasks of runs whose data expired or was purged.
func sweepLeftovers(ctx context.Context, sess *session) (int, error) {
	return sess.batches.DeleteLeftovers(ctx, sess.store.Exists)
}
