package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/cliflags"
	"github.com/msaudit/msaudit/internal/report"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/worker"
)

// localOptions are the flags of 'local': a submit plus in-process workers.
type localOptions struct {
	submitOptions
	Worker    worker.Config
	ReportDir string
}

func (o *localOptions) Validate() error {
	if o.DryRun {
		return fmt.Errorf("--dry-run: use 'submit --dry-run' instead")
	}
	if o.RunID != "" {
		return fmt.Errorf("--run-id: local runs live in memory and cannot be resumed")
	}
	if err := o.submitOptions.Validate(); err != nil {
		return err
	}
	if err := o.Worker.Validate(); err != nil {
		return err
	}
	if o.ReportDir == "" {
		return fmt.Errorf("--report-dir is required")
	}
	return nil
}

func newLocalCommand(a *app) *cobra.Command {
	o := &localOptions{Worker: worker.DefaultConfig()}
	o.Worker.ShutdownTimeout = 5 * time.Second
	o.Worker.ReconcileEvery = 0 // an embedded Redis loses nothing it keeps
	cmd := &cobra.Command{
		Use:   "local",
		Short: "Audit a small tenant in one process: embedded Redis, in-process workers",
		Long: `local runs a whole audit in this process: an embedded, in-memory Redis, the
submit, in-process workers, progress on stderr, and the reports at the end.
Nothing survives the process: for large tenants or multi-day runs use a real
Redis with 'submit' and 'worker'. Takes the flags of 'submit' and 'worker'.`,
		Example: `  AZURE_CLIENT_SECRET=... enqueue local --tenant-id $TENANT --client-id $APP --report-dir ./audit`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := a.start(o)
			if err != nil {
				return err
			}
			_, err = runLocal(cmd.Context(), a, log, o)
			return err
		},
	}
	addSubmitFlags(cmd, a, &o.submitOptions)
	cliflags.RegisterChecking(cmd.Flags(), &o.Worker)
	cmd.Flags().StringVar(&o.ReportDir, "report-dir", "audit-report", "directory for report.html, report.csv, report.json and contacts.csv")
	return cmd
}

// localResult is what a local run ends with.
type localResult struct {
	Run        *runstore.Run
	ReportPath string
	Results    []runstore.Result
}

func runLocal(ctx context.Context, a *app, log *zap.Logger, o *localOptions) (*localResult, error) {
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		return nil, fmt.Errorf("start embedded redis: %w", err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), PoolSize: o.Worker.Concurrency + 10})
	defer rdb.Close()
	sess := newSession(rdb, log, false)
	defer sess.Close()

	// The in-process worker only reports problems: progress is on screen.
	w, err := worker.New(rdb, o.Worker, log.WithOptions(zap.IncreaseLevel(zap.WarnLevel)), nil)
	if err != nil {
		return nil, err
	}
	defer w.Shutdown()

	sum, err := runSubmit(ctx, sess, log, &o.submitOptions, a.stderr)
	if err != nil {
		return nil, err
	}
	st := &statusOptions{Watch: true, Interval: time.Second, Output: "text"}
	if err := runStatus(ctx, sess.store, sum.RunID, st, a.stderr); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted: the run was not finished")
	}
	if err := os.MkdirAll(o.ReportDir, 0o700); err != nil {
		return nil, err
	}
	res := &localResult{ReportPath: filepath.Join(o.ReportDir, "report.html")}
	for _, f := range []struct{ format, name string }{{"html", "report.html"}, {"csv", "report.csv"}, {"json", "report.json"}, {"contacts", "contacts.csv"}} {
		if _, err := writeReport(ctx, sess.store, sum.RunID, f.format, filepath.Join(o.ReportDir, f.name), report.DefaultLimit, a.stdout); err != nil {
			return nil, err
		}
	}
	if res.Run, err = sess.store.GetRun(ctx, sum.RunID); err != nil {
		return nil, err
	}
	if res.Results, err = sess.store.Results(ctx, sum.RunID); err != nil {
		return nil, err
	}
	r := res.Run
	fmt.Fprintf(a.stdout, "\nrun %s %s: %d addresses of %d users checked\n", r.ID, r.State(), r.AddressesTotal, r.UsersTotal)
	fmt.Fprintf(a.stdout, "  consumer account found: %d\n  no consumer account:    %d\n  dead-lettered:          %d\n",
		r.Present, r.Absent, r.DeadLettered)
	fmt.Fprintf(a.stdout, "report: %s (also report.csv, report.json, and contacts.csv to write to the people concerned)\n", res.ReportPath)
	return res, nil
}
