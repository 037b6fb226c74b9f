package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/msaudit/msaudit/internal/redistest"
	"github.com/msaudit/msaudit/internal/worker"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// execute runs the worker command with args and environment e, and returns
// the options it parsed and its error.
func execute(t *testing.T, e map[string]string, args ...string) (*options, error) {
	t.Helper()
	o := &options{Config: worker.DefaultConfig()}
	cmd := newCommand(o, env(e))
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return o, cmd.ExecuteContext(ctx)
}

func TestEnvironmentAndFlags(t *testing.T) {
	t.Parallel()
	o, err := execute(t, map[string]string{
		"MSAUDIT_CONCURRENCY": "3", "MSAUDIT_TENANT_RATE": "7.5", "MSAUDIT_ADAPTIVE": "false",
		"MSAUDIT_SHUTDOWN_TIMEOUT": "4s", "REDIS_URL": "redis://127.0.0.1:1/0",
	}, "--tenant-rate", "2", "--metrics-addr", "")
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("want the unreachable Redis of REDIS_URL, got %v", err)
	}
	if o.Concurrency != 3 || o.Limits.TenantRate != 2 || o.Limits.Adaptive || o.ShutdownTimeout != 4*time.Second {
		t.Errorf("concurrency %d, tenant rate %g (flag wins), adaptive %v, shutdown %s",
			o.Concurrency, o.Limits.TenantRate, o.Limits.Adaptive, o.ShutdownTimeout)
	}
}

func TestBadSettingsAreRefusedBeforeRedis(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"--metrics-addr", "9090"}, `--metrics-addr "9090": want host:port`},
		{nil, []string{"--concurrency", "0"}, "concurrency must be >= 1"},
		{nil, []string{"--backoff-base", "1m", "--backoff-max", "1s"}, "backoff max"},
		{map[string]string{"MSAUDIT_MAX_ATTEMPTS": "many"}, nil, "MSAUDIT_MAX_ATTEMPTS"},
		{nil, []string{"extra"}, "unknown command"},
		{nil, []string{"--stall-after", "-1s"}, "stall time must be >= 0"},
		{nil, []string{"--webhook-url", "hooks.example/T0/token"}, "--webhook-url: the webhook URL is not an http or https URL"},
		{nil, []string{"--webhook-url", "https://hooks.example/T0/token", "--webhook-url-file", "/dev/null"}, "give one"},
		{nil, []string{"--webhook-secret-file", "/dev/null"}, "only with --webhook-url"},
		{nil, []string{"--webhook-url-file", "/nonexistent/url"}, "--webhook-url-file: open /nonexistent/url"},
		{nil, []string{"--webhook-url", "https://hooks.example/T0/token", "--webhook-secret-file", "/dev/null"}, "--webhook-secret-file /dev/null: empty"},
	} {
		_, err := execute(t, c.env, append(c.args, "--redis-url", "redis://127.0.0.1:1/0")...)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "token") {
			t.Errorf("%v %v: error %v, want one naming %q before any connection", c.env, c.args, err, c.want)
		}
	}
}

// TestProbesAndScaler runs the worker against a real Redis and reads its
// endpoints as Kubernetes and KEDA do; cancelling the context (SIGTERM in
// main) stops it cleanly.
func TestProbesAndScaler(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	o := &options{Config: worker.DefaultConfig()}
	o.Redis.URL, o.MetricsAddr, o.LogLevel, o.LogFormat = redistest.URL(t), addr, "error", "json"
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- run(ctx, o) }()

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		if code, _ := get("/readyz"); code == http.StatusOK {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("never ready")
		}
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz %d", code)
	}
	code, body := get("/scaler")
	var sc map[string]int
	if code != http.StatusOK || json.Unmarshal([]byte(body), &sc) != nil || sc["desired_workers"] != 0 {
		t.Errorf("/scaler %d %s: want desired_workers 0 with no run open", code, body)
	}
	if _, body := get("/metrics"); !strings.Contains(body, "msaudit_scaler_desired_workers 0") {
		t.Errorf("/metrics lacks msaudit_scaler_desired_workers")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the worker did not stop")
	}
}

// TestProbesDuringACut: with the network to Redis cut (packets stop, no
// connection closes), /readyz turns 503 naming the fault, /scaler fails and
// /metrics still answers, none of them waiting on Redis; after the cut
// /readyz is 200 again. The client gives up after 3 s, below go-redis' 5 s
// read timeout that a handler calling Redis would wait for.
func TestProbesDuringACut(t *testing.T) {
	t.Parallel()
	srv := redistest.StartT(t)
	relay := redistest.NewRelay(t, srv.Addr)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	o := &options{Config: worker.DefaultConfig()}
	o.Redis.URL, o.MetricsAddr, o.LogLevel, o.LogFormat = relay.URL(0), addr, "error", "json"
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- run(ctx, o) }()
	defer func() {
		relay.Heal() // if the test failed during the cut: Shutdown writes to Redis
		cancel()
		<-done
	}()

	client := &http.Client{Timeout: 3 * time.Second}
	get := func(path string) (int, string, time.Duration) {
		start := time.Now()
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error(), time.Since(start)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b)), time.Since(start)
	}
	waitFor := func(want int) string {
		t.Helper()
		for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
			code, body, _ := get("/readyz")
			if code == want {
				return body
			}
			if time.Since(start) > 20*time.Second {
				t.Fatalf("/readyz never %d: last %d %s", want, code, body)
			}
		}
	}
	waitFor(http.StatusOK)

	relay.Cut()
	if body := waitFor(http.StatusServiceUnavailable); body != "redis unreachable" {
		t.Errorf("/readyz during the cut: %q, want \"redis unreachable\"", body)
	}
	for _, path := range []string{"/readyz", "/scaler", "/metrics"} {
		code, body, took := get(path)
		t.Logf("%s during the cut: %d in %s", path, code, took)
		switch {
		case code == 0:
			t.Errorf("%s during the cut: %s", path, body)
		case path != "/metrics" && code != http.StatusServiceUnavailable:
			t.Errorf("%s during the cut: %d, want 503", path, code)
		case path == "/metrics" && !strings.Contains(body, "msaudit_redis_up 0"):
			t.Errorf("/metrics during the cut lacks msaudit_redis_up 0")
		}
	}
	relay.Heal()
	waitFor(http.StatusOK)
}
