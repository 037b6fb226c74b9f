package e2e

import (
	"bytes"
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msaudit/msaudit/internal/redistest"
)

// TestBadInputLeavesNothing: every refused submit names its problem, exits
// non-zero and leaves Redis empty — no run, no task.
func TestBadInputLeavesNothing(t *testing.T) {
	t.Parallel() // a Redis database, simulator and workers of its own
	dir := t.TempDir()
	redisURL := newRedis(t)
	s := startSim(t, dir, "--users", "200", "--seed", "3")
	env := s.env(redisURL)
	graph := []string{"submit", "--tenant-id", s.TenantID, "--client-id", clientID, "--graph-url", s.GraphURL, "--authority-host", s.Authority}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badAddrs := write("bad-addrs.txt", "ok@contoso.com\nnot-an-address\n")
	unknownUsers := write("users.txt", "# a comment\nnobody-here@contoso.com\n")
	wrongSecret := append(append([]string{}, env...), "AZURE_CLIENT_SECRET=wrong-secret-value")

	cases := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"wrong secret", wrongSecret, graph, "AADSTS7000215"},
		{"unknown domain", env, append(graph, "--domain", "nope.example"), "not in the tenant: nope.example"},
		{"unverified domain", env, append(graph, "--domain", "unverified.example"), "not verified: unverified.example"},
		{"malformed filter", env, append(graph, "--filter", "startsWith(displayName,"), "400"},
		{"unknown user", env, append(graph, "--users-file", unknownUsers), "nobody-here@contoso.com"},
		{"malformed address file", env, []string{"submit", "--tenant-id", s.TenantID, "--addresses-file", badAddrs}, "line 2"},
		{"missing address file", env, []string{"submit", "--tenant-id", s.TenantID, "--addresses-file", filepath.Join(dir, "none.txt")}, "--addresses-file"},
		{"bad addresses mode", env, append(graph, "--addresses", "some"), "--addresses"},
		{"bad batch size", env, append(graph, "--batch-size", "0"), "--batch-size"},
		{"unknown cloud", env, append(graph, "--environment", "Mars"), "--environment"},
		{"missing tenant", env, []string{"submit", "--client-id", clientID}, "--tenant-id"},
		{"unreachable redis", append(append([]string{}, env...), "REDIS_URL=redis://127.0.0.1:1/0"), graph, "connect to redis"},
	}
	opts, _ := redis.ParseURL(redisURL)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, errOut, err := enqueueErr(c.env, c.args...)
			if err == nil {
				t.Fatalf("exit 0; stderr:\n%s", errOut)
			}
			if !strings.Contains(string(errOut), c.want) {
				t.Errorf("stderr does not name the problem (%q):\n%s", c.want, errOut)
			}
			if strings.Contains(string(errOut), secret) || strings.Contains(string(errOut), "wrong-secret-value") {
				t.Errorf("stderr shows a secret:\n%s", errOut)
			}
			if n := rdb.DBSize(context.Background()).Val(); n != 0 {
				keys := rdb.Keys(context.Background(), "*").Val()
				t.Errorf("redis holds %d keys after a refused submit: %v", n, keys)
			}
		})
	}
}

