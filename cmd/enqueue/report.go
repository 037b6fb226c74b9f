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
	"github.com/msaudit/msaudit/internal/spill"
)

type reportOptions struct {
	Format string
	Out    string
	Limit  int
}

func (o *reportOptions) Validate() error {
	if !contains(report.Formats, strings.ToLower(o.Format)) {
		return fmt.Errorf("--format %q: want one of %s", o.Format, strings.Join(report.Formats, ", "))
	}
	if o.Limit < 1 {
		return fmt.Errorf("--html-rows %d: want at least 1", o.Limit)
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
changed since the run it re-checks; each list shows at most --html-rows rows
and says so when there are more. --format contacts is a CSV with one row per
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
	cmd.Flags().IntVar(&o.Limit, "html-rows", report.DefaultLimit, "rows of each list the HTML report shows at most (csv and json list all)")
	return cmd
}

// writeReport renders the run's report to path (or stdout for "-"),
// reading the run store a page at a time as it writes; it returns the rows
// written. A file is written whole or not at all.
func writeReport(ctx context.Context, store *runstore.Store, id, format, path string, limit int, stdout io.Writer) (int, error) {
	defer debug.SetGCPercent(debug.SetGCPercent(reportGCPercent))
	d, err := loadReport(ctx, store, id, format, limit)
	if err != nil {
		return 0, err
	}
	n := 0
	rows := d.Rows
	d.Rows = func(fn func([]report.Row) error) error {
		n = 0
		return rows(func(part []report.Row) error {
			n += len(part)
			return fn(part)
		})
	}
	if path == "-" {
		return n, report.Write(stdout, format, d)
	}
	err = writeFileAtomic(path, func(w io.Writer) error { return report.Write(w, format, d) })
	return n, err
}

// reportGCPercent is the GOGC of the commands that stream a run (Go's
// default is 100): what they hold is a sorter's budget and a page or two,
// so collecting more often keeps the peak near that for little CPU.
const reportGCPercent = 50

// reportSpill is how a report sorts what it cannot take in order from the
// store: sorters of at most 8 MB each in memory, the rest in an unlinked
// temporary file under TMPDIR.
var reportSpill = spill.Config{Budget: 8 << 20}

// newSorter is a sorter for the store's streaming readers.
func newSorter() runstore.Sorter { return reportSpill.New() }

// rowSource streams the run's rows from the store.
func rowSource(ctx context.Context, store *runstore.Store, run *runstore.Run) report.Source {
	return func(fn func([]report.Row) error) error {
		return store.ReadResults(ctx, run.ID, newSorter, func(part []runstore.Result) error {
			return fn(report.Rows(run, part))
		})
	}
}

// loadReport reads what a report of the run needs besides its rows, which
// it streams. The HTML report of a re-check also compares it with the run
// it re-checks, and that of a re-audit with its baseline, while that run
// is still kept; and it draws the tenant's kept runs. Each list of an HTML
// report shows at most limit rows.
func loadReport(ctx context.Context, store *runstore.Store, id, format string, limit int) (report.Data, error) {
	run, err := store.GetRun(ctx, id)
	if err != nil {
		return report.Data{}, err
	}
	d := report.Data{Run: run, Rows: rowSource(ctx, store, run), Limit: limit, Spill: reportSpill}
	if !strings.EqualFold(format, "html") {
		return d, nil
	}
	if other := cmp.Or(run.RecheckOf, run.Since); other != "" {
		old, err := store.GetRun(ctx, other)
		if err == nil {
			d.Compare, err = report.Summarize(other, rowSource(ctx, store, old), id, d.Rows, limit)
		}
		switch {
		case errors.Is(err, runstore.ErrRunNotFound):
		case err != nil:
			return d, err
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
	n, err := writeReport(ctx, sess.store, runID, o.Format, o.Out, o.Limit, a.stdout)
	if err != nil {
		return err
	}
	if o.Out != "-" {
		fmt.Fprintf(a.stderr, "wrote %d rows to %s\n", n, o.Out)
	}
	return nil
}
