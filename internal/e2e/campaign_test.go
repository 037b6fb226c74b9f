package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

func (s *sim) put(t testing.TB, path, body string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPut, s.URL+path, bytes.NewReader([]byte(body)))
	resp, err := s.admin(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT %s: %s", path, resp.Status)
	}
}

func submitRun(t testing.TB, s *sim, env []string, extra ...string) string {
	t.Helper()
	args := append([]string{"submit", "--tenant-id", s.TenantID}, extra...)
	return strings.TrimSpace(string(enqueue(t, env, args...)))
}

func graphArgs(s *sim) []string {
	return []string{"--client-id", clientID, "--graph-url", s.GraphURL, "--authority-host", s.Authority}
}

// TestRecheckAndCompare: after a run, some consumer accounts are renamed in
// the simulator; a re-check sends requests only for the addresses the run
// found present, and compare lists exactly the renamed ones as resolved. The
// HTML reports of both runs render in Chromium with the hostile users shown
// as text, and no CSV cell can run as a formula.
func TestRecheckAndCompare(t *testing.T) {
	t.Parallel() // a Redis database, simulator and workers of its own
	dir := t.TempDir()
	redisURL := newRedis(t)
	s := startSim(t, dir, "--users", "400", "--seed", "21", "--hostile-users", "--fault-5xx", "0.01")
	env := s.env(redisURL)
	startWorker(t, dir, "worker", s, redisURL, "--concurrency", "4", "--tenant-rate", "400", "--initial-rate", "200",
		"--max-attempts", "10", "--backoff-base", "10ms", "--backoff-max", "100ms")

	run := submitRun(t, s, env, graphArgs(s)...)
	st := waitDone(t, env, run, 3*time.Minute, nil)
	gt := s.truth(t)
	var present []string
	for _, a := range gt.Addresses {
		if a.ConsumerAccount {
			present = append(present, a.Address)
		}
	}
	if st.Present != int64(len(present)) || st.DeadLettered != 0 {
		t.Fatalf("first run %+v, ground truth has %d consumer accounts", st, len(present))
	}
	rows := jsonReport(t, env, dir, run)
	withName := 0
	for _, r := range rows {
		if r.DisplayName != "" {
			withName++
		}
	}
	if withName != len(rows) {
		t.Errorf("%d of %d report rows have a display name", withName, len(rows))
	}
	checkReports(t, env, dir, run, int(st.Present), st.AddressesTotal)

	// Rename every third consumer account, then re-check.
	var renamed []string
	for i := 0; i < len(present); i += 3 {
		renamed = append(renamed, present[i])
	}
	b, _ := json.Marshal(map[string][]string{"addresses": renamed})
	s.put(t, "/_sim/renamed", string(b))
	before := s.stats(t).PerAddress
	recheck := submitRun(t, s, env, "--recheck", run)
	st2 := waitDone(t, env, recheck, 2*time.Minute, nil)
	after := s.stats(t).PerAddress
	var asked []string
	for a, n := range after {
		if n > before[a] {
			asked = append(asked, a)
		}
	}
	sort.Strings(asked)
	if strings.Join(asked, ",") != strings.Join(present, ",") {
		t.Errorf("the re-check sent requests for %d addresses, want exactly the %d found present", len(asked), len(present))
	}
	if st2.AddressesTotal != int64(len(present)) || st2.Present != int64(len(present)-len(renamed)) {
		t.Errorf("re-check status %+v, want %d addresses, %d present", st2, len(present), len(present)-len(renamed))
	}

	type entry struct {
		Address     string `json:"address"`
		UserID      string `json:"user_id"`
		UPN         string `json:"upn"`
		DisplayName string `json:"display_name"`
	}
	var cmp struct {
		Resolved     []entry `json:"resolved"`
		StillPresent []entry `json:"still_present"`
		NewlyPresent []entry `json:"newly_present"`
	}
	if err := json.Unmarshal(enqueue(t, env, "compare", run, recheck, "-o", "json"), &cmp); err != nil {
		t.Fatal(err)
	}
	resolved := map[string]bool{}
	for _, e := range cmp.Resolved {
		resolved[e.Address] = true
		if e.UserID == "" || e.UPN == "" {
			t.Errorf("resolved entry without its user: %+v", e)
		}
	}
	if len(resolved) != len(renamed) || len(cmp.NewlyPresent) != 0 {
		t.Errorf("compare: %d resolved, %d newly present; want the %d renamed and none", len(resolved), len(cmp.NewlyPresent), len(renamed))
	}
	for _, a := range renamed {
		if !resolved[a] {
			t.Errorf("renamed %s not listed as resolved", a)
		}
	}
	text := string(enqueue(t, env, "compare", run, recheck))
	if !strings.Contains(text, "resolved") || !strings.Contains(text, renamed[0]) {
		t.Errorf("compare text lacks the resolved list:\n%s", text)
	}

	// The re-check's HTML report shows the comparison.
	path := filepath.Join(dir, "recheck.html")
	enqueue(t, env, "report", recheck, "--format", "html", "--out", path)
	dom := renderDOM(t, path)
	if got := elementText(t, dom, "cmp-resolved"); got != itoa(len(renamed)) {
		t.Errorf("the re-check report shows %s resolved, want %d", got, len(renamed))
	}
}