// TestBadInputSuite: every refused command — bad files, numbers, durations,
// environments, auth methods, Redis URLs and passwords, unknown runs,
// unwritable outputs, unreadable secrets, unknown flags — exits non-zero
// with one line naming the problem (no usage dump, no stack trace, nothing
// on stdout, no secret) and leaves Redis exactly as it was: a DUMP of every
// key, with a run already queued in it, is the same before and after.
func TestBadInputSuite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const redisPw = "bad-input-redis-pa55word"
	srv, err := redistest.StartConf(false, "requirepass "+redisPw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	redisURL := "redis://:" + redisPw + "@" + srv.Addr + "/0"
	s := startSim(t, dir, "--users", "100", "--seed", "5")
	env := s.env(redisURL)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: redisPw})
	defer rdb.Close()

	// The run already in Redis: queued, no worker to take it.
	good := writeFile(t, dir, "good.txt", "a@contoso.com\nb@contoso.com\n")
	run := strings.TrimSpace(string(enqueue(t, env, "submit", "--tenant-id", s.TenantID, "--addresses-file", good)))
	// Baselines that cannot be used: another tenant's run, a purged run,
	// report files of every wrong kind.
	const otherTenant = "11111111-2222-3333-4444-555555555555"
	otherRun := strings.TrimSpace(string(enqueue(t, env, "submit", "--tenant-id", otherTenant, "--addresses-file", good)))
	purged := strings.TrimSpace(string(enqueue(t, env, "submit", "--tenant-id", s.TenantID, "--addresses-file", good)))
	enqueue(t, env, "purge", purged)
	row := func(runID, tenant, addr, status, checkedAt string) string {
		return `{"address":"` + addr + `","status":"` + status + `","ms_request_id":"r","checked_at":"` + checkedAt +
			`","attempts":1,"run_id":"` + runID + `","tenant_id":"` + tenant + `"}`
	}
	ok := row(run, s.TenantID, "a@contoso.com", "absent", "2026-12-01T00:00:00Z")
	otherReport := writeFile(t, dir, "other.json", "["+row(otherRun, otherTenant, "a@contoso.com", "absent", "2026-12-01T00:00:00Z")+"]")
	truncatedReport := writeFile(t, dir, "truncated.json", "["+ok+`,{"address":"b@con`)
	csvReport := writeFile(t, dir, "report.csv", "address,status\na@contoso.com,absent\n")
	objectReport := writeFile(t, dir, "object.json", `{"rows":[]}`)
	oldReport := writeFile(t, dir, "old.json", `[{"address":"a@contoso.com","status":"absent","checked_at":"2026-12-01T00:00:00Z"}]`)
	mixedReport := writeFile(t, dir, "mixed.json", "["+ok+","+row("20261201T000000Z-abcdef\\u001b[31m", s.TenantID, "b@contoso.com", "absent", "2026-12-01T00:00:00Z")+"]")
	badTimeReport := writeFile(t, dir, "badtime.json", "["+row(run, s.TenantID, "a@contoso.com", "absent", "yesterday")+"]")
	badAddrReport := writeFile(t, dir, "badaddr.json", "["+row(run, s.TenantID, "=cmd|' /C calc'!A0", "absent", "2026-12-01T00:00:00Z")+"]")
	emptyReport := writeFile(t, dir, "empty-report.json", "[]")
	before := redisContents(t, rdb)
	if len(before) < 5 {
		t.Fatalf("only %d keys after a submit", len(before))
	}

	with := func(extra ...string) []string { return append(append([]string{}, env...), extra...) }
	graph := []string{"submit", "--tenant-id", s.TenantID, "--client-id", clientID, "--graph-url", s.GraphURL, "--authority-host", s.Authority}
	g := func(extra ...string) []string { return append(append([]string{}, graph...), extra...) }
	file := func(extra ...string) []string {
		return append([]string{"submit", "--tenant-id", s.TenantID, "--addresses-file", good}, extra...)
	}
	hugeLine := writeFile(t, dir, "huge.txt", "a@contoso.com\n"+strings.Repeat("x", 10<<20)+"@contoso.com\n")
	nonUTF8Users := writeFile(t, dir, "latin1-users.txt", "caf\xe9@contoso.com\n")
	nonUTF8 := writeFile(t, dir, "latin1.txt", "a@contoso.com\ncaf\xe9@contoso.com\n")
	binary := writeFile(t, dir, "binary.txt", "a\x00\x01b@contoso.com\n")
	empty := writeFile(t, dir, "empty.txt", "")
	comments := writeFile(t, dir, "comments.txt", "# nothing but comments\n\n   \n# here\n")
	malformed := writeFile(t, dir, "malformed.txt", "a@contoso.com\nnot-an-address\nc@@contoso.com\n")
	users := writeFile(t, dir, "users.txt", "user1@contoso.com\n")
	emptyPw := writeFile(t, dir, "empty-pw", "\n")
	missing := filepath.Join(dir, "does-not-exist")
	nodir := filepath.Join(dir, "no-such-dir", "report.html")
	wrongPw := "redis://:wrong-pa55word@" + srv.Addr + "/0"
	noPw := "redis://" + srv.Addr + "/0"
	bare := with("REDIS_URL=" + noPw) // reaches Redis, without the password

	type bin int
	const (
		enq bin = iota
		wrk
	)
	cases := []struct {
		name string
		bin  bin
		env  []string // nil: env
		args []string
		want string
	}{
		// Address and user files.
		{"malformed address file", enq, nil, file("--addresses-file", malformed), "line 2"},
		{"empty address file", enq, nil, file("--addresses-file", empty), "no addresses"},
		{"address file of comments only", enq, nil, file("--addresses-file", comments), "no addresses"},
		{"address file with a 10 MB line", enq, nil, file("--addresses-file", hugeLine), "line 2 is longer than"},
		{"non-UTF-8 address file", enq, nil, file("--addresses-file", nonUTF8), "line 2: not UTF-8 text"},
		{"binary address file", enq, nil, file("--addresses-file", binary), "line 1: holds control characters"},
		{"address file is a directory", enq, nil, file("--addresses-file", dir), "is a directory"},
		{"missing address file", enq, nil, file("--addresses-file", missing), "--addresses-file"},
		{"users file with addresses file", enq, nil, g("--users-file", users, "--addresses-file", good), "exclude each other"},
		{"empty users file", enq, nil, g("--users-file", empty), "no users listed"},
		{"users file with a 10 MB line", enq, nil, g("--users-file", hugeLine), "line 2 is longer than"},
		{"non-UTF-8 users file", enq, nil, g("--users-file", nonUTF8Users), "not UTF-8 text"},
		// Numbers and durations, flags and environment.
		{"batch size 0", enq, nil, file("--batch-size", "0"), "--batch-size 0"},
		{"batch size 1001", enq, nil, file("--batch-size", "1001"), "--batch-size 1001"},
		{"batch size not a number", enq, nil, file("--batch-size", "fifty"), `invalid argument "fifty" for "--batch-size"`},
		{"retention too short", enq, nil, file("--retention", "30m"), "--retention 30m0s: want at least 1h"},
		{"retention not a duration", enq, nil, file("--retention", "forever"), `invalid argument "forever" for "--retention"`},
		{"MSAUDIT_RETENTION not a duration", enq, with("MSAUDIT_RETENTION=soon"), file(), "MSAUDIT_RETENTION"},
		{"status interval too short", enq, nil, []string{"status", run, "--watch", "--interval", "1ms"}, "--interval 1ms"},
		{"requeue batch size 0", enq, nil, []string{"requeue", run, "--batch-size", "0"}, "--batch-size 0"},
		{"worker concurrency 0", wrk, nil, []string{"--concurrency", "0"}, "concurrency must be >= 1"},
		{"MSAUDIT_CONCURRENCY not a number", wrk, with("MSAUDIT_CONCURRENCY=lots"), nil, "MSAUDIT_CONCURRENCY"},
		{"worker realm timeout 0", wrk, nil, []string{"--realm-timeout", "0s"}, "realm timeout must be > 0"},
		{"MSAUDIT_REALM_TIMEOUT negative", wrk, with("MSAUDIT_REALM_TIMEOUT=-1s"), nil, "realm timeout must be > 0"},
		{"worker max attempts 0", wrk, nil, []string{"--max-attempts", "0"}, "max attempts must be >= 1"},
		{"worker backoff max below base", wrk, nil, []string{"--backoff-base", "2m", "--backoff-max", "1m"}, "backoff max (1m0s) must be >= backoff base (2m0s)"},
		{"MSAUDIT_TENANT_RATE negative", wrk, with("MSAUDIT_TENANT_RATE=-5"), nil, "rate"},
		{"MSAUDIT_BACKOFF_BASE not a duration", wrk, with("MSAUDIT_BACKOFF_BASE=soon"), nil, "MSAUDIT_BACKOFF_BASE"},
		{"worker metrics address", wrk, nil, []string{"--metrics-addr", "nonsense"}, "--metrics-addr"},
		{"worker realm URL", wrk, nil, []string{"--realm-url", "ftp://realm.example/x"}, "realm url"},
		{"worker shutdown timeout 0", wrk, nil, []string{"--shutdown-timeout", "0s"}, "shutdown timeout must be > 0"},
		// Environment, authentication, tenant.
		{"unknown environment", enq, nil, g("--environment", "Mars"), "--environment"},
		{"AZURE_ENVIRONMENT unknown", enq, with("AZURE_ENVIRONMENT=Mars"), g(), "--environment"},
		{"unknown auth method", enq, nil, g("--auth", "password"), "--auth"},
		{"MSAUDIT_AUTH unknown", enq, with("MSAUDIT_AUTH=kerberos"), g(), "--auth"},
		{"secret as an argument", enq, nil, g("--client-secret", "s3cret-arg"), "--client-secret is refused"},
		{"malformed tenant ID", enq, nil, []string{"submit", "--tenant-id", "not a tenant!", "--client-id", clientID,
			"--graph-url", s.GraphURL, "--authority-host", s.Authority}, "tenant"},
		{"malformed tenant ID with an address file", enq, nil, []string{"submit", "--tenant-id", "not a tenant!",
			"--addresses-file", good}, "--tenant-id"},
		{"missing tenant ID", enq, nil, []string{"submit", "--addresses-file", good}, "--tenant-id is required"},
		// Redis.
		{"malformed Redis URL", enq, nil, []string{"runs", "--redis-url", "not a url"}, "want redis://, rediss://"},
		{"Redis URL of another scheme", enq, nil, []string{"status", run, "--redis-url", "http://" + srv.Addr}, "want redis://, rediss://"},
		{"Redis database not a number", wrk, nil, []string{"--redis-url", "redis://:" + redisPw + "@" + srv.Addr + "/zero"}, "invalid database number"},
		{"Sentinel URL without a primary", enq, nil, []string{"runs", "--redis-url", "redis-sentinel://" + srv.Addr}, "want /PRIMARY"},
		{"unreachable Sentinel", wrk, nil, []string{"--redis-url", "redis-sentinel://127.0.0.1:1/mymaster/0"}, "Sentinel 127.0.0.1:1"},
		{"Redis is no Sentinel", enq, nil, []string{"runs", "--redis-url", "redis-sentinel://:" + redisPw + "@" + srv.Addr + "/mymaster/0"}, srv.Addr + " is not a Sentinel"},
		{"unreachable Redis", enq, with("REDIS_URL=redis://127.0.0.1:1/0"), []string{"runs"}, "connect to redis at redis://127.0.0.1:1/0"},
		{"wrong Redis password", enq, with("REDIS_URL=" + wrongPw), []string{"status", run}, "WRONGPASS"},
		{"no Redis password", enq, bare, []string{"runs"}, "NOAUTH"},
		{"worker wrong Redis password", wrk, with("REDIS_URL=" + wrongPw), nil, "WRONGPASS"},
		{"worker unreachable Redis", wrk, with("REDIS_URL=redis://127.0.0.1:1/0"), nil, "connect to redis"},
		{"missing Redis password file", enq, bare, []string{"runs", "--redis-password-file", missing}, "redis password file"},
		{"Redis password file is a directory", enq, bare, []string{"runs", "--redis-password-file", dir}, "is a directory"},
		{"empty Redis password file", wrk, bare, []string{"--redis-password-file", emptyPw}, "is empty"},
		{"Redis password twice", enq, nil, []string{"runs", "--redis-password-file", writeFile(t, dir, "pw", redisPw)}, "given twice"},
		// Runs that do not exist.
		{"status of an unknown run", enq, nil, []string{"status", "20000101T000000Z-000000"}, "run not found"},
		{"report of an unknown run", enq, nil, []string{"report", "nope", "--format", "json", "--out", filepath.Join(dir, "r.json")}, "run not found"},
		{"deadletters of an unknown run", enq, nil, []string{"deadletters", "nope"}, "run not found"},
		{"export of an unknown run", enq, nil, []string{"deadletters", "nope", "--export", filepath.Join(dir, "x.txt")}, "run not found"},
		{"requeue of an unknown run", enq, nil, []string{"requeue", "nope"}, "run not found"},
		{"cancel of an unknown run", enq, nil, []string{"cancel", "nope"}, "run not found"},
		{"purge of an unknown run", enq, nil, []string{"purge", "nope"}, "run not found"},
		{"submit --run-id of an unknown run", enq, nil, file("--run-id", "20000101T000000Z-000000"), "run not found"},
		{"submit --run-id of another tenant's run", enq, nil, []string{"submit", "--tenant-id", "11111111-2222-3333-4444-555555555555",
			"--addresses-file", good, "--run-id", run}, "belongs to tenant"},
		// Baselines of a re-audit.
		{"--since another tenant's run", enq, nil, file("--since", otherRun), "is of tenant " + otherTenant + ", not " + s.TenantID},
		{"--since an unknown run", enq, nil, file("--since", "20000101T000000Z-000000"), "no such run (purged, or past its retention): give its JSON report instead"},
		{"--since a purged run", enq, nil, file("--since", purged), "no such run (purged, or past its retention)"},
		{"--since another tenant's report", enq, nil, file("--since", otherReport), "is of tenant " + otherTenant},
		{"--since a missing report", enq, nil, file("--since", missing), "no such file or directory"},
		{"--since a report cut short", enq, nil, file("--since", truncatedReport), "row 2: not a report row"},
		{"--since a CSV report", enq, nil, file("--since", csvReport), "not a JSON report (report --format json)"},
		{"--since a JSON object", enq, nil, file("--since", objectReport), "not a JSON report (report --format json)"},
		{"--since a report of an earlier version", enq, nil, file("--since", oldReport), "no run_id or tenant_id"},
		{"--since a report of two runs", enq, nil, file("--since", mixedReport), "not one run's report"},
		{"--since a report with a bad time", enq, nil, file("--since", badTimeReport), `checked_at "yesterday"`},
		{"--since a report with a bad address", enq, nil, file("--since", badAddrReport), "row 1: not a valid address"},
		{"--since an empty report", enq, nil, file("--since", emptyReport), "nothing to reuse"},
		{"--since a directory", enq, nil, file("--since", dir), "is a directory"},
		{"--since with --recheck", enq, nil, []string{"submit", "--tenant-id", s.TenantID, "--recheck", run, "--since", run}, "--since and --recheck exclude each other"},
		{"--reuse-max-age 0", enq, nil, file("--since", run, "--reuse-max-age", "0s"), "--reuse-max-age 0s: want a positive duration"},
		{"resume without the run's baseline", enq, nil, file("--run-id", run, "--since", run), "asks every address: resume it without --since"},
		// Outputs.
		{"report into a missing directory", enq, nil, []string{"report", run, "--out", nodir}, "no-such-dir"},
		{"report onto a directory", enq, nil, []string{"report", run, "--format", "csv", "--out", dir}, dir},
		{"export into a missing directory", enq, nil, []string{"deadletters", run, "--export", nodir}, "no-such-dir"},
		{"unknown report format", enq, nil, []string{"report", run, "--format", "pdf"}, `--format "pdf"`},
		{"unknown runs output", enq, nil, []string{"runs", "-o", "yaml"}, `--output "yaml"`},
		{"unknown status output", enq, nil, []string{"status", run, "-o", "xml"}, `--output "xml"`},
		// Secret files.
		{"missing client secret file", enq, nil, g("--client-secret-file", missing), "--client-secret-file"},
		{"empty client secret file", enq, nil, g("--client-secret-file", empty), "is empty"},
		{"client secret file is a directory", enq, nil, g("--client-secret-file", dir), "is a directory"},
		{"missing certificate file", enq, nil, g("--certificate-file", missing), "--certificate-file"},
		{"missing certificate password file", enq, nil, g("--certificate-file", good, "--certificate-password-file", missing), "--certificate-password-file"},
		// Flags and commands.
		{"unknown flag", enq, nil, []string{"status", run, "--bogus"}, "unknown flag: --bogus"},
		{"worker unknown flag", wrk, nil, []string{"--bogus"}, "unknown flag: --bogus"},
		{"unknown command", enq, nil, []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"status without a run", enq, nil, []string{"status"}, "accepts 1 arg(s), received 0"},
		{"submit with an argument", enq, nil, file("extra"), `unknown command "extra"`},
		{"unknown log level", enq, nil, []string{"runs", "--log-level", "verbose"}, "verbose"},
		{"unknown log format", wrk, nil, []string{"--log-format", "xml"}, "xml"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := c.env
			if e == nil {
				e = env
			}
			defer func() {
				if after := redisContents(t, rdb); !maps.Equal(before, after) {
					t.Errorf("Redis changed: %s", diffKeys(before, after))
					before = after // report each change once
				}
			}()
			var stdout, stderr []byte
			var err error
			name := "enqueue"
			if c.bin == wrk {
				name = "worker"
				stdout, stderr, err = runWorkerRefused(t, e, append([]string{"--realm-url", s.RealmURL, "--metrics-addr", ""}, c.args...)...)
			} else {
				stdout, stderr, err = enqueueErr(e, c.args...)
			}
			if err == nil {
				t.Fatalf("exit 0; stdout %q, stderr:\n%s", stdout, stderr)
			}
			msg := string(stderr)
			if !strings.Contains(msg, c.want) {
				t.Errorf("stderr does not name the problem (%q):\n%s", c.want, msg)
			}
			n := 0
			for _, line := range strings.Split(msg, "\n") {
				if strings.HasPrefix(line, name+": ") {
					n++
					t.Log(line)
				}
			}
			if n != 1 {
				t.Errorf("%d error lines, want 1:\n%s", n, msg)
			}
			for _, bad := range []string{"Usage:", "goroutine ", "panic", redisPw, secret, "s3cret-arg"} {
				if strings.Contains(msg, bad) {
					t.Errorf("stderr shows %q:\n%s", bad, msg)
				}
			}
			if len(stdout) != 0 {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
}

// runWorkerRefused runs a worker that should refuse to start.
func runWorkerRefused(t testing.TB, env []string, args ...string) (stdout, stderr []byte, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binaries(t), "worker"), args...)
	var out, errOut bytes.Buffer
	cmd.Env, cmd.Stdout, cmd.Stderr = env, &out, &errOut
	err = cmd.Run()
	if ctx.Err() != nil {
		err = nil // it ran: not refused
	}
	return out.Bytes(), errOut.Bytes(), err
}
