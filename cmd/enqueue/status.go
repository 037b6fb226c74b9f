package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/msaudit/msaudit/internal/cmdrun"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/runview"
)

type statusOptions struct {
	Watch    bool
	Wait     bool
	Timeout  time.Duration
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
	if o.Timeout < 0 {
		return fmt.Errorf("--timeout %s: want a positive duration, or 0 for no limit", o.Timeout)
	}
	if o.Timeout > 0 && !o.Wait {
		return fmt.Errorf("--timeout %s: only with --wait", o.Timeout)
	}
	return nil
}

// The exit statuses of status --wait besides 0 (every address answered)
// and 1 (an error, an interruption included).
const (
	exitDeadLetters = 3 // completed, some addresses dead-lettered
	exitCancelled   = 4
	exitTimeout     = 5 // still open after --timeout
)

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
line per --interval; with -o json, one JSON object per line.

With --wait it blocks until the run is completed or cancelled, prints its
status then (every update with --watch too), and its exit status says how
the run ended, for a script, a CI job or a Kubernetes Job to chain on:
  0  completed, every address has its answer
  3  completed with dead-lettered addresses (enqueue deadletters RUN)
  4  cancelled
  5  still open after --timeout (the run goes on)
  1  an error, or Ctrl-C before the run ended`,
		Example: `  enqueue status 20261122T001652Z-3f9a1c --watch
  enqueue status 20261122T001652Z-3f9a1c -o json
  enqueue status 20261122T001652Z-3f9a1c --wait --timeout 72h && echo "every address answered"`,
		Args: cobra.ExactArgs(1),
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
	cmd.Flags().BoolVar(&o.Wait, "wait", false, "block until the run is completed or cancelled; the exit status says how it ended")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 0, "with --wait: give up after this long, exit status 5 (0: no limit)")
	cmd.Flags().DurationVar(&o.Interval, "interval", 2*time.Second, "update interval with --watch, and how often --wait looks")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "text", "text or json (with --watch: one JSON object per line)")
	return cmd
}

// runStatus shows the run once, or until it ends with --watch or --wait.
func runStatus(ctx context.Context, store *runstore.Store, id string, o *statusOptions, w io.Writer) error {
	now, after := o.now, o.after
	if now == nil {
		now = time.Now
	}
	if after == nil {
		after = time.After
	}
	var deadline time.Time
	if o.Timeout > 0 {
		deadline = now().Add(o.Timeout)
	}
	d := newStatusDisplay(w, o)
	defer d.close()
	for {
		r, err := store.GetRun(ctx, id)
		if err != nil {
			return err
		}
		v := runview.Of(r, now())
		ended := v.State == runstore.StateCompleted || v.State == runstore.StateCancelled
		timedOut := !deadline.IsZero() && !now().Before(deadline)
		if o.Watch || !o.Wait || ended || timedOut {
			if err := d.show(v); err != nil {
				return err
			}
		}
		switch {
		case o.Wait && ended:
			return howItEnded(r)
		case ended || !o.Watch && !o.Wait:
			return nil
		case timedOut:
			return &cmdrun.ExitError{Code: exitTimeout, Err: fmt.Errorf("run %s is still %s after %s; it goes on", id, v.State, o.Timeout)}
		}
		wait := o.Interval
		if !deadline.IsZero() {
			wait = min(wait, deadline.Sub(now()))
		}
		select {
		case <-ctx.Done():
			if o.Wait {
				return fmt.Errorf("stopped waiting for run %s, which goes on", id)
			}
			return nil
		case <-after(wait):
		}
	}
}

// howItEnded is what status --wait returns for an ended run: nil when every
// address has its answer, else an ExitError saying how it ended.
func howItEnded(r *runstore.Run) error {
	switch {
	case r.State() == runstore.StateCancelled:
		return &cmdrun.ExitError{Code: exitCancelled, Err: fmt.Errorf("run %s was cancelled", r.ID)}
	case r.DeadLettered > 0:
		return &cmdrun.ExitError{Code: exitDeadLetters, Err: fmt.Errorf("run %s completed with %d dead-lettered addresses; enqueue deadletters %s lists them", r.ID, r.DeadLettered, r.ID)}
	}
	return nil
}
