package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/msaudit/msaudit/internal/cliflags"
	workerpkg "github.com/msaudit/msaudit/internal/worker"
)

// runBinary runs one of the built binaries with env added to a clean
// environment and returns its combined output and exit error.
func runBinary(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries(t), name), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// helpFlag matches a flag line of cobra's --help: name, then the rest.
var helpFlag = regexp.MustCompile(`^\s+(?:-\w, )?--([a-z0-9-]+)(.*)$`)

func helpFlags(t *testing.T, help string) map[string]string {
	t.Helper()
	flags := make(map[string]string)
	for _, line := range strings.Split(help, "\n") {
		if m := helpFlag.FindStringSubmatch(line); m != nil {
			flags[m[1]] = strings.Join(strings.Fields(m[2]), " ")
		}
	}
	return flags
}

// checkingFlags are the names cliflags.RegisterChecking defines.
func checkingFlags() []string {
	fs := pflag.NewFlagSet("checking", pflag.ContinueOnError)
	c := workerpkg.DefaultConfig()
	cliflags.RegisterChecking(fs, &c)
	var names []string
	fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	return names
}

func TestWorkerAndLocalShareTheCheckingFlags(t *testing.T) {
	t.Parallel()
	worker, err := runBinary(t, nil, "worker", "--help")
	if err != nil {
		t.Fatalf("worker --help: %v\n%s", err, worker)
	}
	local, err := runBinary(t, nil, "enqueue", "local", "--help")
	if err != nil {
		t.Fatalf("enqueue local --help: %v\n%s", err, local)
	}
	w, l := helpFlags(t, worker), helpFlags(t, local)
	for _, name := range checkingFlags() {
		if w[name] == "" || w[name] != l[name] {
			t.Errorf("--%s differs:\n  worker:        %q\n  enqueue local: %q", name, w[name], l[name])
		}
	}
}

func TestHelpShowsNoValueFromTheEnvironment(t *testing.T) {
	t.Parallel()
	const pw = "s3cret-in-redis-url"
	env := []string{
		"REDIS_URL=redis://:" + pw + "@redis.example:6379/0",
		"AZURE_CLIENT_SECRET=client-s3cret-value",
		"AZURE_CLIENT_CERTIFICATE_PASSWORD=cert-pa55word",
		"MSAUDIT_TENANT_RATE=77",
		"AZURE_TENANT_ID=tenant-from-env",
	}
	for _, args := range [][]string{
		{"enqueue", "--help"}, {"enqueue", "submit", "--help"}, {"enqueue", "local", "--help"},
		{"enqueue", "status", "--help"}, {"worker", "--help"},
	} {
		out, err := runBinary(t, env, args[0], args[1:]...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		for _, leak := range []string{pw, "client-s3cret-value", "cert-pa55word", "77", "tenant-from-env"} {
			if strings.Contains(out, leak) {
				t.Errorf("%v prints %q, a value from the environment", args, leak)
			}
		}
		if !strings.Contains(out, "(env REDIS_URL)") || !strings.Contains(out, `default "redis://127.0.0.1:6379/0"`) {
			t.Errorf("%v does not name REDIS_URL with the real default:\n%s", args, out)
		}
	}
}

func TestEnvironmentFallbacks(t *testing.T) {
	t.Parallel()
	// A malformed variable is an error naming it, not its value.
	out, err := runBinary(t, []string{"MSAUDIT_CONCURRENCY=lots"}, "worker")
	if err == nil || !strings.Contains(out, "MSAUDIT_CONCURRENCY") || strings.Contains(out, "lots") {
		t.Errorf("worker with MSAUDIT_CONCURRENCY=lots: err %v, output %q", err, out)
	}
	// A flag given wins over its variable: the bad variable is never read.
	out, err = runBinary(t, []string{"MSAUDIT_CONCURRENCY=lots", "REDIS_URL=redis://127.0.0.1:1/0"},
		"worker", "--concurrency", "2", "--metrics-addr", "")
	if err == nil || strings.Contains(out, "MSAUDIT_CONCURRENCY") || !strings.Contains(out, "127.0.0.1:1") {
		t.Errorf("worker --concurrency 2 with a bad MSAUDIT_CONCURRENCY: err %v, output %q (want the Redis error)", err, out)
	}
	// Booleans and durations come from the environment too.
	out, err = runBinary(t, []string{"MSAUDIT_ADAPTIVE=maybe"}, "enqueue", "local", "--tenant-id", "t", "--client-id", "c")
	if err == nil || !strings.Contains(out, "MSAUDIT_ADAPTIVE") || !strings.Contains(out, "boolean") {
		t.Errorf("enqueue local with MSAUDIT_ADAPTIVE=maybe: err %v, output %q", err, out)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	for _, bin := range []string{"enqueue", "worker"} {
		out, err := runBinary(t, nil, bin, "--version")
		if err != nil || !strings.HasPrefix(out, bin+" version ") {
			t.Errorf("%s --version: %v, %q", bin, err, out)
		}
	}
}
