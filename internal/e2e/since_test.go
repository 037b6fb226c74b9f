package e2e

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestRecurringAudit: a first full audit; then the tenant changes (60 new
// users, a newly verified domain on which users have aliases, 40 % of the
// consumer accounts found renamed); submit --since asks the realm service
// about exactly the new addresses and those the first audit did not find
// absent (the simulator's own request log says so), its report equals the
// ground truth with every reused row absent and reused_from set, and
// compare lists exactly the renamed accounts as resolved. The same with the
// first audit's JSON report as the baseline.
func TestRecurringAudit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	redisURL := newRedis(t)
	fast := []string{"--concurrency", "4", "--tenant-rate", "80", "--initial-rate", "80", "--adaptive=false"}

	// The first audit.
	dir1 := filepath.Join(dir, "first")
	os.Mkdir(dir1, 0o700)
	s1 := startSim(t, dir1, "--users", "300", "--seed", "31")
	env1 := s1.env(redisURL)
	w1 := startWorker(t, dir1, "worker", s1, redisURL, fast...)
	first := submitRun(t, s1, env1, graphArgs(s1)...)
	waitDone(t, env1, first, 2*time.Minute, nil)
	w1.kill()
	baselineFile := filepath.Join(dir, "first.json")
	enqueue(t, env1, "report", first, "--format", "json", "--out", baselineFile)
	absentBefore := map[string]bool{}
	var present []string
	for _, r := range readRows(t, baselineFile) {
		switch r.Status {
		case "absent":
			absentBefore[r.Address] = true
		case "present":
			present = append(present, r.Address)
		}
	}
	present = slices.Compact(slices.Sorted(slices.Values(present)))
	renamed := present[:len(present)*4/10]
	if len(renamed) == 0 {
		t.Fatalf("the first audit found %d consumer accounts: too few to rename 40 %%", len(present))
	}

	// A month later.
	dir2 := filepath.Join(dir, "later")
	os.Mkdir(dir2, 0o700)
	renamedFile := filepath.Join(dir2, "renamed.txt")
	if err := os.WriteFile(renamedFile, []byte(strings.Join(renamed, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := startSim(t, dir2, "--users", "360", "--seed", "31", "--verify-domain", "unverified.example", "--renamed-file", renamedFile)
	env2 := s2.env(redisURL)
	startWorker(t, dir2, "worker", s2, redisURL, fast...)
	gt := s2.truth(t)
	truth := map[string]bool{}
	var want []string // what can have changed: all but the absent answers
	newDomain := 0
	for _, a := range gt.Addresses {
		truth[a.Address] = a.ConsumerAccount
		if !absentBefore[a.Address] {
			want = append(want, a.Address)
		}
		if strings.HasSuffix(a.Address, "@unverified.example") {
			newDomain++
		}
	}
	sort.Strings(want)
	if newDomain == 0 || len(gt.Addresses) <= len(absentBefore)+len(present) {
		t.Fatalf("the tenant did not change: %d addresses, %d at the newly verified domain", len(gt.Addresses), newDomain)
	}

	// A dry run says what would be reused and what asked.
	reusable := len(gt.Addresses) - len(want)
	dry := string(enqueue(t, env2, append([]string{"submit", "--tenant-id", s2.TenantID, "--since", first, "--dry-run"}, graphArgs(s2)...)...))
	if !strings.Contains(dry, itoa(reusable)+" answers reused from --since") || !strings.Contains(dry, itoa(len(want))+" to ask") {
		t.Errorf("dry run says:\n%s\nwant %d reused, %d to ask", dry, reusable, len(want))
	}

	for _, since := range []string{first, baselineFile} {
		before := s2.stats(t).PerAddress
		run := submitRun(t, s2, env2, append(graphArgs(s2), "--since", since)...)
		st := waitDone(t, env2, run, 2*time.Minute, nil)
		after := s2.stats(t).PerAddress
		var asked []string
		for a, n := range after {
			if n > before[a] {
				asked = append(asked, a)
			}
		}
		sort.Strings(asked)
		if !slices.Equal(asked, want) {
			t.Errorf("--since %s: the realm service was asked about %d addresses, want the %d that can have changed", filepath.Base(since), len(asked), len(want))
		}

		reused := 0
		rows := jsonReport(t, env2, dir2, run)
		for _, r := range rows {
			wantStatus := map[bool]string{true: "present", false: "absent"}[truth[r.Address]]
			if r.Status != wantStatus {
				t.Errorf("--since %s: %s is %s, the ground truth says %s", filepath.Base(since), r.Address, r.Status, wantStatus)
			}
			switch {
			case absentBefore[r.Address]:
				reused++
				if r.ReusedFrom != first || r.Attempts != 0 || r.MSRequestID == "" || r.CheckedAt == "" {
					t.Errorf("reused row %+v: want reused_from %s, no attempt, the first answer's request ID and time", r, first)
				}
			case r.ReusedFrom != "":
				t.Errorf("asked row %+v has reused_from", r)
			}
		}
		var status struct {
			Reused int64  `json:"reused"`
			Since  string `json:"since"`
		}
		json.Unmarshal(enqueue(t, env2, "status", run, "-o", "json"), &status)
		if status.Since != first || status.Reused == 0 || st.AddressesTotal != int64(len(gt.Addresses)) {
			t.Errorf("status %+v %+v: want since %s, reused answers, %d addresses", status, st, first, len(gt.Addresses))
		}

		var cmp struct {
			Resolved []struct {
				Address string `json:"address"`
			} `json:"resolved"`
			StillPresent []struct {
				Address string `json:"address"`
			} `json:"still_present"`
			NewlyPresent []struct {
				Address string `json:"address"`
			} `json:"newly_present"`
		}
		if err := json.Unmarshal(enqueue(t, env2, "compare", first, run, "-o", "json"), &cmp); err != nil {
			t.Fatal(err)
		}
		resolved := map[string]bool{}
		for _, e := range cmp.Resolved {
			resolved[e.Address] = true
		}
		if got := slices.Sorted(maps.Keys(resolved)); !slices.Equal(got, renamed) {
			t.Errorf("compare: %d resolved, want the %d renamed", len(got), len(renamed))
		}
		t.Logf("--since %s: %d addresses, %d asked, %d reused", filepath.Base(since), len(rows), len(asked), reused)

		// Resumed with its baseline, the run keeps its reuse and asks
		// nothing more.
		before = s2.stats(t).PerAddress
		_, errOut, err := enqueueErr(env2, append([]string{"submit", "--tenant-id", s2.TenantID, "--run-id", run, "--since", since}, graphArgs(s2)...)...)
		if err != nil || !strings.Contains(string(errOut), "queued 0 new addresses") {
			t.Errorf("resume with --since: %v\n%s", err, errOut)
		}
		if st := getStatus(t, env2, run); st.State != "completed" || !maps.Equal(before, s2.stats(t).PerAddress) {
			t.Errorf("after the resume: %+v, realm asked again", st)
		}

		// The HTML report as a browser shows it: "since the last audit" with
		// compare's counts, and the tenant's trend.
		html := filepath.Join(dir2, filepath.Base(since)+".html")
		enqueue(t, env2, "report", run, "--format", "html", "--out", html)
		dom := renderDOM(t, html)
		distinct := func(list []struct {
			Address string `json:"address"`
		}) string {
			seen := map[string]bool{}
			for _, e := range list {
				seen[e.Address] = true
			}
			return itoa(len(seen))
		}
		for id, want := range map[string]string{"cmp-resolved": distinct(cmp.Resolved), "cmp-still": distinct(cmp.StillPresent),
			"cmp-new": distinct(cmp.NewlyPresent)} {
			if got := elementText(t, dom, id); got != want {
				t.Errorf("HTML report: %s shows %s, compare says %s", id, got, want)
			}
		}
		if !strings.Contains(dom, "Since the last audit") || !strings.Contains(dom, `id="trend-chart"`) {
			t.Error("the HTML report of a re-audit lacks its since-the-last-audit section or the tenant's trend")
		}
	}

	// The tenant's history: the first audit; the first re-audit, which
	// resolved the renamed accounts; the second, which compared with the
	// first re-audit finds nothing new.
	var hist struct {
		Runs []struct {
			RunID    string `json:"run_id"`
			Present  int64  `json:"present"`
			Resolved *int64 `json:"resolved"`
			New      *int64 `json:"new"`
			Since    string `json:"since"`
			Reused   int64  `json:"reused"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(enqueue(t, env2, "history", "--tenant-id", s2.TenantID, "-o", "json"), &hist); err != nil {
		t.Fatal(err)
	}
	if len(hist.Runs) != 3 || hist.Runs[0].RunID != first || hist.Runs[0].Resolved != nil || hist.Runs[1].Resolved == nil ||
		*hist.Runs[1].Resolved != int64(len(renamed)) || *hist.Runs[2].Resolved != 0 || *hist.Runs[2].New != 0 || hist.Runs[1].Since != first {
		t.Errorf("history %+v: want the first audit, then a re-audit resolving the %d renamed, then one changing nothing", hist.Runs, len(renamed))
	}
	t.Logf("history:\n%s", enqueue(t, env2, "history", "--tenant-id", s2.TenantID))

	// A scheduled re-audit's --since latest: the newest completed run, whose
	// present answers alone are asked again.
	latest := hist.Runs[2].RunID
	var presentNow []string
	for _, r := range jsonReport(t, env2, dir2, latest) {
		if r.Status == "present" {
			presentNow = append(presentNow, r.Address)
		}
	}
	presentNow = slices.Compact(slices.Sorted(slices.Values(presentNow)))
	before := s2.stats(t).PerAddress
	run := submitRun(t, s2, env2, append(graphArgs(s2), "--since", "latest")...)
	waitDone(t, env2, run, 2*time.Minute, nil)
	var asked []string
	for a, n := range s2.stats(t).PerAddress {
		if n > before[a] {
			asked = append(asked, a)
		}
	}
	sort.Strings(asked)
	var status struct {
		Since string `json:"since"`
	}
	json.Unmarshal(enqueue(t, env2, "status", run, "-o", "json"), &status)
	if status.Since != latest || !slices.Equal(asked, presentNow) {
		t.Errorf("--since latest: since %s, %d asked; want %s and its %d present addresses", status.Since, len(asked), latest, len(presentNow))
	}
}

func readRows(t *testing.T, path string) []reportRow {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rows []reportRow
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatal(err)
	}
	return rows
}
