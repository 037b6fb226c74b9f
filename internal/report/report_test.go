package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/msaudit/msaudit/internal/runstore"
)

var at = time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)

func sample() Data {
	run := &runstore.Run{ID: "r1", TenantID: "t1", CreatedAt: at, CompletedAt: at.Add(time.Hour), Enumerated: true, Since: "r-base",
		Present: 1, Absent: 2, Reused: 1, DeadLettered: 1, Checked: 3, AddressesTotal: 4, UsersTotal: 3, Requests: 12, Throttles: 2,
		Chart: runstore.Chart{Width: time.Minute, Buckets: []runstore.Bucket{{Start: at, Done: 2, Requests: 5, Throttles: 1}, {Start: at.Add(time.Minute), Done: 1, Requests: 7, Throttles: 1}}}}
	rows := Rows(run, []runstore.Result{
		{Pair: runstore.Pair{Address: "a@contoso.com", UserID: "u1", UPN: "a@contoso.com", DisplayName: "<img src=x onerror=alert(1)>", Mail: "-a@contoso.com"}, State: "present", Attempts: 2, Detail: runstore.Detail{RequestID: "rq1", CheckedAt: at, Error: "old throttle"}},
		{Pair: runstore.Pair{Address: "b@contoso.com", UserID: "u2", UPN: "=HYPERLINK(\"x\")"}, State: "absent", Attempts: 1, Detail: runstore.Detail{RequestID: "rq2", CheckedAt: at}},
		{Pair: runstore.Pair{Address: "c<script>@fabrikam.com", UserID: "u3", UPN: "c@contoso.com"}, State: "dead", Attempts: 8, Detail: runstore.Detail{CheckedAt: at, Error: "no answer: <b>HTTP 500</b>"}},
		{Pair: runstore.Pair{Address: "d@contoso.com", UserID: "u4", UPN: "d@contoso.com"}, State: "absent", Detail: runstore.Detail{RequestID: "rq0", CheckedAt: at.Add(-24 * time.Hour)}},
	})
	return Data{Run: run, Rows: SliceSource(rows), Now: at}
}

func summarizeT(t *testing.T, oldID string, old []Row, newID string, cur Source) *Comparison {
	t.Helper()
	c, err := Summarize(oldID, SliceSource(old), newID, cur, DefaultLimit)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func render(t *testing.T, format string, d Data) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, format, d); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestJSONContract(t *testing.T) {
	t.Parallel()
	var got []map[string]any
	if err := json.Unmarshal([]byte(render(t, "json", sample())), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("%d rows", len(got))
	}
	for _, k := range []string{"address", "user_id", "upn", "display_name", "mail", "status", "ms_request_id", "checked_at", "attempts", "error",
		"reused_from", "run_id", "tenant_id"} {
		if _, ok := got[0][k]; !ok {
			t.Errorf("field %q missing", k)
		}
	}
	if got[0]["error"] != "" || got[0]["checked_at"] != "2026-11-22T01:02:03Z" || got[0]["attempts"] != 2.0 || got[0]["mail"] != "-a@contoso.com" {
		t.Errorf("row 0 = %v", got[0])
	}
	if got[2]["status"] != "dead" || got[2]["error"] != "no answer: <b>HTTP 500</b>" {
		t.Errorf("row 2 = %v", got[2])
	}
	// Asked in this run: no reused_from; reused: the baseline's ID, with the
	// first answer's request ID and time.
	if got[1]["reused_from"] != "" || got[1]["run_id"] != "r1" || got[1]["tenant_id"] != "t1" {
		t.Errorf("row 1 = %v", got[1])
	}
	if got[3]["reused_from"] != "r-base" || got[3]["status"] != "absent" || got[3]["ms_request_id"] != "rq0" || got[3]["checked_at"] != "2026-11-21T01:02:03Z" {
		t.Errorf("row 3 (reused) = %v", got[3])
	}
}

// readCSV checks the BOM and that no cell could run as a formula.
func readCSV(t *testing.T, s string) [][]string {
	t.Helper()
	if !strings.HasPrefix(s, "\uFEFF") {
		t.Fatal("CSV lacks the UTF-8 BOM")
	}
	recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(s, "\uFEFF"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		for _, c := range rec {
			if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
				t.Errorf("cell %q starts with a formula character", c)
			}
		}
	}
	return recs
}

func TestCSVDefusesFormulas(t *testing.T) {
	t.Parallel()
	recs := readCSV(t, render(t, "csv", sample()))
	if len(recs) != 5 || strings.Join(recs[0], ",") != strings.Join(csvHeader, ",") || recs[4][10] != "r-base" || recs[2][10] != "" {
		t.Fatalf("records = %q", recs)
	}
	if recs[2][2] != `'=HYPERLINK("x")` || recs[1][4] != "'-a@contoso.com" {
		t.Errorf("formulas not defused: %q, %q", recs[2][2], recs[1][4])
	}
}

