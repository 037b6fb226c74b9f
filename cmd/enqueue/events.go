package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/msaudit/msaudit/internal/runstore"
)

func newEventsCommand(a *app) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "events RUN",
		Short: "List a run's events and their webhook delivery",
		Long: `events lists what happened to a run, in order: run.submitted, run.paused,
run.resumed, run.stalled, run.recovered, run.completed, run.cancelled. Each is
recorded in Redis with the transition itself, and a worker started with
--webhook-url posts them there, in order, until each is taken; this shows
which were delivered, and for the next one how many deliveries failed, why,
and when it is tried again. Without a webhook, events wait here until the run
expires.`,
		Example: "  enqueue events 20261122T001652Z-3f9a1c\n  enqueue events 20261122T001652Z-3f9a1c -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return a.withSession(cmd.Context(), func(sess *session) error {
				return runEvents(cmd.Context(), sess.store, args[0], output, a.stdout)
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

// eventView is an event as events -o json prints it.
type eventView struct {
	ID          string             `json:"id"`
	Type        runstore.EventType `json:"type"`
	OccurredAt  time.Time          `json:"occurred_at"`
	Delivered   bool               `json:"delivered"`
	DeliveredAt *time.Time         `json:"delivered_at,omitempty"`
	// Of the next event to deliver only:
	FailedAttempts int        `json:"failed_attempts,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	NextAttemptAt  *time.Time `json:"next_attempt_at,omitempty"`
}

func runEvents(ctx context.Context, store *runstore.Store, id, output string, w io.Writer) error {
	o, err := store.Events(ctx, id)
	if err != nil {
		return err
	}
	views := make([]eventView, len(o.Events))
	for i, e := range o.Events {
		v := eventView{ID: runstore.EventID(id, e.Seq), Type: e.Type, OccurredAt: e.At, Delivered: i < o.Delivered}
		if v.Delivered {
			v.DeliveredAt = &e.DeliveredAt
		} else if i == o.Delivered && o.Attempts > 0 {
			v.FailedAttempts, v.LastError, v.NextAttemptAt = o.Attempts, o.LastError, &o.NextAt
		}
		views[i] = v
	}
	if output == "json" {
		return json.NewEncoder(w).Encode(views)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tOCCURRED\tDELIVERY")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.ID, v.Type, v.OccurredAt.Format(time.RFC3339), v.delivery())
	}
	return tw.Flush()
}

// delivery says in words where the event's delivery stands.
func (v eventView) delivery() string {
	switch {
	case v.Delivered:
		return "delivered " + v.DeliveredAt.Format(time.RFC3339)
	case v.FailedAttempts > 0:
		return fmt.Sprintf("%d attempts failed (%s), next %s", v.FailedAttempts, printable(v.LastError), v.NextAttemptAt.Format(time.RFC3339))
	}
	return "waiting"
}
