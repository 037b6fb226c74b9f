package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msaudit/msaudit/internal/cmdrun"
	"github.com/msaudit/msaudit/internal/redistest"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/runstore/runstoretest"
	"github.com/msaudit/msaudit/internal/runview"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// firstLine is a buffer that says when its first line is written.
type firstLine struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	once sync.Once
	seen chan struct{}
}

func (w *firstLine) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if bytes.Contains(w.buf.Bytes(), []byte("\n")) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

func (w *firstLine) lines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Split(strings.TrimSpace(w.buf.String()), "\n")
}

// statusWait runs enqueue status RUN --wait with args against the Redis of
// url, and returns its exit status and stderr. Once status has shown the
// run (its first line), then(), if not nil, changes it.
func statusWait(t *testing.T, url, id string, then func(), args ...string) (int, string, []string) {
	t.Helper()
	stdout := &firstLine{seen: make(chan struct{})}
	var stderr bytes.Buffer
	cmd := newRootCommand(stdout, &stderr, func(string) (string, bool) { return "", false })
	cmd.SetArgs(append([]string{"status", id, "--wait", "--interval", "100ms", "-o", "json", "--redis-url", url}, args...))
	done := make(chan int)
	go func() { done <- cmdrun.Main("enqueue", cmd, &stderr) }()
	if then != nil {
		select {
		case <-stdout.seen:
			then()
		case code := <-done:
			t.Fatalf("status ended (exit %d) before the run did: %s", code, stderr.String())
		}
	}
	select {
	case code := <-done:
		return code, stderr.String(), stdout.lines()
	case <-time.After(time.Minute):
		t.Fatal("status --wait still waiting a minute after the run ended")
		return 0, "", nil
	}
}

// TestStatusWaitExitCodes: status --wait waits for the run to end, and its
// exit status says how it ended.
func TestStatusWaitExitCodes(t *testing.T) {
	t.Parallel()
	record := func(t *testing.T, f *runstoretest.Fixture, second runstore.AddressStatus) func() {
		return func() {
			// At one attempt at most, a failed attempt dead-letters.
			outs := []runstore.Outcome{{Address: runstoretest.Address(0), Status: runstore.StatePresent}, {Address: runstoretest.Address(1), Status: second}}
			if _, err := f.Store.Record(t.Context(), f.ID, 1, time.Now(), outs); err != nil {
				t.Error(err)
			}
		}
	}
	for _, tc := range []struct {
		name   string
		end    func(t *testing.T, f *runstoretest.Fixture) func()
		code   int
		state  string
		stderr string
	}{
		{"every address answered", func(t *testing.T, f *runstoretest.Fixture) func() { return record(t, f, runstore.StateAbsent) },
			0, "completed", ""},
		{"dead letters", func(t *testing.T, f *runstoretest.Fixture) func() { return record(t, f, "") },
			exitDeadLetters, "completed", "completed with 1 dead-lettered addresses; enqueue deadletters"},
		{"cancelled", func(t *testing.T, f *runstoretest.Fixture) func() {
			return func() {
				if err := f.Store.Cancel(t.Context(), f.ID); err != nil {
					t.Error(err)
				}
			}
		}, exitCancelled, "cancelled", "was cancelled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := redistest.URL(t)
			f := runstoretest.NewRun(t, runstore.New(redisClient(t, url)), runstoretest.Run{N: 2})
			code, stderr, lines := statusWait(t, url, f.ID, tc.end(t, f), "--watch")
			if code != tc.code || !strings.Contains(stderr, tc.stderr) || tc.stderr == "" && stderr != "" {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.stderr)
			}
			var first, last runview.Status
			if len(lines) < 2 || json.Unmarshal([]byte(lines[0]), &first) != nil || json.Unmarshal([]byte(lines[len(lines)-1]), &last) != nil ||
				first.State != runstore.StateRunning || string(last.State) != tc.state {
				t.Errorf("--watch lines %q: want the run running, then %s", lines, tc.state)
			}
		})
	}
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		url := redistest.URL(t)
		f := runstoretest.NewRun(t, runstore.New(redisClient(t, url)), runstoretest.Run{N: 2})
		start := time.Now()
		code, stderr, lines := statusWait(t, url, f.ID, nil, "--timeout", "300ms")
		if code != exitTimeout || !strings.Contains(stderr, "is still running after 300ms; it goes on") {
			t.Errorf("exit %d, stderr %q; want %d and the timeout", code, stderr, exitTimeout)
		}
		if took := time.Since(start); took < 300*time.Millisecond {
			t.Errorf("gave up after %s, before the timeout", took)
		}
		// Without --watch, only the status it ended on.
		var last runview.Status
		if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &last) != nil || last.State != runstore.StateRunning {
			t.Errorf("stdout %q: want the one last status, running", lines)
		}
	})
}

// TestStatusTimeoutWantsWait: --timeout means nothing without --wait.
func TestStatusTimeoutWantsWait(t *testing.T) {
	t.Parallel()
	for _, o := range []statusOptions{{Output: "text", Interval: time.Second, Timeout: time.Minute}, {Output: "text", Interval: time.Second, Wait: true, Timeout: -time.Second}} {
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--timeout") {
			t.Errorf("Validate(%+v) = %v, want a --timeout error", o, err)
		}
	}
}

// redisClient is a client of url's database, closed when the test ends.
func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}
