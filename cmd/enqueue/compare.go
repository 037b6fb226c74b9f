package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/msaudit/msaudit/internal/report"
	"github.com/msaudit/msaudit/internal/runstore"
)

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
	c := report.Compare(oldID, report.Rows(nil, old), newID, report.Rows(nil, cur))
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
