package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msaudit/msaudit/internal/redistest"
	"github.com/msaudit/msaudit/internal/testpki"
)

// secureRedis is a TLS-only redis-server whose default user is off: only
// the ACL user auditor, with password pw, gets in.
type secureRedis struct {
	*redistest.Server
	caFile, certFile, keyFile string // the CA, and a client certificate it signed
}

const (
	redisUser = "auditor"
	redisPass = "redis-acl-pa55word-never-shown"
)

func startSecureRedis(t *testing.T, dir string, authClients string) *secureRedis {
	t.Helper()
	ca := testpki.NewCA(t, "msaudit test Redis CA")
	srvCert, srvKey := ca.Server(t, "redis").WriteFiles(t, dir, "redis-server")
	cliCert, cliKey := ca.Client(t, "msaudit").WriteFiles(t, dir, "redis-client")
	caFile := filepath.Join(dir, "redis-ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := redistest.StartConf(true,
		"tls-cert-file "+srvCert, "tls-key-file "+srvKey, "tls-ca-cert-file "+caFile,
		"tls-auth-clients "+authClients,
		"user default off",
		"user "+redisUser+" on >"+redisPass+" ~* &* +@all",
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return &secureRedis{Server: srv, caFile: caFile, certFile: cliCert, keyFile: cliKey}
}

// TestSecureRedis runs a small audit — simulator, two workers, submit,
// status, report — through Redis over TLS with an ACL user: (1) the
// password in a rediss:// URL and the server's CA from --redis-ca-file; (2)
// mutual TLS (tls-auth-clients yes) with --redis-cert-file/--redis-key-file
// and the password from --redis-password-file. A wrong password and a
// missing client certificate are clear errors that do not show the password.
func TestSecureRedis(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		authClients string
		// url and flags of the good connection, given the server
		url   func(r *secureRedis) string
		flags func(t *testing.T, dir string, r *secureRedis) []string
		// refused connections: flags replacing the good ones, and what the
		// error must say
		refused []refusal
	}{
		{
			name: "TLS and an ACL user in the URL", authClients: "no",
			url: func(r *secureRedis) string {
				return "rediss://" + redisUser + ":" + redisPass + "@" + r.Addr + "/0"
			},
			flags: func(t *testing.T, dir string, r *secureRedis) []string { return []string{"--redis-ca-file", r.caFile} },
			refused: []refusal{
				{"wrong password", func(r *secureRedis) []string {
					return []string{"--redis-url", "rediss://" + redisUser + ":wrong-pa55word@" + r.Addr + "/0", "--redis-ca-file", r.caFile}
				}, "WRONGPASS"},
				{"no password", func(r *secureRedis) []string {
					return []string{"--redis-url", "rediss://" + r.Addr + "/0", "--redis-ca-file", r.caFile}
				}, "NOAUTH"},
				{"server certificate not trusted", func(r *secureRedis) []string {
					return []string{"--redis-url", "rediss://" + redisUser + ":" + redisPass + "@" + r.Addr + "/0"}
				}, "certificate signed by unknown authority"},
				{"plain redis:// to the TLS port", func(r *secureRedis) []string {
					return []string{"--redis-url", "redis://" + redisUser + ":" + redisPass + "@" + r.Addr + "/0"}
				}, "if it takes TLS only, use rediss://"},
			},
		},
		{
			name: "mutual TLS and the password from a file", authClients: "yes",
			url: func(r *secureRedis) string { return "rediss://" + redisUser + "@" + r.Addr + "/0" },
			flags: func(t *testing.T, dir string, r *secureRedis) []string {
				return []string{"--redis-ca-file", r.caFile, "--redis-cert-file", r.certFile, "--redis-key-file", r.keyFile,
					"--redis-password-file", writeFile(t, dir, "redis-password", redisPass+"\n")}
			},
			refused: []refusal{
				{"no client certificate", func(r *secureRedis) []string {
					return []string{"--redis-url", "rediss://" + redisUser + ":" + redisPass + "@" + r.Addr + "/0", "--redis-ca-file", r.caFile}
				}, "certificate"},
				{"wrong password from the file", func(r *secureRedis) []string {
					return []string{"--redis-url", "rediss://" + redisUser + "@" + r.Addr + "/0", "--redis-ca-file", r.caFile,
						"--redis-cert-file", r.certFile, "--redis-key-file", r.keyFile,
						"--redis-password-file", writeFile(t, t.TempDir(), "pw", "wrong-pa55word\n")}
				}, "WRONGPASS"},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			r := startSecureRedis(t, dir, c.authClients)
			redisURL := c.url(r)
			flags := c.flags(t, dir, r)
			s := startSim(t, dir, "--users", "150", "--seed", "11", "--realm-rate", "400")
			env := s.env(redisURL)
			// status and report take the files from the environment, as
			// the flags' (env NAME) say; worker and submit take flags.
			env = append(env, flagsToEnv(flags)...)
			for i := 1; i <= 2; i++ {
				startWorker(t, dir, "worker"+string(rune('0'+i)), s, redisURL, append([]string{"--concurrency", "2", "--tenant-rate", "300",
					"--initial-rate", "100", "--log-level", "debug"}, flags...)...)
			}
			run := strings.TrimSpace(string(enqueue(t, s.env(redisURL), append([]string{"submit", "--tenant-id", s.TenantID, "--client-id", clientID,
				"--graph-url", s.GraphURL, "--authority-host", s.Authority}, flags...)...)))
			st := waitDone(t, env, run, 2*time.Minute, nil)
			gt := s.truth(t)
			if st.AddressesTotal != int64(len(gt.Addresses)) || st.Checked != st.AddressesTotal || st.DeadLettered != 0 {
				t.Fatalf("status %+v, ground truth has %d addresses", st, len(gt.Addresses))
			}
			rows := jsonReport(t, env, dir, run)
			for _, row := range rows {
				if row.Status != "present" && row.Status != "absent" {
					t.Errorf("row %+v not final", row)
				}
			}
			for _, f := range []string{"worker1.log", "worker2.log"} {
				b, _ := os.ReadFile(filepath.Join(dir, f))
				if strings.Contains(string(b), redisPass) {
					t.Errorf("%s shows the Redis password", f)
				}
			}

			for _, ref := range c.refused {
				t.Run(ref.name, func(t *testing.T) {
					args := ref.flags(r)
					// No REDIS_* from the environment: only these flags.
					bare := s.env("")
					for _, bin := range []string{"enqueue", "worker"} {
						var out []byte
						var err error
						if bin == "enqueue" {
							var stderr []byte
							out, stderr, err = enqueueErr(bare, append([]string{"runs"}, args...)...)
							out = append(out, stderr...)
						} else {
							out, err = runWorkerOnce(t, bare, append([]string{"--realm-url", s.RealmURL, "--metrics-addr", ""}, args...)...)
						}
						if err == nil {
							t.Fatalf("%s connected: %s", bin, out)
						}
						msg := string(out)
						t.Logf("%s", strings.TrimSpace(msg))
						if !strings.Contains(msg, ref.want) || !strings.Contains(msg, "connect to redis at") {
							t.Errorf("%s: error does not say %q:\n%s", bin, ref.want, msg)
						}
						if strings.Contains(msg, redisPass) || strings.Contains(msg, "wrong-pa55word") {
							t.Errorf("%s: the error shows a password:\n%s", bin, msg)
						}
						if n := strings.Count(strings.TrimSpace(msg), "\n"); n > 0 {
							t.Errorf("%s: %d lines of output, want one error line:\n%s", bin, n+1, msg)
						}
					}
				})
			}
		})
	}
}

type refusal struct {
	name  string
	flags func(r *secureRedis) []string
	want  string
}

// flagsToEnv turns --redis-* flags and their values into the environment
// variables that stand for them.
func flagsToEnv(flags []string) []string {
	var env []string
	for i := 0; i+1 < len(flags); i += 2 {
		name := strings.ToUpper(strings.ReplaceAll(strings.TrimPrefix(flags[i], "--"), "-", "_"))
		env = append(env, name+"="+flags[i+1])
	}
	return env
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// runWorkerOnce runs a worker that is expected to exit on its own (a
// refused configuration) and returns its combined output; one that keeps
// running is killed after a minute and reported as such.
func runWorkerOnce(t testing.TB, env []string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binaries(t), "worker"), args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return out, fmt.Errorf("the worker did not exit within a minute")
	}
	return out, err
}
