package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/report"
	"github.com/msaudit/msaudit/internal/runstore"
)

func newPauseCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "pause RUN",
		Short: "Stop sending a run's requests until 'resume'",
		Long: `pause makes every worker stop sending the run's requests within about a second:
batches running finish the request in flight, record what they have and go
back to the queue; nothing fails, is archived or dead-lettered, and no attempt
is counted. The pause is kept in Redis, so restarted workers respect it.
'status' shows the run as paused; 'resume' continues where it stopped.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withSession(cmd.Context(), func(sess *session) error {
				changed, err := sess.store.Pause(cmd.Context(), args[0], time.Now())
				if err != nil {
					return err
				}
				if !changed {
					fmt.Fprintf(a.stderr, "run %s was already paused\n", args[0])
					return nil
				}
				fmt.Fprintf(a.stderr, "run %s paused: resume it with 'enqueue resume %s'\n", args[0], args[0])
				return nil
			})
		},
	}
}

func newResumeCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "resume RUN",
		Short: "Continue a paused run",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withSession(cmd.Context(), func(sess *session) error {
				return runResume(cmd.Context(), a, sess, args[0])
			})
		},
	}
}

// runResume lifts the pause and hands the run's waiting batches back to the
// queue, so it continues now rather than when each batch looks again.
func runResume(ctx context.Context, a *app, sess *session, id string) error {
	changed, err := sess.store.Resume(ctx, id, time.Now())
	if err != nil {
		return err
	}
	if !changed {
		fmt.Fprintf(a.stderr, "run %s was not paused\n", id)
		return nil
	}
	run, err := sess.store.GetRun(ctx, id)
	if err != nil {
		return err
	}
	n, err := sess.batches.Wake(ctx, id, run.Lane)
	if err != nil {
		// The batches look again by themselves within minutes.
		sess.log.Warn("hand the run's waiting batches back", zap.Error(err))
	}
	fmt.Fprintf(a.stderr, "run %s resumed (%d waiting batches handed back)\n", id, n)
	return nil
}

func newCompareCommand(a *app) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "compare OLD NEW",
		Short: "Show who renamed their consumer account between two runs",
		Long: `compare shows a campaign's progress between an earlier run (OLD) and a later
one (NEW), typically 'submit --recheck OLD':
  resolved       a consumer account in OLD, none in NEW (renamed)
  still_present  a consumer account in both
  newly_present  a consumer account in NEW, not in OLD (absent or unknown there)
  unconfirmed    a consumer account in OLD, no answer in NEW (dead-lettered,
                 pending or not checked): neither resolved nor not
Counts are addresses; the lists have one entry per user and address. With
-o json: {"old_run": OLD, "new_run": NEW, "resolved": [...], "still_present":
[...], "newly_present": [...], "unconfirmed": [...]}, each entry {address,
user_id, upn, display_name}.`,
		Example: "  enqueue compare 20261001T000000Z-aaaaaa 20261101T000000Z-bbbbbb\n  enqueue compare OLD NEW -o json | jq '.resolved[].address'",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return a.withSession(cmd.Context(), func(sess *session) error {
				return runCompare(cmd.Context(), a, sess.store, args[0], args[1], output)
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func runCompare(ctx context.Context, a *app, store *runstore.Store, oldID, newID string, output string) error {
	old, err := store.Results(ctx, oldID)
	if err != nil {
		return err
	}
	cur, err := store.Results(ctx, newID)
	if err != nil {
		return err
	}
	c := report.Compare(oldID, report.Rows(old), newID, report.Rows(cur))
	if output == "json" {
		return json.NewEncoder(a.stdout).Encode(c)
	}
	tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "from %s to %s\n", oldID, newID)
	for _, l := range []struct {
		name    string
		entries []report.Entry
		what    string
	}{
		{"resolved", c.Resolved, "renamed since"},
		{"still_present", c.StillPresent, "not renamed yet"},
		{"newly_present", c.NewlyPresent, "found only in the later run"},
		{"unconfirmed", c.Unconfirmed, "no answer in the later run"},
	} {
		fmt.Fprintf(tw, "%s\t%d\taddresses\t%s\n", l.name, report.Addresses(l.entries), l.what)
	}
	for _, l := range []struct {
		name    string
		entries []report.Entry
	}{{"resolved", c.Resolved}, {"still_present", c.StillPresent}, {"newly_present", c.NewlyPresent}, {"unconfirmed", c.Unconfirmed}} {
		if len(l.entries) == 0 {
			continue
		}
		fmt.Fprintf(tw, "\n%s:\nADDRESS\tDISPLAY NAME\tUPN\tUSER ID\n", l.name)
		for _, e := range l.entries {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", printable(e.Address), printable(e.DisplayName), printable(e.UPN), printable(e.UserID))
		}
	}
	return tw.Flush()
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

// printable replaces control characters, so that a directory value cannot
// send escape sequences to the operator's terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}
