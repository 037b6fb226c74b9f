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

func sample() (*runstore.Run, []Row) {
	at := time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)
	run := &runstore.Run{ID: "r1", TenantID: "t1", CreatedAt: at, CompletedAt: at, Enumerated: true, Present: 1, Absent: 1, DeadLettered: 1, AddressesTotal: 3}
	rows := Rows([]runstore.Result{
		{Pair: runstore.Pair{Address: "a@contoso.com", UserID: "u1", UPN: "a@contoso.com"}, State: "present", Attempts: 2, Detail: runstore.Detail{RequestID: "rq1", CheckedAt: at, Error: "old throttle"}},
		{Pair: runstore.Pair{Address: "b@contoso.com", UserID: "u2", UPN: "=HYPERLINK(\"x\")"}, State: "absent", Attempts: 1, Detail: runstore.Detail{RequestID: "rq2", CheckedAt: at}},
		{Pair: runstore.Pair{Address: "c<script>@contoso.com", UserID: "u3", UPN: "c@contoso.com"}, State: "dead", Attempts: 8, Detail: runstore.Detail{CheckedAt: at, Error: "no answer: <b>HTTP 500</b>"}},
	})
	return run, rows
}

func TestJSONContract(t *testing.T) {
	run, rows := sample()
	var buf bytes.Buffer
	if err := Write(&buf, "json", run, rows); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d rows", len(got))
	}
	for _, k := range []string{"address", "user_id", "upn", "status", "ms_request_id", "checked_at", "attempts", "error"} {
		if _, ok := got[0][k]; !ok {
			t.Errorf("field %q missing", k)
		}
	}
	if got[0]["error"] != "" || got[0]["checked_at"] != "2026-11-22T01:02:03Z" || got[0]["attempts"] != 2.0 {
		t.Errorf("row 0 = %v", got[0])
	}
	if got[2]["status"] != "dead" || got[2]["error"] != "no answer: <b>HTTP 500</b>" {
		t.Errorf("row 2 = %v", got[2])
	}
}

func TestCSVDefusesFormulas(t *testing.T) {
	run, rows := sample()
	var buf bytes.Buffer
	if err := Write(&buf, "csv", run, rows); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || strings.Join(recs[0], ",") != strings.Join(csvHeader, ",") {
		t.Fatalf("records = %q", recs)
	}
	if recs[2][2] != `'=HYPERLINK("x")` {
		t.Errorf("formula not defused: %q", recs[2][2])
	}
}

func TestHTMLEscapesAndSections(t *testing.T) {
	run, rows := sample()
	var buf bytes.Buffer
	if err := Write(&buf, "html", run, rows); err != nil {
		t.Fatal(err)
	}
	h := buf.String()
	if strings.Contains(h, "<script>") || strings.Contains(h, "<b>HTTP") {
		t.Error("HTML report does not escape addresses or errors")
	}
	for _, s := range []string{"Consumer accounts found (1)", "Addresses whose test failed (1)", "Timeline", "Run completed", "rq1"} {
		if !strings.Contains(h, s) {
			t.Errorf("HTML report lacks %q", s)
		}
	}
}

func TestUnknownFormat(t *testing.T) {
	run, rows := sample()
	if err := Write(&bytes.Buffer{}, "xml", run, rows); err == nil || !strings.Contains(err.Error(), "json, csv, html") {
		t.Errorf("err = %v", err)
	}
}
