package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msaudit/msaudit/internal/redistest"
)

const (
	clientID = "0a1b2c3d-1111-2222-3333-444455556666"
	secret   = "e2e-secret-value-never-logged"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds enqueue, worker and tenantsim once per test binary.
func binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "msaudit-e2e-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "github.com/msaudit/msaudit/cmd/enqueue",
			"github.com/msaudit/msaudit/cmd/worker", "github.com/msaudit/msaudit/cmd/tenantsim")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// sim is a running tenantsim process.
type sim struct {
	URL       string `json:"url"`
	GraphURL  string `json:"graph_url"`
	Authority string `json:"authority_host"`
	RealmURL  string `json:"realm_url"`
	TenantID  string `json:"tenant_id"`
	CAFile    string `json:"ca_file"`
	truthFile string
}

type truth struct {
	Addresses []struct {
		Address         string `json:"address"`
		ConsumerAccount bool   `json:"consumer_account"`
		Owners          []struct {
			UserID string `json:"user_id"`
			UPN    string `json:"upn"`
		} `json:"owners"`
	} `json:"addresses"`
}

func startSim(t testing.TB, dir string, args ...string) *sim {
	t.Helper()
	s := &sim{truthFile: filepath.Join(dir, "truth.json")}
	args = append([]string{"--listen", "127.0.0.1:0", "--client-id", clientID,
		"--ca-out", filepath.Join(dir, "ca.pem"), "--ground-truth-out", s.truthFile}, args...)
	cmd := exec.Command(filepath.Join(binaries(t), "tenantsim"), args...)
	cmd.Env = append(os.Environ(), "TENANTSIM_CLIENT_SECRET="+secret)
	cmd.Stderr = logFile(t, dir, "tenantsim.log")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadBytes('\n')
	if err != nil {
		t.Fatalf("tenantsim did not start: %v (see %s)", err, dir)
	}
	if err := json.Unmarshal(line, s); err != nil {
		t.Fatalf("tenantsim ready line %q: %v", line, err)
	}
	return s
}

func (s *sim) truth(t testing.TB) truth {
	t.Helper()
	b, err := os.ReadFile(s.truthFile)
	if err != nil {
		t.Fatal(err)
	}
	var gt truth
	if err := json.Unmarshal(b, &gt); err != nil {
		t.Fatal(err)
	}
	return gt
}

// env is the environment of the product's processes: trust the simulator's
// CA through SSL_CERT_FILE, as an operator would.
func (s *sim) env(redisURL string) []string {
	return append(os.Environ(), "SSL_CERT_FILE="+s.CAFile, "AZURE_CLIENT_SECRET="+secret, "REDIS_URL="+redisURL)
}

func logFile(t testing.TB, dir, name string) *os.File {
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// worker is a worker process that can be killed and restarted.
type worker struct {
	t    testing.TB
	args []string
	env  []string
	log  *os.File
	cmd  *exec.Cmd
}

func startWorker(t testing.TB, dir, name string, s *sim, redisURL string, extra ...string) *worker {
	args := append([]string{"--realm-url", s.RealmURL, "--metrics-addr", "", "--log-format", "json"}, extra...)
	w := &worker{t: t, args: args, env: s.env(redisURL), log: logFile(t, dir, name+".log")}
	w.start()
	t.Cleanup(func() { w.kill() })
	return w
}

func (w *worker) start() {
	w.cmd = exec.Command(filepath.Join(binaries(w.t), "worker"), w.args...)
	w.cmd.Env, w.cmd.Stdout, w.cmd.Stderr = w.env, w.log, w.log
	if err := w.cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
}

func (w *worker) kill() {
	if w.cmd != nil && w.cmd.Process != nil {
		w.cmd.Process.Kill()
		w.cmd.Wait()
	}
}

// enqueue runs the CLI and returns its stdout; it fails the test on error.
func enqueue(t testing.TB, env []string, args ...string) []byte {
	t.Helper()
	out, errOut, err := enqueueErr(env, args...)
	if err != nil {
		t.Fatalf("enqueue %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

func enqueueErr(env []string, args ...string) ([]byte, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "enqueue"), args...)
	var out, errOut bytes.Buffer
	cmd.Env, cmd.Stdout, cmd.Stderr = env, &out, &errOut
	err := cmd.Run()
	return out.Bytes(), errOut.Bytes(), err
}

type status struct {
	State          string `json:"state"`
	AddressesTotal int64  `json:"addresses_total"`
	Checked        int64  `json:"checked"`
	Present        int64  `json:"present"`
	Absent         int64  `json:"absent"`
	FailedPending  int64  `json:"failed_pending"`
	DeadLettered   int64  `json:"dead_lettered"`
}

func getStatus(t testing.TB, env []string, run string) status {
	t.Helper()
	var st status
	if err := json.Unmarshal(enqueue(t, env, "status", run, "-o", "json"), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// waitDone polls status until the run completes; onProgress sees each status.
func waitDone(t testing.TB, env []string, run string, limit time.Duration, onProgress func(status)) status {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		st := getStatus(t, env, run)
		if st.State == "completed" {
			return st
		}
		if onProgress != nil {
			onProgress(st)
		}
		if time.Now().After(deadline) {
			t.Fatalf("run not completed after %s: %+v", limit, st)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

type reportRow struct {
	Address     string `json:"address"`
	UserID      string `json:"user_id"`
	UPN         string `json:"upn"`
	DisplayName string `json:"display_name"`
	Mail        string `json:"mail"`
	Status      string `json:"status"`
	MSRequestID string `json:"ms_request_id"`
	CheckedAt   string `json:"checked_at"`
	Attempts    int    `json:"attempts"`
	Error       string `json:"error"`
	ReusedFrom  string `json:"reused_from"`
	RunID       string `json:"run_id"`
	TenantID    string `json:"tenant_id"`
}

func jsonReport(t testing.TB, env []string, dir, run string) []reportRow {
	t.Helper()
	path := filepath.Join(dir, "report.json")
	enqueue(t, env, "report", run, "--format", "json", "--out", path)
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

func newRedis(t testing.TB) string { return redistest.URL(t) }
