package main

import (
	"context"
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

	// Set by tests: the clock, the wait between redraws, and whether the
	// output is a terminal (nil: detect it).
	now      func() time.Time
	after    func(time.Duration) <-chan time.Time
	terminal *bool
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
		Long: `status shows how far a run is: its phase (enumerating N users, checking, paused,
done), addresses checked, found with and without a consumer account, waiting
for a retry, dead-lettered, the rate over the last minutes, an ETA from that
rate, and the tenant's current rate limit.

With --watch it updates until the run completes (Ctrl-C stops watching, not
the run): on a terminal it redraws one block in place; otherwise it prints a
line per --interval; with -o json, one JSON object per line.`,
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
	cmd.Flags().BoolVarP(&o.Watch, "watch", "w", false, "update until the run completes")
	cmd.Flags().DurationVar(&o.Interval, "interval", 2*time.Second, "update interval with --watch")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "text", "text or json (with --watch: one JSON object per line)")
	return cmd
}

func runStatus(ctx context.Context, store *runstore.Store, id string, o *statusOptions, w io.Writer) error {
	now, after := o.now, o.after
	if now == nil {
		now = time.Now
	}
	if after == nil {
		after = time.After
	}
	d := newStatusDisplay(w, o)
	defer d.close()
	for {
		r, err := store.GetRun(ctx, id)
		if err != nil {
			return err
		}
		v := newStatusView(r, now())
		if err := d.show(v); err != nil {
			return err
		}
		if !o.Watch || v.State == runstore.StateCompleted || v.State == runstore.StateCancelled {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-after(o.Interval):
		}
	}
}
