package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// alertMetrics lists the worker metrics the alert rules use, one a line, as
// deploy's own tests keep it in step with the rules.
const alertMetrics = "../../deploy/components/alerts/metrics.txt"

// exported returns the metric names of a Prometheus text exposition, a
// histogram's and a summary's series included, and the samples' text.
func exported(t *testing.T, body []byte) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		names[f[2]] = true
		switch f[3] {
		case "histogram":
			names[f[2]+"_bucket"], names[f[2]+"_sum"], names[f[2]+"_count"] = true, true, true
		case "summary":
			names[f[2]+"_sum"], names[f[2]+"_count"] = true, true
		}
	}
	return names
}

// TestAlertRulesUseExportedMetrics scrapes a real worker after a run with
// throttling and dead letters, and fails if an alert rule uses a worker
// metric the worker does not export.
func TestAlertRulesUseExportedMetrics(t *testing.T) {
	t.Parallel()
	want, err := os.ReadFile(alertMetrics)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	redisURL := newRedis(t)
	// A realm that sustains 20 requests/s for a worker sending 60, and fails
	// a tenth of its answers for a worker that tries each address once.
	s := startSim(t, dir, "--users", "150", "--seed", "13", "--realm-rate", "20", "--realm-penalty", "200ms", "--fault-5xx", "0.1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	startWorker(t, dir, "worker", s, redisURL, "--metrics-addr", addr, "--tenant-rate", "60", "--initial-rate", "60",
		"--adaptive=false", "--max-attempts", "1", "--stall-after", "1h")
	env := s.env(redisURL)
	run := submitRun(t, s, env, graphArgs(s)...)
	st := waitDone(t, env, run, 3*time.Minute, nil)
	if st.DeadLettered == 0 {
		t.Fatalf("no dead letter: %+v", st)
	}

	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: HTTP %d, %v", resp.StatusCode, err)
	}
	have := exported(t, body)
	for _, sample := range []string{`msaudit_checks_total{outcome="throttled"}`, "msaudit_dead_letters_total "} {
		if !bytes.Contains(body, []byte(sample)) {
			t.Errorf("the run left no %s sample: the test would not prove the rules' metrics exist", sample)
		}
	}
	var missing []string
	n := 0
	for _, name := range strings.Fields(string(want)) {
		n++
		if !have[name] {
			missing = append(missing, name)
		}
	}
	if n == 0 {
		t.Fatalf("%s lists no metric", alertMetrics)
	}
	if len(missing) > 0 {
		t.Errorf("alert rules use metrics the worker does not export: %v", missing)
	}
	t.Logf("%d metrics of the alert rules, all exported; %s", n, fmt.Sprint(st))
}
