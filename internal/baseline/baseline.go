// Package baseline reads the answers of an earlier run that a re-audit may
// reuse (submit --since): the addresses that run found without a consumer
// account, with the request ID and time of each answer. The earlier run is
// named by its ID, while the run store keeps it, or by its JSON report,
// which outlives the store's retention.
//
// Reusing an absent answer is sound because Microsoft has refused since 2016
// to create a consumer account on a domain registered in Entra ID, or to
// rename one onto it: an address with no consumer account on a domain the
// tenant verified keeps having none. What can change is asked again: new
// addresses, addresses found present (renamed since: resolved), addresses
// left without an answer, and answers older than the age limit, which is the
// age of the first answer, kept along a chain of re-audits.
package baseline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/msaudit/msaudit/internal/addresses"
	"github.com/msaudit/msaudit/internal/report"
	"github.com/msaudit/msaudit/internal/runstore"
)

// Baseline is what an earlier run answered absent.
type Baseline struct {
	RunID    string
	TenantID string
	// Absent maps an address to the detail of its first answer: its request
	// ID and check time.
	Absent map[string]runstore.Detail
}

// Reuse returns the answer addr may reuse at now: absent in the baseline,
// answered no longer than maxAge ago.
func (b *Baseline) Reuse(addr string, now time.Time, maxAge time.Duration) (runstore.Detail, bool) {
	d, ok := b.Absent[addr]
	if !ok || d.CheckedAt.IsZero() || now.Sub(d.CheckedAt) > maxAge {
		return runstore.Detail{}, false
	}
	return d, true
}

// ErrBaseline marks every reason a baseline cannot be used.
var ErrBaseline = errors.New("--since")

// FromRun reads the baseline of a run the store keeps.
func FromRun(ctx context.Context, store *runstore.Store, id string) (*Baseline, error) {
	run, err := store.GetRun(ctx, id)
	if errors.Is(err, runstore.ErrRunNotFound) {
		return nil, fmt.Errorf("%w %s: no such run (purged, or past its retention): give its JSON report instead", ErrBaseline, id)
	}
	if err != nil {
		return nil, err
	}
	b := &Baseline{RunID: run.ID, TenantID: run.TenantID, Absent: make(map[string]runstore.Detail)}
	err = store.EachResults(ctx, id, func(part []runstore.Result) error {
		for _, r := range part {
			if r.State == runstore.StateAbsent {
				b.Absent[r.Address] = r.Detail
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// FromReport reads the baseline of a JSON report (report --format json). The
// file is read as untrusted: every row must be a report row of one run and
// one tenant, its address valid and its answer's time well formed.
func FromReport(path string) (*Baseline, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrBaseline, path, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("%w %s: is a directory: name a report file", ErrBaseline, path)
	}
	b, err := readReport(f)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrBaseline, path, err)
	}
	return b, nil
}

func readReport(r io.Reader) (*Baseline, error) {
	dec := json.NewDecoder(r)
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		return nil, errors.New("not a JSON report (report --format json): want an array of rows")
	}
	b := &Baseline{Absent: make(map[string]runstore.Detail)}
	for n := 1; dec.More(); n++ {
		var row report.Row
		if err := dec.Decode(&row); err != nil {
			return nil, fmt.Errorf("row %d: not a report row: %w", n, err)
		}
		if row.RunID == "" || row.TenantID == "" {
			return nil, fmt.Errorf("row %d has no run_id or tenant_id: a report of an earlier version; give the run's ID instead", n)
		}
		if b.RunID == "" {
			b.RunID, b.TenantID = row.RunID, row.TenantID
		}
		if row.RunID != b.RunID || !strings.EqualFold(row.TenantID, b.TenantID) {
			return nil, fmt.Errorf("row %d is of run %s, tenant %s, not of run %s, tenant %s: not one run's report",
				n, printable(row.RunID), printable(row.TenantID), b.RunID, b.TenantID)
		}
		if !addresses.Valid(row.Address) {
			return nil, fmt.Errorf("row %d: not a valid address", n)
		}
		if row.Status != runstore.StateAbsent {
			continue
		}
		at, err := time.Parse(time.RFC3339, row.CheckedAt)
		if err != nil {
			return nil, fmt.Errorf("row %d: checked_at %q is not an RFC 3339 time", n, printable(row.CheckedAt))
		}
		b.Absent[row.Address] = runstore.Detail{RequestID: row.MSRequestID, CheckedAt: at.UTC()}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim(']') {
		return nil, errors.New("the array of rows is cut short or followed by something else")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the array of rows")
	}
	if b.RunID == "" {
		return nil, errors.New("the report has no row: nothing to reuse")
	}
	return b, nil
}

// printable keeps at most 80 characters of s, without control characters: a
// hostile file must not write escape sequences to the operator's terminal.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
	if len([]rune(s)) > 80 {
		s = string([]rune(s)[:80]) + "…"
	}
	return s
}
