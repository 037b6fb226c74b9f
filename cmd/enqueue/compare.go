package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/msaudit/msaudit/internal/report"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/spill"
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

// runCompare compares two runs, reading both a page at a time side by
// side; the entries of each list wait in a spilling sorter, since every
// count comes before the lists and each list before the next.
func runCompare(ctx context.Context, a *app, store *runstore.Store, oldID, newID string, output string) error {
	old, err := store.GetRun(ctx, oldID)
	if err != nil {
		return err
	}
	cur, err := store.GetRun(ctx, newID)
	if err != nil {
		return err
	}
	lists := reportSpill.New()
	defer lists.Close()
	var seq uint64
	var key []byte
	widths := make([]columns, len(report.Classes))
	for i := range widths {
		widths[i] = make(columns, 3)
		widths[i].note(compareHeader...)
	}
	counts, err := report.CompareRuns(rowSource(ctx, store, old), rowSource(ctx, store, cur), func(c report.Class, e report.Entry) error {
		widths[c].note(compareCells(e)...)
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		seq++ // entries of a class come in order: keep it
		key = binary.BigEndian.AppendUint64(append(key[:0], byte(c)), seq)
		return lists.Add(key, v)
	})
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(a.stdout, 1<<16)
	if output == "json" {
		err = writeComparisonJSON(w, oldID, newID, lists)
	} else {
		err = writeComparisonText(w, oldID, newID, counts, widths, lists)
	}
	if err != nil {
		return err
	}
	return w.Flush()
}

// writeComparisonJSON writes what json.Encoder writes of {"old_run",
// "new_run", and a list per class}, a list entry at a time.
func writeComparisonJSON(w *bufio.Writer, oldID, newID string, lists *spill.Sorter) error {
	ids, _ := json.Marshal(struct {
		Old string `json:"old_run"`
		New string `json:"new_run"`
	}{oldID, newID})
	w.Write(ids[:len(ids)-1])
	open := -1 // the class whose list is open
	openUpTo := func(c int) {
		for open < c {
			if open >= 0 {
				w.WriteString("]")
			}
			open++
			fmt.Fprintf(w, ",%q:[", report.Classes[open].Name())
		}
	}
	first := true
	err := lists.Each(func(key, v []byte) error {
		if c := int(key[0]); c != open {
			openUpTo(c)
			first = true
		}
		if !first {
			w.WriteByte(',')
		}
		first = false
		_, err := w.Write(v)
		return err
	})
	if err != nil {
		return err
	}
	openUpTo(len(report.Classes) - 1)
	_, err = w.WriteString("]}\n")
	return err
}

// compareWhat says what each class means, for the text output.
var compareWhat = map[report.Class]string{
	report.Resolved:     "renamed since",
	report.StillPresent: "not renamed yet",
	report.NewlyPresent: "found only in the later run",
	report.Unconfirmed:  "no answer in the later run",
}

// compareHeader heads each list of the text output.
var compareHeader = []string{"ADDRESS", "DISPLAY NAME", "UPN", "USER ID"}

// compareCells is an entry as a line of the text output.
func compareCells(e report.Entry) []string {
	return []string{printable(e.Address), printable(e.DisplayName), printable(e.UPN), printable(e.UserID)}
}

// writeComparisonText writes the counts, then each list that has entries
// as a table laid out by the widths measured while comparing.
func writeComparisonText(w *bufio.Writer, oldID, newID string, counts report.Counts, widths []columns, lists *spill.Sorter) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "from %s to %s\n", oldID, newID)
	for _, c := range report.Classes {
		fmt.Fprintf(tw, "%s\t%d\taddresses\t%s\n", c.Name(), counts[c], compareWhat[c])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	open := -1
	return lists.Each(func(key, v []byte) error {
		c := int(key[0])
		if c != open {
			open = c
			fmt.Fprintf(w, "\n%s:\n", report.Classes[c].Name())
			widths[c].line(w, compareHeader...)
		}
		var e report.Entry
		if err := json.Unmarshal(v, &e); err != nil {
			return err
		}
		widths[c].line(w, compareCells(e)...)
		return nil
	})
}
