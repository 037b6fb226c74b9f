package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/submit"
)

func newDeadLettersCommand(a *app) *cobra.Command {
	var export, output string
	cmd := &cobra.Command{
		Use:   "deadletters RUN",
		Short: "List the addresses that exhausted their attempts, or export them",
		Long: `deadletters lists the run's dead-lettered addresses with their attempts and last
error. --export writes the failed-accounts file: one address a line with the
last error as a '#' comment, which 'submit --addresses-file' reads back.
To re-check them in the same run, use 'enqueue requeue RUN'.`,
		Example: "  enqueue deadletters RUN\n  enqueue deadletters RUN --export failed.txt",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return a.withSession(cmd.Context(), func(sess *session) error {
				return runDeadLetters(cmd.Context(), a, sess, args[0], export, output)
			})
		},
	}
	cmd.Flags().StringVar(&export, "export", "", "write the failed-accounts file here instead of listing")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

// writeExport writes the failed-accounts file.
func writeExport(w io.Writer, runID string, dead []runstore.DeadLetter) error {
	if _, err := fmt.Fprintf(w, "# dead-lettered addresses of run %s; re-check with: enqueue submit --addresses-file THIS_FILE\n", runID); err != nil {
		return err
	}
	for _, d := range dead {
		msg := strings.NewReplacer("\n", " ", "\r", " ").Replace(d.Error)
		if _, err := fmt.Fprintf(w, "%s\t# %d attempts: %s\n", d.Address, d.Attempts, msg); err != nil {
			return err
		}
	}
	return nil
}

func newRequeueCommand(a *app) *cobra.Command {
	var batchSize int
	cmd := &cobra.Command{
		Use:   "requeue RUN",
		Short: "Check a run's dead-lettered addresses again, with fresh attempts",
		Long: `requeue moves every dead-lettered address of the run back to the queue as new
batches with fresh attempts. Running it twice does not check anything twice.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkBatchSize(batchSize); err != nil {
				return err
			}
			return a.withSession(cmd.Context(), func(sess *session) error {
				return runRequeue(cmd.Context(), a, sess, args[0], batchSize)
			})
		},
	}
	addBatchSizeFlag(cmd.Flags(), &batchSize, "addresses per task")
	return cmd
}

// runDeadLetters lists or exports the run's dead letters.
func runDeadLetters(ctx context.Context, a *app, sess *session, runID, export, output string) error {
	dead, err := sess.store.DeadLetters(ctx, runID)
	if err != nil {
		return err
	}
	if export != "" {
		if err := writeFileAtomic(export, func(w io.Writer) error { return writeExport(w, runID, dead) }); err != nil {
			return err
		}
		fmt.Fprintf(a.stderr, "wrote %d dead-lettered addresses to %s\n", len(dead), export)
		return nil
	}
	if output == "json" {
		type item struct {
			Address  string `json:"address"`
			Attempts int    `json:"attempts"`
			Error    string `json:"error"`
			LastTry  string `json:"last_try"`
		}
		items := make([]item, len(dead))
		for i, d := range dead {
			items[i] = item{d.Address, d.Attempts, d.Error, d.CheckedAt.Format(time.RFC3339)}
		}
		return json.NewEncoder(a.stdout).Encode(items)
	}
	tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tATTEMPTS\tLAST ERROR")
	for _, d := range dead {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", d.Address, d.Attempts, d.Error)
	}
	tw.Flush()
	fmt.Fprintf(a.stderr, "%d dead-lettered addresses\n", len(dead))
	return nil
}

// runRequeue puts the run's dead letters back on the queue.
func runRequeue(ctx context.Context, a *app, sess *session, runID string, batchSize int) error {
	sub := &submit.Submitter{Store: sess.store, Queue: sess.queue, Log: sess.log}
	n, err := sub.Requeue(ctx, runID, batchSize)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "requeued %d dead-lettered addresses of run %s\n", n, runID)
	return nil
}
