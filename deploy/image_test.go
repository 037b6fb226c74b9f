package deploy

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// The stamp the image test builds with; --version must print it back.
const (
	testVersion = "v0.0.0-test"
	testCommit  = "abcdef"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds the worker and enqueue commands exactly as the
// Dockerfile does: deploy/gobuild.sh run from the repository root (the
// main module; it shares this machine's build cache, so only the first run
// is slow).
func binaries(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the image test compiles the main module")
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "msaudit-image-test-")
		if buildErr != nil {
			return
		}
		root, _ := filepath.Abs("..")
		cmd := exec.Command("sh", "deploy/gobuild.sh", binDir, "./cmd/worker", "./cmd/enqueue")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "VERSION="+testVersion, "COMMIT="+testCommit)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("deploy/gobuild.sh: %v\n%s", err, out.String())
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// The images are distroless/static: no libc, no loader. A binary that
// needs either would not start in them.
func TestBinariesAreStaticAndStamped(t *testing.T) {
	dir := binaries(t)
	root, _ := filepath.Abs("..")
	for _, name := range []string{"worker", "enqueue"} {
		t.Run(name, func(t *testing.T) {
			bin := filepath.Join(dir, name)
			f, err := elf.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Error("has a PT_INTERP program header: dynamically linked")
				}
			}
			if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
				t.Errorf("DT_NEEDED %v (%v): needs shared libraries", libs, err)
			}
			if f.Section(".symtab") != nil {
				t.Error("has a symbol table: -ldflags -s did not apply")
			}

			bi, err := buildinfo.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			settings := map[string]string{}
			for _, s := range bi.Settings {
				settings[s.Key] = s.Value
			}
			if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
				t.Errorf("build settings %v: want CGO_ENABLED=0 and -trimpath", settings)
			}
			// Go leaves -ldflags out of the build info under -trimpath: the
			// stamp is checked through --version below, -s through .symtab.
			if name == "worker" {
				for _, dep := range bi.Deps {
					if strings.Contains(dep.Path, "msgraph-sdk-go") || strings.Contains(dep.Path, "azidentity") {
						t.Errorf("the worker links %s: the worker image must carry no Graph or credential code", dep.Path)
					}
				}
			}
			b, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(root+"/")) {
				t.Errorf("contains the build directory %s: -trimpath did not apply", root)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
			if err != nil {
				t.Fatalf("%s --version: %v\n%s", name, err, out)
			}
			for _, want := range []string{name, testVersion, testCommit} {
				if !strings.Contains(string(out), want) {
					t.Errorf("%s --version printed %q, which lacks %q", name, out, want)
				}
			}
		})
	}
}

