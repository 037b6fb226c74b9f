// Package report renders a run's results for people and scripts: JSON (one
// object per user-address pair, the contract of SPEC.md §4), CSV (the same
// rows), and a self-contained HTML page with the reference module's three
// sections (consumer accounts found, failed checks with their errors, the
// run's timeline). It reads nothing from Redis itself and escapes everything
// it prints.
package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/msaudit/msaudit/internal/runstore"
)

// Formats lists the formats Write accepts.
var Formats = []string{"json", "csv", "html"}

// Row is one user-address pair; its JSON form is the report contract.
type Row struct {
	Address     string `json:"address"`
	UserID      string `json:"user_id"`
	UPN         string `json:"upn"`
	Status      string `json:"status"` // present, absent, dead, pending
	MSRequestID string `json:"ms_request_id"`
	CheckedAt   string `json:"checked_at"` // RFC 3339 UTC, empty if never checked
	Attempts    int    `json:"attempts"`
	Error       string `json:"error"`
}

// Rows converts store results to report rows.
func Rows(results []runstore.Result) []Row {
	rows := make([]Row, len(results))
	for i, r := range results {
		row := Row{Address: r.Address, UserID: r.UserID, UPN: r.UPN, Status: r.State,
			MSRequestID: r.RequestID, Attempts: r.Attempts, Error: r.Error}
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

// Write renders rows of run in format to w.
func Write(w io.Writer, format string, run *runstore.Run, rows []Row) error {
	switch strings.ToLower(format) {
	case "json":
		return writeJSON(w, rows)
	case "csv":
		return writeCSV(w, rows)
	case "html":
		return writeHTML(w, run, rows)
	}
	return fmt.Errorf("report format %q: want one of %s", format, strings.Join(Formats, ", "))
}

func writeJSON(w io.Writer, rows []Row) error {
	if rows == nil {
		rows = []Row{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rows)
}

var csvHeader = []string{"address", "user_id", "upn", "status", "ms_request_id", "checked_at", "attempts", "error"}

func writeCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	for _, r := range rows {
		rec := []string{r.Address, r.UserID, r.UPN, r.Status, r.MSRequestID, r.CheckedAt, strconv.Itoa(r.Attempts), r.Error}
		for i, f := range rec {
			rec[i] = defuse(f)
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// defuse stops spreadsheet formula injection: a cell that starts with a
// formula character is prefixed with a quote, as OWASP recommends.
func defuse(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
