package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msaudit/msaudit/internal/testpki"
)

// simStats reads the simulator's counters over HTTPS.
type simStats struct {
	PerAddress    map[string]int64 `json:"per_address"`
	UserPages     map[string]int64 `json:"user_pages"`
	GraphRequests int64            `json:"graph_requests"`
	RealmRequests int64            `json:"realm_requests"`
	// RealmReasked is how many valid answers it gave beyond the first for
	// each address: checks lost and asked again.
	RealmReasked int64 `json:"realm_reasked"`
}

func (s *sim) stats(t testing.TB) simStats {
	t.Helper()
	ca, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get(s.URL + "/_sim/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st simStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func redisKeys(t *testing.T, redisURL string) []string {
	t.Helper()
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	return rdb.Keys(context.Background(), "*").Val()
}

// TestMissingPermissionLeavesNothing: a token without the user permission
// stops submit before anything is written, naming the permission and the
// consent steps; so does a Graph 403 for a permission the token lacks.
func TestMissingPermissionLeavesNothing(t *testing.T) {
	t.Parallel() // a Redis database, simulator and workers of its own
	dir := t.TempDir()
	redisURL := newRedis(t)
	s := startSim(t, dir, "--users", "50", "--roles", "Domain.Read.All")
	graph := []string{"submit", "--tenant-id", s.TenantID, "--client-id", clientID, "--graph-url", s.GraphURL, "--authority-host", s.Authority}
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"default user permission", graph, []string{"permission User.Read.All", "Grant admin consent", "API permissions"}},
		{"named user permission", append(append([]string{}, graph...), "--user-permission", "Directory.Read.All"),
			[]string{"permission Directory.Read.All"}},
		{"dry run", append(append([]string{}, graph...), "--dry-run"), []string{"permission User.Read.All"}},
		{"secret on the command line", append(append([]string{}, graph...), "--client-secret", "cli-secret-value"),
			[]string{"--client-secret is refused"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, errOut, err := enqueueErr(s.env(redisURL), c.args...)
			if err == nil {
				t.Fatalf("exit 0; stderr:\n%s", errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(string(errOut), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if strings.Contains(string(errOut), secret) || strings.Contains(string(errOut), "cli-secret-value") {
				t.Errorf("stderr shows a secret:\n%s", errOut)
			}
			if keys := redisKeys(t, redisURL); len(keys) != 0 {
				t.Errorf("redis holds %d keys after a refused submit: %v", len(keys), keys)
			}
		})
	}
}

// TestEnumerationUnderGraphThrottling: 50,000 users with a 429 (Retry-After)
// on every 10th users page. The run's addresses equal the ground truth and
// every page was served successfully exactly once.
func TestEnumerationUnderGraphThrottling(t *testing.T) {
	t.Parallel() // a Redis database, simulator and workers of its own
	dir := t.TempDir()
	redisURL := newRedis(t)
	s := startSim(t, dir, "--users", "50000", "--seed", "5", "--graph-throttle-every", "10")
	env := s.env(redisURL)
	out := enqueue(t, env, "submit", "--tenant-id", s.TenantID, "--client-id", clientID,
		"--graph-url", s.GraphURL, "--authority-host", s.Authority, "-o", "json")
	var res struct {
		RunID     string `json:"run_id"`
		Addresses int    `json:"addresses_added"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("submit output %q: %v", out, err)
	}
	gt := s.truth(t)
	if res.Addresses != len(gt.Addresses) {
		t.Errorf("submit added %d addresses, ground truth has %d", res.Addresses, len(gt.Addresses))
	}
	// No worker ran: the report lists every address of the run as pending.
	got := make(map[string]bool)
	for _, r := range jsonReport(t, env, dir, res.RunID) {
		got[r.Address] = true
	}
	missing := 0
	for _, a := range gt.Addresses {
		if !got[a.Address] {
			missing++
		}
		delete(got, a.Address)
	}
	if missing > 0 || len(got) > 0 {
		t.Errorf("run vs ground truth: %d missing, %d extra", missing, len(got))
	}
	st := s.stats(t)
	if len(st.UserPages) < 50 {
		t.Errorf("only %d users pages served; want ≥ 50 (999 per page)", len(st.UserPages))
	}
	for page, n := range st.UserPages {
		if n != 1 {
			t.Errorf("users page %q served %d times", page, n)
		}
	}
	// 429s happened: more Graph requests than pages, domains and token.
	if st.GraphRequests <= int64(len(st.UserPages))+1 {
		t.Errorf("graph requests %d for %d pages: the throttle never fired", st.GraphRequests, len(st.UserPages))
	}
}

// TestSubmitKilledMidEnumerationResumes: submit is SIGKILLed while it reads
// users; 'submit --run-id RUN' with the same options finishes the run, and
// workers check every address of the tenant exactly once.
func TestSubmitKilledMidEnumerationResumes(t *testing.T) {
	t.Parallel() // a Redis database, simulator and workers of its own
	dir := t.TempDir()
	redisURL := newRedis(t)
	// Every 2nd users page answers 429 with Retry-After: 1, so reading the
	// tenant takes seconds: time enough to kill submit part-way.
	s := startSim(t, dir, "--users", "3000", "--seed", "8", "--graph-throttle-every", "2")
	env := s.env(redisURL)
	startWorker(t, dir, "worker1", s, redisURL, "--concurrency", "16", "--tenant-rate", "5000", "--adaptive=false")
	args := []string{"submit", "--tenant-id", s.TenantID, "--client-id", clientID,
		"--graph-url", s.GraphURL, "--authority-host", s.Authority}

	cmd := exec.Command(filepath.Join(binaries(t), "enqueue"), args...)
	cmd.Env, cmd.Stderr = env, logFile(t, dir, "submit1.log")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	run := ""
	deadline := time.Now().Add(60 * time.Second)
	for run == "" {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the run never had a batch while submit was enumerating")
		}
		var views []struct {
			RunID   string `json:"run_id"`
			State   string `json:"state"`
			Batches int64  `json:"batches"`
		}
		_ = json.Unmarshal(enqueue(t, env, "runs", "-o", "json"), &views)
		if len(views) == 1 && views[0].State == "enumerating" && views[0].Batches > 0 {
			run = views[0].RunID
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if st := getStatus(t, env, run); st.State == "running" || st.State == "completed" {
		t.Fatalf("submit finished enumerating before the kill (state %s): the test proves nothing", st.State)
	}

	// The killed submit still holds the run's submit lease until it
	// expires (internal/submit refuses a second concurrent submit), so
	// the resume is retried as an operator would.
	for start := time.Now(); ; {
		_, errOut, err := enqueueErr(env, append(args, "--run-id", run)...)
		if err == nil {
			t.Logf("resumed %s after waiting %s for the dead submit's lease", run, time.Since(start).Round(time.Second))
			break
		}
		if !strings.Contains(string(errOut), "another submit is adding to this run") || time.Since(start) > 2*time.Minute {
			t.Fatalf("resume: %v\n%s", err, errOut)
		}
		time.Sleep(3 * time.Second)
	}
	final := waitDone(t, env, run, 3*time.Minute, nil)

	gt := s.truth(t)
	if final.AddressesTotal != int64(len(gt.Addresses)) || final.DeadLettered != 0 {
		t.Errorf("final status %+v, want %d addresses and no dead letters", final, len(gt.Addresses))
	}
	st := s.stats(t)
	for _, a := range gt.Addresses {
		if n := st.PerAddress[a.Address]; n != 1 {
			t.Errorf("%s checked %d times, want once", a.Address, n)
		}
	}
	if len(st.PerAddress) != len(gt.Addresses) {
		t.Errorf("realm saw %d distinct addresses, ground truth has %d", len(st.PerAddress), len(gt.Addresses))
	}
}

// TestSubmitWithOtherMethods drives the enqueue binary with certificate
// (a PEM file) and device-code sign-in, and checks that
// Graph's own 400 text reaches the operator for a malformed filter, and that
// an advanced filter works without --advanced-query.
func TestSubmitWithOtherMethods(t *testing.T) {
	t.Parallel() // a Redis database, simulator and workers of its own
	dir := t.TempDir()
	redisURL := newRedis(t)
	certFile := filepath.Join(dir, "app.pem")
	if err := os.WriteFile(certFile, testpki.New(t, "msaudit-e2e").PEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startSim(t, dir, "--users", "300", "--seed", "4", "--client-certificate-file", certFile)
	env := s.env(redisURL)
	base := []string{"submit", "--tenant-id", s.TenantID, "--client-id", clientID, "--graph-url", s.GraphURL,
		"--authority-host", s.Authority, "--dry-run", "-o", "json"}
	want := len(s.truth(t).Addresses)
	for _, c := range []struct {
		name   string
		args   []string
		stderr string
	}{
		{"certificate", []string{"--certificate-file", certFile}, `"because": "--certificate-file was given"`},
		{"device code", []string{"--auth", "device-code"}, "/devicelogin"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, err := enqueueErr(env, append(append([]string{}, base...), c.args...)...)
			if err != nil {
				t.Fatalf("submit: %v\n%s", err, errOut)
			}
			var res struct {
				Addresses int `json:"addresses"`
			}
			if err := json.Unmarshal(out, &res); err != nil || res.Addresses != want {
				t.Errorf("dry run: %s (%v), want %d addresses", out, err, want)
			}
			if !strings.Contains(string(errOut), c.stderr) {
				t.Errorf("stderr lacks %q:\n%s", c.stderr, errOut)
			}
		})
	}
	t.Run("malformed filter", func(t *testing.T) {
		_, errOut, err := enqueueErr(env, append(append([]string{}, base...), "--filter", "startsWith(displayName,")...)
		if err == nil || !strings.Contains(string(errOut), "graph 400 BadRequest: Invalid filter clause") {
			t.Fatalf("exit %v, want Graph's message:\n%s", err, errOut)
		}
	})
	t.Run("advanced filter detected", func(t *testing.T) {
		out, errOut, err := enqueueErr(env, append(append([]string{}, base...), "--filter", "endsWith(userPrincipalName,'@contoso.com')")...)
		if err != nil || !strings.Contains(string(errOut), "advanced query mode") {
			t.Fatalf("submit: %v\n%s", err, errOut)
		}
		var res struct {
			Users int `json:"users"`
		}
		if json.Unmarshal(out, &res) != nil || res.Users == 0 {
			t.Errorf("advanced filter matched no user: %s", out)
		}
	})
	if keys := redisKeys(t, redisURL); len(keys) != 0 {
		t.Errorf("dry runs wrote to redis: %v", keys)
	}
}

// TestGraphOutageThenResume: Graph fails permanently (500) part-way through
// the users; submit stops with Graph's error and the resume command, the run
// is incomplete, and once Graph is back 'submit --run-id RUN' finishes it
// with no address checked twice.
func TestGraphOutageThenResume(t *testing.T) {
	t.Parallel() // a Redis database, simulator and workers of its own
	dir := t.TempDir()
	redisURL := newRedis(t)
	s := startSim(t, dir, "--users", "3000", "--seed", "9", "--graph-fail-after-pages", "2")
	env := s.env(redisURL)
	startWorker(t, dir, "worker1", s, redisURL, "--concurrency", "16", "--tenant-rate", "5000", "--adaptive=false")
	args := []string{"submit", "--tenant-id", s.TenantID, "--client-id", clientID,
		"--graph-url", s.GraphURL, "--authority-host", s.Authority}
	began := time.Now()
	_, errOut, err := enqueueErr(env, args...)
	if err == nil {
		t.Fatal("submit succeeded through a Graph outage")
	}
	t.Logf("failed submit took %s", time.Since(began).Round(time.Millisecond))
	for _, w := range []string{"graph 500 UnknownError", "is incomplete", "resume with --run-id"} {
		if !strings.Contains(string(errOut), w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut)
		}
	}
	var views []struct {
		RunID string `json:"run_id"`
		State string `json:"state"`
	}
	if err := json.Unmarshal(enqueue(t, env, "runs", "-o", "json"), &views); err != nil || len(views) != 1 {
		t.Fatalf("runs: %v %v", views, err)
	}
	run := views[0].RunID
	if views[0].State != "incomplete" {
		t.Errorf("state after the outage = %s, want incomplete", views[0].State)
	}

	s.setGraphOutage(t, 0)
	began = time.Now()
	enqueue(t, env, append(args, "--run-id", run)...)
	t.Logf("resume took %s", time.Since(began).Round(time.Millisecond))
	final := waitDone(t, env, run, 3*time.Minute, nil)
	t.Logf("checks done %s after the resume began", time.Since(began).Round(time.Millisecond))
	gt := s.truth(t)
	if final.AddressesTotal != int64(len(gt.Addresses)) || final.DeadLettered != 0 {
		t.Errorf("final status %+v, want %d addresses and no dead letters", final, len(gt.Addresses))
	}
	st := s.stats(t)
	for _, a := range gt.Addresses {
		if n := st.PerAddress[a.Address]; n != 1 {
			t.Errorf("%s checked %d times, want once", a.Address, n)
		}
	}
}

func (s *sim) setGraphOutage(t *testing.T, failAfter int) {
	t.Helper()
	ca, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest(http.MethodPut, s.URL+"/_sim/graph", strings.NewReader(fmt.Sprintf(`{"fail_after_pages":%d}`, failAfter)))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /_sim/graph: %d", resp.StatusCode)
	}
}
