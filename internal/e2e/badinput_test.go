package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestBadInputLeavesNothing: every refused submit names its problem, exits
// non-zero and leaves Redis empty — no run, no task.
func TestBadInputLeavesNothing(t *testing.T) {
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