// The worker binary, configured by the dev overlay's rendered ConfigMap
// (only the addresses changed to this machine's), honours what the
// manifests rely on: the probe paths, /scaler's answer, the metrics, and a
// SIGTERM exit well inside terminationGracePeriodSeconds.
func TestWorkerHonoursTheManifests(t *testing.T) {
	dir := binaries(t)
	redisServer, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not on PATH (apt-get install redis-server)")
	}
	objs := render(t, "overlays/dev")
	w := worker(t, objs)
	var cm *corev1.ConfigMap
	for _, from := range w.container.EnvFrom {
		cm = mustFind[corev1.ConfigMap](t, objs, from.ConfigMapRef.Name)
	}
	if cm == nil {
		t.Fatal("the worker has no ConfigMap")
	}

	redisPort := freePort(t)
	stopRedis := startRedis(t, redisServer, redisPort)
	defer func() { stopRedis() }()

	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range cm.Data {
		switch k {
		case "REDIS_URL":
			v = fmt.Sprintf("redis://127.0.0.1:%d/0", redisPort)
		case "MSAUDIT_METRICS_ADDR":
			v = metricsAddr
		}
		env = append(env, k+"="+v)
	}
	var logs bytes.Buffer
	wk := exec.Command(filepath.Join(dir, "worker"))
	wk.Env = env
	wk.Stdout, wk.Stderr = &logs, &logs
	if err := wk.Start(); err != nil {
		t.Fatal(err)
	}
	workerDone := make(chan error, 1)
	go func() { workerDone <- wk.Wait() }()
	defer func() {
		wk.Process.Kill()
		if t.Failed() {
			t.Logf("worker output:\n%s", logs.String())
		}
	}()

	base := "http://" + metricsAddr
	if !poll(10*time.Second, func() bool { return status(base+"/readyz") == 200 }) {
		t.Fatalf("/readyz never 200 (last %d)", status(base+"/readyz"))
	}
	if s := status(base + "/healthz"); s != 200 {
		t.Errorf("/healthz %d", s)
	}
	var scale map[string]any
	if err := getJSON(base+"/scaler", &scale); err != nil {
		t.Errorf("/scaler: %v", err)
	}
	for _, k := range []string{"desired_workers", "usable_slots", "open_runs", "outstanding_batches"} {
		if _, ok := scale[k]; !ok {
			t.Errorf("/scaler answer %v lacks %s (KEDA's valueLocation)", scale, k)
		}
	}
	if fmt.Sprint(scale["desired_workers"]) != "0" {
		t.Errorf("desired_workers %v with no run open, want 0 (KEDA would keep workers)", scale["desired_workers"])
	}
	metrics := body(base + "/metrics")
	for _, m := range []string{"msaudit_scaler_desired_workers", "msaudit_open_runs", "msaudit_outstanding_batches", "msaudit_inflight_batches"} {
		if !strings.Contains(metrics, "\n"+m) {
			t.Errorf("/metrics lacks %s (the dashboard's panels use it)", m)
		}
	}
	if strings.Contains(metrics, "\nasynq_") {
		t.Error("/metrics exports asynq's collector")
	}

	// Redis down: the pod must stay alive (liveness) but leave the Service
	// (readiness), so a Redis outage does not restart every worker.
	stopRedis()
	if !poll(15*time.Second, func() bool { return status(base+"/readyz") == 503 }) {
		t.Errorf("/readyz still %d with Redis down", status(base+"/readyz"))
	}
	if s := status(base + "/healthz"); s != 200 {
		t.Errorf("/healthz %d with Redis down: the kubelet would restart the worker", s)
	}

	// Redis back (a restart, with its AOF): the worker is ready again
	// without being restarted.
	stopRedis = startRedis(t, redisServer, redisPort)
	if !poll(30*time.Second, func() bool { return status(base+"/readyz") == 200 }) {
		t.Errorf("/readyz still %d after Redis came back", status(base+"/readyz"))
	}

	// An idle worker drains at once; the manifests leave it the whole
	// shutdown timeout and more.
	grace := time.Duration(*w.deploy.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	start := time.Now()
	wk.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-workerDone:
		took := time.Since(start)
		if err != nil {
			t.Errorf("worker exited after SIGTERM with %v", err)
		}
		if took > 5*time.Second {
			t.Errorf("an idle worker took %v to stop after SIGTERM, want a few seconds", took)
		}
		t.Logf("idle worker stopped %v after SIGTERM", took.Round(10*time.Millisecond))
	case <-time.After(grace):
		t.Errorf("worker still running %v after SIGTERM: the kubelet would have killed it", grace)
	}
}

// startRedis runs a throwaway redis-server on port and returns its stop.
func startRedis(t *testing.T, redisServer string, port int) (stop func()) {
	t.Helper()
	redis := exec.Command(redisServer, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction")
	if err := redis.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { redis.Wait(); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			redis.Process.Kill()
			<-done
		})
	}
	waitDial(t, fmt.Sprintf("127.0.0.1:%d", port))
	return stop
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitDial(t *testing.T, addr string) {
	t.Helper()
	if !poll(10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Fatalf("%s never accepted a connection", addr)
	}
}

func poll(d time.Duration, ok func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if ok() {
			return true
		}
	}
	return ok()
}

var client = &http.Client{Timeout: 3 * time.Second}

func status(u string) int {
	r, err := client.Get(u)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, r.Body)
	r.Body.Close()
	return r.StatusCode
}

func body(u string) string {
	r, err := client.Get(u)
	if err != nil {
		return ""
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

func getJSON(u string, v any) error {
	r, err := client.Get(u)
	if err != nil {
		return err
	}
	defer r.Body.Close()
	if r.StatusCode != 200 {
		return fmt.Errorf("status %d", r.StatusCode)
	}
	d := json.NewDecoder(r.Body)
	d.UseNumber()
	return d.Decode(v)
}