func TestContacts(t *testing.T) {
	t.Parallel()
	rows := []Row{
		{Address: "a1@x.com", UserID: "u1", UPN: "ann@x.com", DisplayName: "Ann", Mail: "ann.mail@x.com", Status: "present"},
		{Address: "a2@x.com", UserID: "u1", UPN: "ann@x.com", DisplayName: "Ann", Mail: "ann.mail@x.com", Status: "present"},
		{Address: "b@x.com", UserID: "u2", UPN: "+bob@x.com", DisplayName: "@Bob", Status: "present"},
		{Address: "c@x.com", UserID: "u3", UPN: "c@x.com", DisplayName: "Cy", Status: "absent"},
		{Address: "d@x.com", Status: "present"},
		{Address: "e@x.com", UserID: "u4", Status: "dead"},
	}
	recs := readCSV(t, render(t, "contacts", Data{Run: &runstore.Run{}, Rows: SliceSource(rows)}))
	want := [][]string{
		contactsHeader,
		{"", "", "", "d@x.com", "d@x.com"},
		{"u2", "'@Bob", "'+bob@x.com", "'+bob@x.com", "b@x.com"},
		{"u1", "Ann", "ann@x.com", "ann.mail@x.com", "a1@x.com; a2@x.com"},
	}
	if len(recs) != len(want) {
		t.Fatalf("contacts = %q", recs)
	}
	for i := range want {
		if strings.Join(recs[i], "|") != strings.Join(want[i], "|") {
			t.Errorf("contact row %d = %q, want %q", i, recs[i], want[i])
		}
	}
}

func TestCompare(t *testing.T) {
	t.Parallel()
	row := func(a, st string) Row { return Row{Address: a, UserID: "u-" + a, Status: runstore.AddressStatus(st)} }
	old := []Row{row("a", "present"), row("b", "present"), row("c", "present"), row("d", "absent"), row("e", "present"), row("f", "dead")}
	cur := []Row{row("a", "absent"), row("b", "present"), row("c", "dead"), row("d", "present"), row("f", "present"), row("g", "present")}
	lists := make(map[Class][]string)
	n, err := CompareRuns(SliceSource(old), SliceSource(cur), func(c Class, e Entry) error {
		lists[c] = append(lists[c], e.Address)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for c, want := range map[Class]string{Resolved: "a", StillPresent: "b", NewlyPresent: "d f g", Unconfirmed: "c e"} {
		if got := strings.Join(lists[c], " "); got != want || n[c] != len(lists[c]) {
			t.Errorf("%s = %v (%d addresses), want %s", c.Name(), got, n[c], want)
		}
	}
}

func TestHTMLEscapesAndSections(t *testing.T) {
	t.Parallel()
	d := sample()
	d.Compare = summarizeT(t, "r0", []Row{{Address: "b@contoso.com", Status: "present", DisplayName: "<i>x</i>"}}, "r1", d.Rows)
	h := render(t, "html", d)
	for _, bad := range []string{"<script>@", "<b>HTTP", "<img src", "<i>x"} {
		if strings.Contains(h, bad) {
			t.Errorf("HTML report does not escape %q", bad)
		}
	}
	for _, s := range []string{"Consumer accounts found (1)", "Addresses whose check failed (1)", "Timeline", "Run completed", "rq1",
		`id="chart"`, "contoso.com", "fabrikam.com", "Compared with run r0", `id="cmp-resolved">1<`, "&lt;img src=x onerror=alert(1)&gt;"} {
		if !strings.Contains(h, s) {
			t.Errorf("HTML report lacks %q", s)
		}
	}
	if strings.Contains(h, "cdn") || strings.Contains(h, "http://") || strings.Contains(h, "https://") {
		t.Error("HTML report refers to something outside itself")
	}
}

func TestHTMLWithoutChecks(t *testing.T) {
	t.Parallel()
	h := render(t, "html", Data{Run: &runstore.Run{ID: "r", TenantID: "t"}})
	if !strings.Contains(h, "No check recorded yet") || !strings.Contains(h, "Consumer accounts found (0)") {
		t.Error("an empty run's report lacks its empty states")
	}
}

func TestUnknownFormat(t *testing.T) {
	t.Parallel()
	if err := Write(&bytes.Buffer{}, "xml", sample()); err == nil || !strings.Contains(err.Error(), "json, csv, html, contacts") {
		t.Errorf("err = %v", err)
	}
}

// TestHTMLSinceTheLastAudit: a re-audit's report says how many answers it
// reused from which run, compares with that run under "Since the last
// audit", and draws the tenant's trend from two kept runs on.
func TestHTMLSinceTheLastAudit(t *testing.T) {
	t.Parallel()
	d := sample()
	base := []Row{{Address: "a@contoso.com", Status: "present"}, {Address: "b@contoso.com", Status: "present"}}
	d.Compare = summarizeT(t, "r-base", base, "r1", d.Rows)
	d.Trend = []TrendPoint{{RunID: "r-base", At: at.Add(-30 * 24 * time.Hour), Addresses: 3, Present: 2}, {RunID: "r1", At: at, Addresses: 4, Present: 1}}
	h := render(t, "html", d)
	for _, s := range []string{"Since the last audit", "re-audited the tenant since run <code>r-base</code>", `id="cmp-resolved">1<`, `id="cmp-still">1<`,
		`id="cmp-new">0<`, "Reused answers", "1 addresses run r-base found without a consumer account", "first answered between 2026-11-21 and 2026-11-21", `id="trend-chart"`, "2026-10-23", `class="done current"`} {
		if !strings.Contains(h, s) {
			t.Errorf("HTML report lacks %q", s)
		}
	}
	if strings.Contains(h, "Compared with run") {
		t.Error("a re-audit's report calls its baseline a re-checked run")
	}
	d.Trend = d.Trend[1:]
	if h := render(t, "html", d); strings.Contains(h, `id="trend-chart"`) {
		t.Error("a trend drawn from one run")
	}
}
