package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/msaudit/msaudit/internal/report"
	"github.com/msaudit/msaudit/internal/runstore"
)

type reportOptions struct {
	Format string
	Out    string
}

func (o *reportOptions) Validate() error {
	if !contains(report.Formats, strings.ToLower(o.Format)) {
		return fmt.Errorf("--format %q: want one of %s", o.Format, strings.Join(report.Formats, ", "))
	}
	return nil
}

func newReportCommand(a *app) *cobra.Command {
	o := &reportOptions{}
	cmd := &cobra.Command{
		Use:   "report RUN",
		Short: "Write a run's results (html, csv, json or contacts)",
		Long: `report writes one row per user-address pair: the address, the user it belongs to
(user ID, UPN, display name, mail), its status (present: a consumer account
exists; absent; dead: no answer after all attempts; pending: not checked yet),
the realm request ID and time, the attempts made and the last error. An
address held by two users is checked once and listed twice. It works at any
time, also while the run is going.

--format html is one self-contained page to hand on: a summary, the counts per
domain, a chart of the checks over time, the consumer accounts found, the
failed checks and what to run next, the run's phases; for a re-check, what
changed since the run it re-checks. --format contacts is a CSV with one row per
user who has a consumer account (user ID, display name, UPN, mail to write to,
the addresses concerned), for a mail merge; docs/outreach-message.md is a
message to send them. CSV files open in Excel as UTF-8, and no cell can run as
a formula.

The report holds personal data: store it accordingly.`,
		Example: "  enqueue report RUN --format html --out audit.html\n  enqueue report RUN --format contacts --out contacts.csv\n  enqueue report RUN --format json --out - | jq '.[] | select(.status==\"present\")'",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return a.withSession(cmd.Context(), func(sess *session) error {
				return runReport(cmd.Context(), a, sess, args[0], o)
			})
		},
	}
	cmd.Flags().StringVarP(&o.Format, "format", "f", "html", "html, csv, json or contacts")
	cmd.Flags().StringVar(&o.Out, "out", "-", "output file ('-': standard output)")
	return cmd
}

// writeReport renders the run's report to path (or stdout for "-"). A file
// is written whole or not at all.
func writeReport(ctx context.Context, store *runstore.Store, id, format, path string, stdout io.Writer) (int, error) {
	// A report holds the whole run (600,000 rows for 200,000 users):
	// collecting garbage more often keeps the peak well below twice that,
	// for a few percent more CPU.
	defer debug.SetGCPercent(debug.SetGCPercent(reportGCPercent))
	d, err := loadReport(ctx, store, id, format)
	if err != nil {
		return 0, err
	}
	if path == "-" {
		return len(d.Rows), report.Write(stdout, format, d)
	}
	return len(d.Rows), writeFileAtomic(path, func(w io.Writer) error { return report.Write(w, format, d) })
}

// reportGCPercent is the GOGC of a report (Go's default is 100).
const reportGCPercent = 10

// loadReport reads what a report of the run needs. The HTML report of a
// re-check also compares it with the run it re-checks, and that of a
// re-audit with its baseline, while that run is still kept; and it draws
// the tenant's kept runs.
func loadReport(ctx context.Context, store *runstore.Store, id, format string) (report.Data, error) {
	run, err := store.GetRun(ctx, id)
	if err != nil {
		return report.Data{}, err
	}
	rows, err := loadRows(ctx, store, run)
	if err != nil {
		return report.Data{}, err
	}
	d := report.Data{Run: run, Rows: rows}
	if !strings.EqualFold(format, "html") {
		return d, nil
	}
	if other := cmp.Or(run.RecheckOf, run.Since); other != "" {
		old, err := store.GetRun(ctx, other)
		var oldRows []report.Row
		if err == nil {
			oldRows, err = loadRows(ctx, store, old)
		}
		switch {
		case errors.Is(err, runstore.ErrRunNotFound):
		case err != nil:
			return d, err
		default:
			d.Compare = report.Compare(other, oldRows, id, d.Rows)
		}
	}
	runs, err := tenantRuns(ctx, store, run.TenantID)
	if err != nil {
		return d, err
	}
	for _, r := range runs {
		d.Trend = append(d.Trend, report.TrendPoint{RunID: r.ID, At: r.CreatedAt, Addresses: r.AddressesTotal, Present: r.Present})
	}
	return d, nil
}

// tenantRuns lists the kept runs of tenant, oldest first.
func tenantRuns(ctx context.Context, store *runstore.Store, tenant string) ([]*runstore.Run, error) {
	all, err := store.ListRuns(ctx)
	if err != nil {
		return nil, err
	}
	var out []*runstore.Run
	for i := len(all) - 1; i >= 0; i-- { // ListRuns is newest first
		if strings.EqualFold(all[i].TenantID, tenant) {
			out = append(out, all[i])
		}
	}
	return out, nil
}

// loadRows converts the run's results to report rows a chunk at a time, so
// that a large run's results and rows are not both in memory.
func loadRows(ctx context.Context, store *runstore.Store, run *runstore.Run) ([]report.Row, error) {
	var rows []report.Row
	err := store.EachResults(ctx, run.ID, func(part []runstore.Result) error {
		rows = append(rows, report.Rows(run, part)...)
		return nil
	})
	return rows, err
}

// writeFileAtomic writes through a temporary file in the same directory and
// renames it into place, with owner-only permissions (personal data).
func writeFileAtomic(path string, fill func(io.Writer) error) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory: name a file", path)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the temporary file's name would only confuse
		}
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if err := fill(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// runReport writes the run's report as o says.
func runReport(ctx context.Context, a *app, sess *session, runID string, o *reportOptions) error {
	n, err := writeReport(ctx, sess.store, runID, o.Format, o.Out, a.stdout)
	if err != nil {
		return err
	}
	if o.Out != "-" {
		fmt.Fprintf(a.stderr, "wrote %d rows to %s\n", n, o.Out)
	}
	return nil
}
