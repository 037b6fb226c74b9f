package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/msaudit/msaudit/internal/envflag"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/runview"
)

func newHistoryCommand(a *app) *cobra.Command {
	var tenant, output string
	cmd := &cobra.Command{
		Use:   "history",
		Short: "List a tenant's kept runs and what changed from one to the next",
		Long: `history lists the runs of one tenant the run store keeps, oldest first, with
how many addresses each had and found with a consumer account, and, from the
second on, how many of the accounts the previous run found were resolved
(answered "none" now: renamed) and how many were found that the previous run
had not. It reads every kept run's answers: seconds per 100,000 addresses.

A monthly re-audit finds its baseline here: the newest completed run
(history -o json | jq -r '[.runs[] | select(.state == "completed")][-1].run_id').`,
		Example: "  enqueue history --tenant-id $TENANT\n  enqueue history --tenant-id $TENANT -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(tenant) == "" {
				return errors.New("--tenant-id is required")
			}
			if err := checkOutput(output); err != nil {
				return err
			}
			return a.withSession(cmd.Context(), func(sess *session) error {
				return runHistory(cmd.Context(), sess.store, tenant, output, a.stdout)
			})
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant-id", "", "the tenant, as its runs were submitted")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	envflag.BindTo(cmd.Flags(), "tenant-id", "AZURE_TENANT_ID")
	return cmd
}

// historyRun is a run as history -o json prints it.
type historyRun struct {
	RunID       string            `json:"run_id"`
	State       runstore.RunState `json:"state"`
	StartedAt   time.Time         `json:"started_at"`
	CompletedAt *time.Time        `json:"completed_at,omitempty"`
	Addresses   int64             `json:"addresses"`
	Present     int64             `json:"present"`
	// Against the previous run; absent for the first.
	Resolved *int64 `json:"resolved,omitempty"`
	New      *int64 `json:"new,omitempty"`
	// How the run was made: a re-audit's baseline and its reused answers,
	// or the run a re-check checked again.
	Since     string `json:"since,omitempty"`
	Reused    int64  `json:"reused"`
	RecheckOf string `json:"recheck_of,omitempty"`
}

func runHistory(ctx context.Context, store *runstore.Store, tenant, output string, w io.Writer) error {
	runs, err := tenantRuns(ctx, store, tenant)
	if err != nil {
		return err
	}
	out := make([]historyRun, 0, len(runs))
	var before map[string]bool // the previous run's present addresses
	for i, r := range runs {
		h := historyRun{RunID: r.ID, State: r.State(), StartedAt: r.CreatedAt, Addresses: r.AddressesTotal, Present: r.Present,
			Since: r.Since, Reused: r.Reused, RecheckOf: r.RecheckOf}
		if !r.CompletedAt.IsZero() {
			h.CompletedAt = &r.CompletedAt
		}
		now := make(map[string]bool)
		var resolved, added int64
		err := store.EachResults(ctx, r.ID, func(part []runstore.Result) error {
			for _, x := range part {
				switch {
				case x.State == runstore.StatePresent && !now[x.Address]:
					now[x.Address] = true
					if !before[x.Address] {
						added++
					}
				case x.State == runstore.StateAbsent && before[x.Address]:
					resolved++
					delete(before, x.Address) // an address held by two users counts once
				}
			}
			return nil
		})
		if errors.Is(err, runstore.ErrRunNotFound) {
			continue // expired since the listing
		}
		if err != nil {
			return err
		}
		if i > 0 {
			h.Resolved, h.New = &resolved, &added
		}
		before = now
		out = append(out, h)
	}
	if output == "json" {
		return json.NewEncoder(w).Encode(map[string]any{"tenant_id": tenant, "runs": out})
	}
	if len(out) == 0 {
		_, err := fmt.Fprintf(w, "no kept run of tenant %s\n", tenant)
		return err
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTARTED\tSTATE\tADDRESSES\tPRESENT\tRESOLVED\tNEW\tHOW")
	for _, h := range out {
		resolved, added := "–", "–"
		if h.Resolved != nil {
			resolved, added = runview.Thousands(*h.Resolved), runview.Thousands(*h.New)
		}
		how := "full audit"
		switch {
		case h.Since != "":
			how = fmt.Sprintf("since %s, %s reused", h.Since, runview.Thousands(h.Reused))
		case h.RecheckOf != "":
			how = "re-check of " + h.RecheckOf
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.RunID, h.StartedAt.UTC().Format("2006-01-02 15:04"), h.State,
			runview.Thousands(h.Addresses), runview.Thousands(h.Present), resolved, added, how)
	}
	return tw.Flush()
}
