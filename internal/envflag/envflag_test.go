package envflag

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

type flags struct {
	fs    *pflag.FlagSet
	rate  float64
	n     int
	on    bool
	wait  time.Duration
	url   string
	other string
}

func newFlags() *flags {
	f := &flags{fs: pflag.NewFlagSet("t", pflag.ContinueOnError)}
	f.fs.Float64Var(&f.rate, "tenant-rate", 5, "rate")
	f.fs.IntVar(&f.n, "concurrency", 10, "slots")
	f.fs.BoolVar(&f.on, "adaptive", true, "adapt")
	f.fs.DurationVar(&f.wait, "max-wait", 2*time.Second, "wait")
	f.fs.StringVar(&f.url, "redis-url", "redis://127.0.0.1:6379/0", "redis")
	f.fs.StringVar(&f.other, "unbound", "x", "not bound")
	Bind(f.fs, "tenant-rate", "concurrency", "adaptive", "max-wait")
	BindTo(f.fs, "redis-url", "REDIS_URL")
	return f
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestApply(t *testing.T) {
	t.Parallel()
	f := newFlags()
	if err := f.fs.Parse([]string{"--concurrency", "3"}); err != nil {
		t.Fatal(err)
	}
	err := Apply(f.fs, env(map[string]string{
		"MSAUDIT_TENANT_RATE": "7.5", "MSAUDIT_CONCURRENCY": "99", "MSAUDIT_ADAPTIVE": "false",
		"MSAUDIT_MAX_WAIT": "", "REDIS_URL": "redis://:pw@h:1/0", "MSAUDIT_UNBOUND": "y",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if f.rate != 7.5 || f.n != 3 || f.on || f.wait != 2*time.Second || f.url != "redis://:pw@h:1/0" || f.other != "x" {
		t.Errorf("after Apply: rate %g, concurrency %d, adaptive %v, max-wait %s, url %q, unbound %q",
			f.rate, f.n, f.on, f.wait, f.url, f.other)
	}
	if !FromEnv(f.fs, "tenant-rate") || FromEnv(f.fs, "concurrency") || FromEnv(f.fs, "max-wait") {
		t.Error("FromEnv does not tell the environment's values from the command line's")
	}
}

func TestUsageNamesTheVariable(t *testing.T) {
	t.Parallel()
	f := newFlags()
	help := f.fs.FlagUsages()
	for _, want := range []string{"(env MSAUDIT_TENANT_RATE)", "(env REDIS_URL)", `(default "redis://127.0.0.1:6379/0")`} {
		if !strings.Contains(help, want) {
			t.Errorf("usage lacks %s:\n%s", want, help)
		}
	}
	if strings.Contains(help, "MSAUDIT_UNBOUND") {
		t.Error("an unbound flag names a variable")
	}
}

func TestMalformedValueNamesTheVariableNotTheValue(t *testing.T) {
	t.Parallel()
	for env0, typ := range map[string]string{
		"MSAUDIT_CONCURRENCY": "integer", "MSAUDIT_ADAPTIVE": "boolean", "MSAUDIT_MAX_WAIT": "duration", "MSAUDIT_TENANT_RATE": "number",
	} {
		f := newFlags()
		err := Apply(f.fs, env(map[string]string{env0: "hunter2"}))
		if err == nil || !strings.Contains(err.Error(), env0) || !strings.Contains(err.Error(), typ) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s=hunter2: error %v", env0, err)
		}
	}
}

func TestName(t *testing.T) {
	t.Parallel()
	if got := Name("shutdown-timeout"); got != "MSAUDIT_SHUTDOWN_TIMEOUT" {
		t.Errorf("Name = %s", got)
	}
}
