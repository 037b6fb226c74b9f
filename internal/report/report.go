// Package report renders a run's results for people and scripts: JSON (one
// object per user-address pair, the documented contract), CSV (the same
// rows), a contacts CSV (one row per user with a consumer account, for a
// mail merge), a self-contained HTML page an administrator can hand on
// (summary, per-domain breakdown, a chart of the run, the consumer accounts
// found, the failed checks, the run's phases), and the comparison of a
// re-check with the run it re-checks. It reads nothing from Redis itself,
// escapes everything it prints in HTML, and defuses spreadsheet formulas in
// every CSV cell.
package report

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/spill"
)

// Formats lists the formats Write accepts.
var Formats = []string{"json", "csv", "html", "contacts"}

// Row is one user-address pair; its JSON form is the report contract.
type Row struct {
	Address     string                 `json:"address"`
	UserID      string                 `json:"user_id"`
	UPN         string                 `json:"upn"`
	DisplayName string                 `json:"display_name"`
	Mail        string                 `json:"mail"`
	Status      runstore.AddressStatus `json:"status"` // present, absent, dead, pending
	MSRequestID string                 `json:"ms_request_id"`
	CheckedAt   string                 `json:"checked_at"` // RFC 3339 UTC, empty if never checked
	Attempts    int                    `json:"attempts"`
	Error       string                 `json:"error"`
	// ReusedFrom is the run whose answer this row reuses (submit --since),
	// empty when the answer was asked in this run.
	ReusedFrom string `json:"reused_from"`
	// RunID and TenantID say which run and tenant the row is of, so that a
	// report file can be the baseline of a later run (submit --since).
	RunID    string `json:"run_id"`
	TenantID string `json:"tenant_id"`
}

// Rows converts results of run to report rows (run nil: rows of no run,
// for a comparison).
func Rows(run *runstore.Run, results []runstore.Result) []Row {
	var runID, tenant, since string
	if run != nil {
		runID, tenant, since = run.ID, run.TenantID, run.Since
	}
	rows := make([]Row, len(results))
	for i, r := range results {
		row := Row{Address: r.Address, UserID: r.UserID, UPN: r.UPN, DisplayName: r.DisplayName, Mail: r.Mail,
			Status: r.State, MSRequestID: r.RequestID, Attempts: r.Attempts, Error: r.Error, RunID: runID, TenantID: tenant}
		if r.Reused() {
			row.ReusedFrom = since
		}
		if !r.CheckedAt.IsZero() {
			row.CheckedAt = r.CheckedAt.UTC().Format(time.RFC3339)
		}
		if r.State == runstore.StatePresent || r.State == runstore.StateAbsent {
			row.Error = "" // the last attempt answered; older errors are history
		}
		rows[i] = row
	}
	return rows
}

// Source streams rows in order, by address then user ID, a page at a time;
// fn must not keep the slice. A report reads its source once.
type Source func(fn func([]Row) error) error

// SliceSource is a Source of rows already in memory (sorted by the caller).
func SliceSource(rows []Row) Source {
	return func(fn func([]Row) error) error {
		if len(rows) == 0 {
			return nil
		}
		return fn(rows)
	}
}

// DefaultLimit is how many rows each list of the HTML report shows at
// most; the CSV and JSON reports list every row.
const DefaultLimit = 5000

// Data is what a report is made of.
type Data struct {
	Run *runstore.Run
	// Rows are the run's rows; nil: none.
	Rows Source
	// Compare is the comparison with the run a re-check re-checks, or with
	// the baseline of a re-audit (Run.Since), nil for other runs or when
	// that run is gone; only HTML shows it.
	Compare *Comparison
	// Trend is the tenant's kept runs, oldest first, for the HTML report's
	// trend of consumer accounts found (drawn from two runs on).
	Trend []TrendPoint
	// Now is when the report is made (zero: the current time).
	Now time.Time
	// Limit is how many rows each list of the HTML report shows at most
	// (0: DefaultLimit).
	Limit int
	// Spill is how the formats that order rows otherwise than the source
	// (contacts) or count distinct users (html) sort them.
	Spill spill.Config
}

// Write renders d in format to w, reading d.Rows once, as it writes.
func Write(w io.Writer, format string, d Data) error {
	if d.Now.IsZero() {
		d.Now = time.Now()
	}
	if d.Rows == nil {
		d.Rows = SliceSource(nil)
	}
	if d.Limit <= 0 {
		d.Limit = DefaultLimit
	}
	switch strings.ToLower(format) {
	case "json":
		return writeJSON(w, d.Rows)
	case "csv":
		return writeCSV(w, d.Rows)
	case "contacts":
		return writeContacts(w, d.Rows, d.Spill)
	case "html":
		return writeHTML(w, d)
	}
	return fmt.Errorf("report format %q: want one of %s", format, strings.Join(Formats, ", "))
}

// writeJSON writes the rows as one indented array, a row at a time as they
// come.
func writeJSON(w io.Writer, rows Source) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	n := 0
	err := rows(func(part []Row) error {
		for i := range part {
			b, err := json.MarshalIndent(&part[i], "  ", "  ")
			if err != nil {
				return fmt.Errorf("encode report row: %w", err)
			}
			if n == 0 {
				bw.WriteString("[\n  ")
			} else {
				bw.WriteString(",\n  ")
			}
			n++
			if _, err := bw.Write(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n == 0 {
		bw.WriteString("[]\n")
	} else {
		bw.WriteString("\n]\n")
	}
	return bw.Flush()
}

var csvHeader = []string{"address", "user_id", "upn", "display_name", "mail", "status", "ms_request_id", "checked_at", "attempts", "error", "reused_from"}

func writeCSV(w io.Writer, rows Source) error {
	cw, err := newCSV(w, csvHeader)
	if err != nil {
		return err
	}
	err = rows(func(part []Row) error {
		for _, r := range part {
			if err := cw.write(r.Address, r.UserID, r.UPN, r.DisplayName, r.Mail, string(r.Status), r.MSRequestID, r.CheckedAt,
				strconv.Itoa(r.Attempts), r.Error, r.ReusedFrom); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return cw.close()
}

// utf8BOM makes Excel read a CSV as UTF-8 rather than the machine's code
// page, which would garble accented names.
const utf8BOM = "\uFEFF"

// csvOut writes spreadsheet-safe CSV: a BOM, then rows whose every cell is
// defused.
type csvOut struct {
	cw  *csv.Writer
	rec []string
}

func newCSV(w io.Writer, header []string) (*csvOut, error) {
	if _, err := io.WriteString(w, utf8BOM); err != nil {
		return nil, err
	}
	c := &csvOut{cw: csv.NewWriter(w)}
	return c, c.cw.Write(header)
}

func (c *csvOut) write(cells ...string) error {
	c.rec = c.rec[:0]
	for _, f := range cells {
		c.rec = append(c.rec, defuse(f))
	}
	return c.cw.Write(c.rec)
}

func (c *csvOut) close() error {
	c.cw.Flush()
	return c.cw.Error()
}

// defuse stops spreadsheet formula injection: a cell that starts with a
// formula character is prefixed with a quote, as OWASP recommends.
func defuse(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
