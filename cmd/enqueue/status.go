package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/msaudit/msaudit/internal/runstore"
)

type statusOptions struct {
	Watch    bool
	Interval time.Duration
	Output   string
}

func (o *statusOptions) Validate() error {
	if err := checkOutput(o.Output); err != nil {
		return err
	}
	if o.Interval < 100*time.Millisecond {
		return fmt.Errorf("--interval %s: want at least 100ms", o.Interval)
	}
	return nil
}

func newStatusCommand(a *app) *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status RUN",
		Short: "Show a run's progress",
		Long: `status shows how far a run is: addresses checked, found with and without a
consumer account, waiting for a retry, dead-lettered, the current rate and an ETA.
With --watch it redraws until the run completes (Ctrl-C stops watching, not the run).`,
		Example: "  enqueue status 20261122T001652Z-3f9a1c --watch\n  enqueue status 20261122T001652Z-3f9a1c -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return a.withSession(cmd.Context(), func(sess *session) error {
				return runStatus(cmd.Context(), sess.store, args[0], o, a.stdout)
			})
		},
	}
	cmd.Flags().BoolVarP(&o.Watch, "watch", "w", false, "redraw until the run completes")
	cmd.Flags().DurationVar(&o.Interval, "interval", 2*time.Second, "redraw interval with --watch")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "text", "text or json (with --watch: one JSON object per line)")
	return cmd
}

func runStatus(ctx context.Context, store *runstore.Store, id string, o *statusOptions, w io.Writer) error {
	for {
		r, err := store.GetRun(ctx, id)
		if err != nil {
			return err
		}
		v := newStatusView(r, time.Now())
		if o.Output == "json" {
			if err := json.NewEncoder(w).Encode(v); err != nil {
				return err
			}
		} else {
			fmt.Fprintln(w, v.line())
			if v.LastError != "" && v.State == runstore.StateIncomplete {
				fmt.Fprintf(w, "submit stopped: %s\nresume with: enqueue submit --run-id %s (same options)\n", v.LastError, id)
			}
		}
		if !o.Watch || v.State == runstore.StateCompleted || v.State == runstore.StateCancelled {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.Interval):
		}
	}
}
