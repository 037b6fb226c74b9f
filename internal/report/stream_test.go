package report

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/spill"
)

// bigRows are n addresses in order, every fifth held by two users, every
// fourth present, every fiftieth dead; user k holds addresses k and k+1.
func bigRows(n int) []Row {
	var rows []Row
	for i := range n {
		a := fmt.Sprintf("addr%06d@%s", i, []string{"contoso.com", "fabrikam.com"}[i%2])
		st := runstore.StateAbsent
		switch {
		case i%4 == 0:
			st = runstore.StatePresent
		case i%50 == 1:
			st = runstore.StateDead
		}
		u := i / 2
		rows = append(rows, Row{Address: a, UserID: fmt.Sprintf("u%06d", u), UPN: fmt.Sprintf("upn%d@contoso.com", u),
			DisplayName: fmt.Sprintf("Name %d", (u*7919)%1000), Status: st})
		if i%5 == 0 {
			rows = append(rows, Row{Address: a, UserID: "shared", UPN: "shared@contoso.com", DisplayName: "Shared", Status: st})
		}
	}
	return rows
}

// pagedSource hands rows over in pages of 1000 and counts its reads.
func pagedSource(rows []Row, reads *int) Source {
	return func(fn func([]Row) error) error {
		*reads++
		for start := 0; start < len(rows); start += 1000 {
			if err := fn(slices.Clone(rows[start:min(start+1000, len(rows))])); err != nil {
				return err
			}
		}
		return nil
	}
}

// TestStreamedReportsAreComplete writes every format of a run larger than
// the sorters' budget (so that they spill): each reads its source once,
// the JSON decodes to every row in order, the CSV has a record per row,
// the contacts a row per user with a consumer account in their order, and
// the HTML counts every row while it lists the first ones only.
func TestStreamedReportsAreComplete(t *testing.T) {
	t.Parallel()
	rows := bigRows(20000)
	run := &runstore.Run{ID: "r1", TenantID: "t1", AddressesTotal: 20000, UsersTotal: 10000}
	var reads int
	d := Data{Run: run, Rows: pagedSource(rows, &reads), Now: at, Limit: 100, Spill: spill.Config{Dir: t.TempDir(), Budget: 32 << 10}}

	var got []Row
	if err := json.Unmarshal([]byte(render(t, "json", d)), &got); err != nil {
		t.Fatalf("the JSON report does not decode: %v", err)
	}
	if !slices.Equal(got, rows) {
		t.Errorf("the JSON report has %d rows, want the %d of the run in order", len(got), len(rows))
	}
	if recs := readCSV(t, render(t, "csv", d)); len(recs) != len(rows)+1 {
		t.Errorf("the CSV report has %d records, want a header and %d rows", len(recs), len(rows))
	}

	// The contacts, as the rows say: one per user with a present address.
	byUser := make(map[string]*Contact)
	for _, r := range rows {
		if r.Status != runstore.StatePresent {
			continue
		}
		c := byUser[r.UserID]
		if c == nil {
			c = &Contact{UserID: r.UserID, DisplayName: r.DisplayName, UPN: r.UPN, Mail: r.UPN}
			byUser[r.UserID] = c
		}
		c.Addresses = append(c.Addresses, r.Address)
	}
	var want [][]string
	for _, c := range byUser {
		want = append(want, []string{c.UserID, c.DisplayName, c.UPN, c.Mail, strings.Join(c.Addresses, "; ")})
	}
	slices.SortFunc(want, func(a, b []string) int {
		return strings.Compare(strings.ToLower(a[1])+"\x00"+a[2]+"\x00"+a[0]+a[3], strings.ToLower(b[1])+"\x00"+b[2]+"\x00"+b[0]+b[3])
	})
	recs := readCSV(t, render(t, "contacts", d))
	if len(recs) != len(want)+1 {
		t.Fatalf("%d contacts, want %d", len(recs)-1, len(want))
	}
	for i, w := range want {
		if !slices.Equal(recs[i+1], w) {
			t.Fatalf("contact %d = %q, want %q", i, recs[i+1], w)
		}
	}

	h := render(t, "html", d)
	present, dead := 0, 0
	for _, r := range rows {
		present += map[bool]int{true: 1}[r.Status == runstore.StatePresent]
		dead += map[bool]int{true: 1}[r.Status == runstore.StateDead]
	}
	for _, s := range []string{
		fmt.Sprintf("Consumer accounts found (%d)", present),
		fmt.Sprintf("The first 100 of %d rows, by address", present),
		fmt.Sprintf("Addresses whose check failed (%d)", dead),
		fmt.Sprintf(`id="sum-users-present">%d<`, len(byUser)),
		"<td>contoso.com</td><td class=\"num\">10000</td>",
	} {
		if !strings.Contains(h, s) {
			t.Errorf("HTML report lacks %q", s)
		}
	}
	section := h[strings.Index(h, `id="present"`):]
	section = section[:strings.Index(section, "</table>")]
	if n := strings.Count(section, "<tr>"); n != 101 {
		t.Errorf("the present table has %d rows with its header, want 101", n)
	}
	if reads != 4 {
		t.Errorf("4 reports read their source %d times", reads)
	}
}

// TestComparisonCapped: the HTML comparison counts every entry and lists
// the first ones, saying which command lists them all.
func TestComparisonCapped(t *testing.T) {
	t.Parallel()
	var old, cur []Row
	for i := range 30 {
		a := fmt.Sprintf("a%02d@x.com", i)
		old = append(old, Row{Address: a, UserID: "u", Status: runstore.StatePresent})
		cur = append(cur, Row{Address: a, UserID: "u", Status: runstore.StateAbsent})
	}
	c, err := Summarize("r0", SliceSource(old), "r1", SliceSource(cur), 10)
	if err != nil {
		t.Fatal(err)
	}
	if c.Counts[Resolved] != 30 || c.Entries[Resolved] != 30 || len(c.Resolved) != 10 || c.Resolved[9].Address != "a09@x.com" {
		t.Fatalf("comparison = %+v", c)
	}
	h := render(t, "html", Data{Run: &runstore.Run{ID: "r1", RecheckOf: "r0"}, Rows: SliceSource(cur), Compare: c})
	for _, s := range []string{`id="cmp-resolved">30<`, "The first 10 of 30 rows; <code>enqueue compare r0 r1</code> lists them all."} {
		if !strings.Contains(h, s) {
			t.Errorf("HTML report lacks %q", s)
		}
	}
}

// countingWriter counts the bytes written to it.
type countingWriter struct{ n int }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// TestJSONAndCSVWriteAsTheyRead: by the time the source hands over its
// last page, most of the rows before it are written.
func TestJSONAndCSVWriteAsTheyRead(t *testing.T) {
	t.Parallel()
	rows := bigRows(10000)
	for _, format := range []string{"json", "csv"} {
		w := &countingWriter{}
		var before int // bytes written when the last page was handed over
		src := func(fn func([]Row) error) error {
			for start := 0; start < len(rows); start += 1000 {
				if start+1000 >= len(rows) {
					before = w.n
				}
				if err := fn(rows[start:min(start+1000, len(rows))]); err != nil {
					return err
				}
			}
			return nil
		}
		if err := Write(w, format, Data{Run: &runstore.Run{}, Rows: src}); err != nil {
			t.Fatal(err)
		}
		if before < w.n/2 {
			t.Errorf("%s: %d of %d bytes written before the last page: the report holds its rows", format, before, w.n)
		}
	}
}
