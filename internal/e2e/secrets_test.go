package e2e

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/msaudit/msaudit/internal/redistest"
	"github.com/msaudit/msaudit/internal/testpki"
)

// TestNoSecretInAnyOutput runs whole audits with known secrets given every
// way the product takes them — the client secret in AZURE_CLIENT_SECRET and
// in --client-secret-file, a PFX certificate with --certificate-password-file,
// the Redis password in the URL (environment and flag) and in
// --redis-password-file — at debug log level, then scans everything the
// processes wrote: each one's stdout and stderr, the reports in every format,
// runs, status and deadletters in text and JSON, the worker's /metrics and
// /scaler, and --help of every command with the secrets in the environment.
// None of the secrets may appear, raw or encoded.
func TestNoSecretInAnyOutput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const (
		redisPw = "redis-pa55word-for-the-secrets-test"
		pfxPw   = "pfx-pa55word-for-the-secrets-test"
	)
	srv, err := redistest.StartConf(false, "requirepass "+redisPw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	urlWithPw := "redis://:" + redisPw + "@" + srv.Addr + "/0"
	urlNoPw := "redis://" + srv.Addr + "/0"

	app := testpki.New(t, "msaudit-secrets-e2e")
	pemFile := writeFile(t, dir, "app.pem", string(app.PEM(t)))
	pfx, err := pkcs12.Modern.Encode(app.Key, app.Cert, nil, pfxPw)
	if err != nil {
		t.Fatal(err)
	}
	pfxFile := writeFile(t, dir, "app.pfx", string(pfx))
	pfxPwFile := writeFile(t, dir, "pfx-password", pfxPw+"\n")
	secretFile := writeFile(t, dir, "client-secret", secret+"\n")
	redisPwFile := writeFile(t, dir, "redis-password", redisPw+"\n")

	s := startSim(t, dir, "--users", "120", "--seed", "13", "--client-certificate-file", pemFile,
		"--fault-5xx", "0.05", "--log-level", "debug")
	// captured is everything any process wrote, by where it came from.
	captured := map[string][]byte{}
	// base is the environment without any secret; each use adds its own.
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "SSL_CERT_FILE=" + s.CAFile}
	envWith := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }

	metricsAddr := freeAddr(t)
	w1 := &worker{t: t, args: []string{"--realm-url", s.RealmURL, "--metrics-addr", "", "--log-level", "debug",
		"--max-attempts", "2", "--backoff-base", "10ms", "--backoff-max", "50ms", "--tenant-rate", "300", "--initial-rate", "150"},
		env: envWith("REDIS_URL=" + urlWithPw), log: logFile(t, dir, "worker1.log")}
	w2 := &worker{t: t, args: []string{"--realm-url", s.RealmURL, "--metrics-addr", metricsAddr, "--log-level", "debug",
		"--log-format", "json", "--redis-url", urlNoPw, "--redis-password-file", redisPwFile,
		"--max-attempts", "2", "--backoff-base", "10ms", "--backoff-max", "50ms", "--tenant-rate", "300", "--initial-rate", "150"},
		env: envWith(), log: logFile(t, dir, "worker2.log")}
	for _, w := range []*worker{w1, w2} {
		w.start()
		t.Cleanup(w.kill)
	}

	run := func(name string, env []string, args ...string) []byte {
		t.Helper()
		out, errOut, err := enqueueErr(env, args...)
		captured[name+" stdout"], captured[name+" stderr"] = out, errOut
		if err != nil {
			t.Fatalf("enqueue %s: %v\n%s", name, err, errOut)
		}
		return out
	}
	graph := []string{"submit", "--tenant-id", s.TenantID, "--client-id", clientID, "--graph-url", s.GraphURL,
		"--authority-host", s.Authority, "--log-level", "debug"}
	subs := []struct {
		name string
		env  []string
		args []string
	}{
		{"submit: secret and Redis password in the environment", envWith("AZURE_CLIENT_SECRET="+secret, "REDIS_URL="+urlWithPw), nil},
		{"submit: secret file, Redis password file", envWith("REDIS_URL=" + urlNoPw),
			[]string{"--client-secret-file", secretFile, "--redis-password-file", redisPwFile}},
		{"submit: PFX and its password file, Redis password in --redis-url", envWith(),
			[]string{"--certificate-file", pfxFile, "--certificate-password-file", pfxPwFile, "--redis-url", urlWithPw, "--log-format", "json"}},
		{"submit: PFX password in AZURE_CLIENT_CERTIFICATE_PASSWORD", envWith("AZURE_CLIENT_CERTIFICATE_PASSWORD="+pfxPw, "REDIS_URL="+urlWithPw),
			[]string{"--certificate-file", pfxFile}},
	}
	var runs []string
	for _, sub := range subs {
		runs = append(runs, strings.TrimSpace(string(run(sub.name, sub.env, append(append([]string{}, graph...), sub.args...)...))))
	}
	// Everything below reads Redis with the password from the environment,
	// where an operator would keep it.
	cli := envWith("REDIS_URL="+urlWithPw, "AZURE_CLIENT_SECRET="+secret, "AZURE_CLIENT_CERTIFICATE_PASSWORD="+pfxPw)
	for _, r := range runs {
		waitDone(t, cli, r, 3*time.Minute, nil)
	}
	for i, r := range runs {
		for _, o := range []string{"text", "json"} {
			run(fmt.Sprintf("status %d -o %s", i, o), cli, "status", r, "-o", o, "--log-level", "debug")
			run(fmt.Sprintf("deadletters %d -o %s", i, o), cli, "deadletters", r, "-o", o, "--log-level", "debug")
		}
		for _, f := range reportFormats(t, cli) {
			out := filepath.Join(dir, fmt.Sprintf("report-%d.%s", i, f))
			run(fmt.Sprintf("report %d --format %s", i, f), cli, "report", r, "--format", f, "--out", out, "--log-level", "debug")
			b, err := os.ReadFile(out)
			if err != nil || len(b) == 0 {
				t.Fatalf("report %s: %v", out, err)
			}
			captured["report file "+out] = b
			run(fmt.Sprintf("report %d --format %s to stdout", i, f), cli, "report", r, "--format", f)
		}
		run(fmt.Sprintf("deadletters %d --export", i), cli, "deadletters", r, "--export", filepath.Join(dir, fmt.Sprintf("dead-%d.txt", i)))
		b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("dead-%d.txt", i)))
		captured[fmt.Sprintf("deadletters export %d", i)] = b
	}
	for _, o := range []string{"text", "json"} {
		run("runs -o "+o, cli, "runs", "-o", o, "--log-level", "debug")
	}
	for _, path := range []string{"/metrics", "/scaler", "/healthz", "/readyz"} {
		captured["worker "+path] = []byte(httpGet(t, "http://"+metricsAddr+path))
	}
	for _, args := range [][]string{
		{"--help"}, {"submit", "--help"}, {"local", "--help"}, {"status", "--help"}, {"report", "--help"},
		{"runs", "--help"}, {"deadletters", "--help"}, {"requeue", "--help"}, {"cancel", "--help"}, {"purge", "--help"},
	} {
		run("enqueue "+strings.Join(args, " "), cli, args...)
	}
	out, err := runWorkerOnce(t, cli, "--help")
	if err != nil {
		t.Fatalf("worker --help: %v", err)
	}
	captured["worker --help"] = out

	// The processes' logs, read after they stop so that all is flushed.
	w1.kill()
	w2.kill()
	for _, f := range []string{"worker1.log", "worker2.log", "tenantsim.log"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		captured[f] = b
	}
	if !bytes.Contains(captured["worker2.log"], []byte(`"level":"debug"`)) {
		t.Error("worker2 logged nothing at debug level: the scan would prove little")
	}

	leaks := map[string]string{"client secret": secret, "PFX password": pfxPw, "Redis password": redisPw}
	forms := func(v string) []string {
		out := []string{v}
		for _, f := range []string{url.QueryEscape(v), base64.StdEncoding.EncodeToString([]byte(v))} {
			if f != v {
				out = append(out, f)
			}
		}
		return out
	}
	total := 0
	for where, b := range captured {
		total += len(b)
		for what, v := range leaks {
			for _, f := range forms(v) {
				if bytes.Contains(b, []byte(f)) {
					t.Errorf("%s shows the %s (as %q)", where, what, f)
				}
			}
		}
	}
	t.Logf("scanned %d outputs, %d bytes", len(captured), total)
}

// reportFormats asks the binary which report formats it has: refusing an
// unknown one, it lists them.
func reportFormats(t *testing.T, env []string) []string {
	t.Helper()
	_, errOut, err := enqueueErr(env, "report", "RUN", "--format", "no-such-format")
	if err == nil {
		t.Fatal("an unknown report format was accepted")
	}
	_, list, ok := strings.Cut(string(errOut), "want one of ")
	if !ok {
		t.Fatalf("the formats are not listed: %s", errOut)
	}
	var fs []string
	for _, f := range strings.Split(strings.TrimSpace(list), ",") {
		fs = append(fs, strings.TrimSpace(f))
	}
	return fs
}
