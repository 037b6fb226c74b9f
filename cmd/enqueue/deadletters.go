package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
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

// writeExport writes the failed-accounts file as the dead letters stream
// in; it returns how many it wrote.
func writeExport(w io.Writer, runID string, dead deadSource) (int, error) {
	bw := bufio.NewWriterSize(w, 1<<16)
	fmt.Fprintf(bw, "# dead-lettered addresses of run %s; re-check with: enqueue submit --addresses-file THIS_FILE\n", runID)
	n := 0
	err := dead(func(part []runstore.DeadLetter) error {
		for _, d := range part {
			msg := strings.NewReplacer("\n", " ", "\r", " ").Replace(d.Error)
			if _, err := fmt.Fprintf(bw, "%s\t# %d attempts: %s\n", d.Address, d.Attempts, msg); err != nil {
				return err
			}
		}
		n += len(part)
		return nil
	})
	if err != nil {
		return n, err
	}
	return n, bw.Flush()
}

// deadSource streams a run's dead letters, sorted, a page at a time.
type deadSource func(fn func([]runstore.DeadLetter) error) error

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

// runDeadLetters lists or exports the run's dead letters, reading them a
// page at a time as it writes.
func runDeadLetters(ctx context.Context, a *app, sess *session, runID, export, output string) error {
	dead := func(fn func([]runstore.DeadLetter) error) error {
		return sess.store.ReadDeadLetters(ctx, runID, newSorter, fn)
	}
	var n int
	var err error
	switch {
	case export != "":
		err = writeFileAtomic(export, func(w io.Writer) error {
			n, err = writeExport(w, runID, dead)
			return err
		})
		if err == nil {
			fmt.Fprintf(a.stderr, "wrote %d dead-lettered addresses to %s\n", n, export)
		}
		return err
	case output == "json":
		return writeDeadJSON(a.stdout, dead)
	}
	// The table is measured in a first reading and written in a second.
	widths := make(columns, 2)
	widths.note(deadHeader...)
	err = dead(func(part []runstore.DeadLetter) error {
		for _, d := range part {
			widths.note(deadCells(d)...)
		}
		return nil
	})
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(a.stdout, 1<<16)
	widths.line(w, deadHeader...)
	err = dead(func(part []runstore.DeadLetter) error {
		for _, d := range part {
			widths.line(w, deadCells(d)...)
		}
		n += len(part)
		return nil
	})
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "%d dead-lettered addresses\n", n)
	return nil
}

// deadHeader heads the text table of dead letters.
var deadHeader = []string{"ADDRESS", "ATTEMPTS", "LAST ERROR"}

func deadCells(d runstore.DeadLetter) []string {
	return []string{d.Address, strconv.Itoa(d.Attempts), d.Error}
}

// writeDeadJSON writes what json.Encoder writes of the array of dead
// letters, an element at a time.
func writeDeadJSON(w io.Writer, dead deadSource) error {
	type item struct {
		Address  string `json:"address"`
		Attempts int    `json:"attempts"`
		Error    string `json:"error"`
		LastTry  string `json:"last_try"`
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	bw.WriteByte('[')
	n := 0
	err := dead(func(part []runstore.DeadLetter) error {
		for _, d := range part {
			b, err := json.Marshal(item{d.Address, d.Attempts, d.Error, d.CheckedAt.Format(time.RFC3339)})
			if err != nil {
				return err
			}
			if n++; n > 1 {
				bw.WriteByte(',')
			}
			bw.Write(b)
		}
		return nil
	})
	if err != nil {
		return err
	}
	bw.WriteString("]\n")
	return bw.Flush()
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