// checkReports renders the run's HTML report in Chromium and checks its
// DOM, and checks the CSV and contacts for formula cells and the BOM.
func checkReports(t *testing.T, env []string, dir, run string, present int, total int64) {
	t.Helper()
	path := filepath.Join(dir, "report.html")
	enqueue(t, env, "report", run, "--format", "html", "--out", path)
	dom := renderDOM(t, path)
	if got := elementText(t, dom, "sum-present"); got != itoa(present) {
		t.Errorf("summary shows %s present, want %d", got, present)
	}
	if got := elementText(t, dom, "sum-addresses"); got != itoa(int(total)) {
		t.Errorf("summary shows %s addresses, want %d", got, total)
	}
	if sum := domainSum(t, dom); sum != int(total) {
		t.Errorf("per-domain rows sum to %d, want %d", sum, total)
	}
	for _, id := range []string{`id="found"`, `id="failed"`, `id="timeline"`, `<svg class="chart" id="chart"`, "<rect"} {
		if !strings.Contains(dom, id) {
			t.Errorf("rendered report lacks %s", id)
		}
	}
	// The hostile display names are text, and nothing they carried ran.
	for _, want := range []string{"&lt;script&gt;document.title='pwned'&lt;/script&gt;Scripted", "&lt;img src=x onerror=\"document.title='pwned'\"&gt;Imaged", "=cmd|calc!a0@contoso.com"} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered report lacks %q as text", want)
		}
	}
	for _, bad := range []string{"<img src=\"x\"", "<img src=x", "pwned</title>", "<title>pwned"} {
		if strings.Contains(dom, bad) {
			t.Errorf("rendered report holds an injected element: %q", bad)
		}
	}
	if n := strings.Count(dom, "<script"); n != 1 {
		t.Errorf("rendered report has %d script elements, want only its own", n)
	}
	// Capped at two rows, the list of consumer accounts says so and stays
	// a filterable, sortable table.
	capped := filepath.Join(dir, "report-capped.html")
	enqueue(t, env, "report", run, "--format", "html", "--html-rows", "2", "--out", capped)
	dom = renderDOM(t, capped)
	if present > 2 && !strings.Contains(dom, `id="present-capped">The first 2 of `) {
		t.Error("the capped report does not say its list is capped")
	}
	table := dom[strings.Index(dom, `id="present"`):]
	table = table[:strings.Index(table, "</table>")]
	if n := strings.Count(table, "<tr"); present > 2 && n != 3 {
		t.Errorf("the capped table has %d rows with its header, want 3", n)
	}
	if !strings.Contains(dom, `placeholder="Filter these 2 rows"`) || !strings.Contains(table, "sortable") {
		t.Error("the capped table is not made filterable and sortable")
	}
	for _, format := range []string{"csv", "contacts"} {
		p := filepath.Join(dir, "report-"+format+".csv")
		enqueue(t, env, "report", run, "--format", format, "--out", p)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		checkSafeCSV(t, format, b)
	}
}
