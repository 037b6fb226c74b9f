package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/msaudit/msaudit/internal/addresses"
	"github.com/msaudit/msaudit/tasks"
)

// admin talks to the simulator's /_sim endpoints over its own CA.
func (s *sim) admin(t testing.TB) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
}

func (s *sim) perAddress(t testing.TB) map[string]int64 {
	t.Helper()
	resp, err := s.admin(t).Get(s.URL + "/_sim/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		PerAddress map[string]int64 `json:"per_address"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.PerAddress
}

// TestDeadLetterWorkflow: addresses the service keeps failing end
// dead-lettered with their errors and archived for the asynq tooling; the
// export lists exactly them and reads back as an address list; after the
// service recovers, requeue resolves them all; a second requeue checks
// nothing again.
func TestDeadLetterWorkflow(t *testing.T) {
	t.Parallel() // a Redis database, simulator and workers of its own
	dir := t.TempDir()
	redisURL := newRedis(t)
	// First run a simulator only to learn the ground truth, then pick the
	// addresses to fail and start the real one with them.
	gt := startSim(t, t.TempDir(), "--users", "300", "--seed", "11").truth(t)
	var failing []string
	for i := 0; i < len(gt.Addresses) && len(failing) < 7; i += 37 {
		failing = append(failing, gt.Addresses[i].Address)
	}
	sort.Strings(failing)
	failFile := filepath.Join(dir, "fail.txt")
	os.WriteFile(failFile, []byte(strings.Join(failing, "\n")+"\n"), 0o600)
	s := startSim(t, dir, "--users", "300", "--seed", "11", "--fail-addresses-file", failFile)
	env := s.env(redisURL)
	const maxAttempts = 4
	metricsAddr := freeAddr(t)
	startWorker(t, dir, "worker", s, redisURL, "--concurrency", "4", "--tenant-rate", "500", "--initial-rate", "200",
		"--max-attempts", fmt.Sprint(maxAttempts), "--backoff-base", "10ms", "--backoff-max", "50ms", "--metrics-addr", metricsAddr)

	run := strings.TrimSpace(string(enqueue(t, env, "submit", "--tenant-id", s.TenantID, "--client-id", clientID,
		"--graph-url", s.GraphURL, "--authority-host", s.Authority)))
	st := waitDone(t, env, run, 3*time.Minute, nil)
	if st.DeadLettered != int64(len(failing)) || st.Checked+st.DeadLettered != st.AddressesTotal {
		t.Fatalf("status %+v, want %d dead-lettered", st, len(failing))
	}

	// deadletters lists them with their last error.
	var listed []struct {
		Address  string `json:"address"`
		Attempts int    `json:"attempts"`
		Error    string `json:"error"`
	}
	json.Unmarshal(enqueue(t, env, "deadletters", run, "-o", "json"), &listed)
	if len(listed) != len(failing) {
		t.Fatalf("deadletters listed %d, want %d", len(listed), len(failing))
	}
	for i, d := range listed {
		if d.Address != failing[i] || d.Attempts != maxAttempts || !strings.Contains(d.Error, "HTTP 500") {
			t.Errorf("dead letter %+v, want %s after %d attempts with HTTP 500", d, failing[i], maxAttempts)
		}
	}

	// The worker's metrics count them, and its probes answer.
	metrics := httpGet(t, "http://"+metricsAddr+"/metrics")
	for _, want := range []string{
		fmt.Sprintf("msaudit_dead_letters_total %d", len(failing)),
		fmt.Sprintf(`msaudit_checks_total{outcome="absent"} %d`, st.Absent),
		`msaudit_checks_total{outcome="error"}`, "msaudit_tenant_rate{tenant=", "msaudit_limiter_wait_seconds_count",
		"msaudit_batch_retries_total", "msaudit_inflight_batches 0",
		// msaudit_throttle_signals_total{tenant} has no sample here (no
		// throttling), and a label vector without samples is not exposed.
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(metrics, failing[0]) {
		t.Error("/metrics exposes an address")
	}
	for _, probe := range []string{"/healthz", "/readyz"} {
		if body := httpGet(t, "http://"+metricsAddr+probe); body != "ok\n" {
			t.Errorf("%s = %q", probe, body)
		}
	}

	// The export is exactly them, and reads back as an address list.
	export := filepath.Join(dir, "failed.txt")
	enqueue(t, env, "deadletters", run, "--export", export)
	f, _ := os.Open(export)
	back, err := addresses.ReadList(f)
	f.Close()
	if err != nil || strings.Join(back, ",") != strings.Join(failing, ",") {
		t.Fatalf("export reads back as %v (%v), want %v", back, err, failing)
	}

	// The batches are visible as archived to the asynq tooling.
	opts, _ := redis.ParseURL(redisURL)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	archived := 0
	for i := 0; i < tasks.Lanes; i++ {
		if q, err := insp.GetQueueInfo(tasks.LaneQueue(i)); err == nil {
			archived += q.Archived
		}
	}
	if archived == 0 {
		t.Error("no archived task for asynq's tooling")
	}

	// The service recovers; requeue resolves every dead letter.
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPut, s.URL+"/_sim/realm", bytes.NewReader([]byte(`{"fail_addresses":[]}`)))
	if resp, err := s.admin(t).Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("fix simulator: %v %v", resp, err)
	}
	_, errOut, err := enqueueErr(env, "requeue", run)
	if err != nil || !strings.Contains(string(errOut), fmt.Sprintf("requeued %d", len(failing))) {
		t.Fatalf("requeue: %v\n%s", err, errOut)
	}
	st = waitDone(t, env, run, 2*time.Minute, nil)
	if st.DeadLettered != 0 || st.Checked != st.AddressesTotal {
		t.Fatalf("after requeue: %+v", st)
	}
	before := s.perAddress(t)
	for _, a := range failing {
		if before[a] != maxAttempts+1 {
			t.Errorf("%s requested %d times, want %d failures + 1 answer", a, before[a], maxAttempts)
		}
	}

	// A second requeue finds nothing and checks nothing.
	_, errOut, err = enqueueErr(env, "requeue", run)
	if err != nil || !strings.Contains(string(errOut), "requeued 0") {
		t.Fatalf("second requeue: %v\n%s", err, errOut)
	}
	time.Sleep(2 * time.Second) // give a wrongly queued batch time to be checked
	after := s.perAddress(t)
	for a, n := range after {
		if before[a] != n {
			t.Errorf("%s checked again after the second requeue (%d -> %d)", a, before[a], n)
		}
	}
	if st := getStatus(t, env, run); st.State != "completed" {
		t.Errorf("state after second requeue: %s", st.State)
	}
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func httpGet(t testing.TB, url string) string {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b)
}
