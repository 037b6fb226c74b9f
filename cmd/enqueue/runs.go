package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
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
		Long: `purge deletes the run's record, results, pairs and dead letters from Redis.
Batches of the run still queued are dropped by the workers. Completed runs are
also deleted automatically after their --retention.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withSession(cmd.Context(), func(sess *session) error {
				if err := sess.store.Purge(cmd.Context(), args[0]); err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "run %s purged\n", args[0])
				return nil
			})
		},
	}
}

// runRuns lists the runs.
func runRuns(ctx context.Context, a *app, sess *session, output string) error {
	runs, err := sess.store.ListRuns(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	views := make([]statusView, len(runs))
	for i, r := range runs {
		views[i] = newStatusView(r, now)
	}
	if output == "json" {
		return json.NewEncoder(a.stdout).Encode(views)
	}
	tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tTENANT\tSTATE\tADDRESSES\tCHECKED\tPRESENT\tDEAD\tCREATED")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", v.RunID, v.TenantID, v.State,
			v.AddressesTotal, v.Checked, v.Present, v.DeadLettered, v.StartedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}
