package e2e

import (
	"encoding/json"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/msaudit/msaudit/internal/redistest"
)

// privateRedis starts a redis-server of the test's own, stopped at its end.
func privateRedis(t testing.TB, config ...string) *redistest.Server {
	t.Helper()
	srv, err := redistest.Start(config...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestSIGTERMDrainsAtOnce: a worker whose batches are paced by the rate
// limiter is sent SIGTERM. It must turn not ready at once and exit 0 within
// about a second of its requests in flight, far below its shutdown timeout,
// handing its batches back with every answer recorded: after a second
// worker finishes the run, no address was asked twice.
func TestSIGTERMDrainsAtOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	redisURL := privateRedis(t).URL // parallel: not the shared, flushed one
	s := startSim(t, dir, "--users", "150", "--seed", "11", "--realm-rate", "1000")
	env := s.env(redisURL)
	// At 10 requests/s a batch of 50 takes seconds more than the test allows
	// for the exit, so only a drain that ends the waits can meet it.
	pace := []string{"--concurrency", "8", "--tenant-rate", "10", "--adaptive=false", "--shutdown-timeout", "20s"}
	addr := freePort(t)
	w1 := startWorker(t, dir, "worker1", s, redisURL, append(pace, "--metrics-addr", addr)...)
	readyz := func() int {
		resp, err := (&http.Client{Timeout: 200 * time.Millisecond}).Get("http://" + addr + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for start := time.Now(); readyz() != http.StatusOK; time.Sleep(50 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("worker1 never became ready")
		}
	}

	var sub struct {
		RunID string `json:"run_id"`
	}
	out := enqueue(t, env, "submit", "--tenant-id", s.TenantID, "--client-id", clientID,
		"--graph-url", s.GraphURL, "--authority-host", s.Authority, "-o", "json")
	if err := json.Unmarshal(out, &sub); err != nil {
		t.Fatalf("submit output %q: %v", out, err)
	}
	// Answers are recorded when a batch's pass ends, so watch the service.
	for start := time.Now(); len(s.perAddress(t)) < 40; time.Sleep(100 * time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			t.Fatal("worker1 checked nothing")
		}
	}

	// The autoscaler's figure: one open run paced at 10/s needs one worker.
	resp, err := http.Get("http://" + addr + "/scaler")
	if err != nil {
		t.Fatal(err)
	}
	var scale struct {
		Desired  int `json:"desired_workers"`
		OpenRuns int `json:"open_runs"`
	}
	err = json.NewDecoder(resp.Body).Decode(&scale)
	resp.Body.Close()
	if err != nil || scale.Desired != 1 || scale.OpenRuns != 1 {
		t.Errorf("/scaler: %+v, %v; want 1 worker for 1 open run", scale, err)
	}

	exited := make(chan error, 1)
	sent := time.Now()
	if err := w1.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go func() { exited <- w1.cmd.Wait() }()
	notReady := time.Duration(-1)
	for time.Since(sent) < time.Second {
		if readyz() != http.StatusOK {
			notReady = time.Since(sent)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var exitErr error
	select {
	case exitErr = <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("worker1 still running 10s after SIGTERM")
	}
	took := time.Since(sent)
	w1.cmd = nil // reaped: nothing for cleanup to kill
	t.Logf("SIGTERM: not ready after %s, exited after %s (%v)", notReady, took.Round(time.Millisecond), exitErr)
	if notReady < 0 {
		t.Error("/readyz still 200 one second after SIGTERM")
	}
	if exitErr != nil {
		t.Errorf("worker1 exit: %v, want status 0", exitErr)
	}
	if took > 3*time.Second {
		t.Errorf("worker1 took %s to exit (shutdown timeout 20s): want <= 3s", took)
	}
	st := getStatus(t, env, sub.RunID)
	if st.State == "completed" {
		t.Fatal("the run completed before the SIGTERM: the test proves nothing")
	}

	startWorker(t, dir, "worker2", s, redisURL, "--concurrency", "8", "--tenant-rate", "300", "--adaptive=false")
	final := waitDone(t, env, sub.RunID, 3*time.Minute, nil)
	gt := s.truth(t)
	if final.AddressesTotal != int64(len(gt.Addresses)) || final.DeadLettered != 0 {
		t.Fatalf("final status %+v, ground truth %d addresses", final, len(gt.Addresses))
	}
	asked := s.perAddress(t)
	twice := 0
	for _, a := range gt.Addresses {
		if n := asked[a.Address]; n != 1 {
			twice++
			if twice <= 5 {
				t.Errorf("%s asked %d times", a.Address, n)
			}
		}
	}
	if twice > 0 {
		t.Errorf("%d of %d addresses not asked exactly once", twice, len(gt.Addresses))
	}
}
