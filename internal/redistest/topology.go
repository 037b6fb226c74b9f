package redistest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartConf starts a redis-server from a configuration file: the basics
// (a free loopback port, its own directory, no snapshots, noeviction) and
// then lines. With tlsPort the port is a TLS port and the plain one is off
// (give the tls-cert-file, tls-key-file and tls-ca-cert-file lines); the
// URL is then rediss://. It waits for the server's "Ready to accept
// connections" rather than a ping, which TLS or an ACL would refuse.
func StartConf(tlsPort bool, lines ...string) (*Server, error) {
	s, err := newServer()
	if err != nil {
		return nil, err
	}
	dir := s.Dir
	_, p, _ := net.SplitHostPort(s.Addr)
	base := []string{"bind 127.0.0.1", "dir " + dir, `save ""`, "maxmemory-policy noeviction", "protected-mode no",
		"logfile " + filepath.Join(dir, "redis.log")}
	if tlsPort {
		base = append(base, "port 0", "tls-port "+p)
		s.URL = "rediss://" + s.Addr + "/0"
	} else {
		base = append(base, "port "+p)
		s.URL = "redis://" + s.Addr + "/0"
	}
	conf := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(conf, []byte(strings.Join(append(base, lines...), "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	s.cmd = exec.Command("redis-server", conf)
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	if err := waitLog(filepath.Join(dir, "redis.log"), "Ready to accept connections", 10*time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// waitLog polls a log file until it holds want: the server says when it is
// ready, and nothing else can tell without a client it may refuse.
func waitLog(path, want string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		b, _ := os.ReadFile(path)
		if bytes.Contains(b, []byte(want)) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no %q after %s:\n%s", path, want, limit, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Sentinel is a primary, its replicas and one Sentinel monitoring them, all
// plain and without passwords. Kill the primary and the Sentinel promotes a
// replica within a few seconds.
type Sentinel struct {
	Name     string // the primary's name in the Sentinel
	Primary  *Server
	Replicas []*Server
	Addr     string // the Sentinel's host:port
	dir      string
	cmd      *exec.Cmd
}

// StartSentinel starts a primary with replicas and a Sentinel that
// fails over one second after the primary stops answering.
func StartSentinel(replicas int) (*Sentinel, error) {
	st := &Sentinel{Name: "msaudit-primary"}
	var err error
	if st.Primary, err = Start(); err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(st.Primary.Addr)
	for i := 0; i < replicas; i++ {
		r, err := StartConf(false, "replicaof "+host+" "+port, "replica-serve-stale-data no")
		if err != nil {
			st.Stop()
			return nil, err
		}
		st.Replicas = append(st.Replicas, r)
		// Sentinel learns the replicas from the primary's INFO, which it
		// reads every 10 s: have them connected before it starts.
		if err := waitLog(filepath.Join(r.Dir, "redis.log"), "MASTER <-> REPLICA sync: Finished with success", 10*time.Second); err != nil {
			st.Stop()
			return nil, err
		}
	}
	if st.dir, err = os.MkdirTemp("", "redistest-sentinel-"); err != nil {
		st.Stop()
		return nil, err
	}
	sp, err := freePort()
	if err != nil {
		st.Stop()
		return nil, err
	}
	st.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(sp))
	conf := filepath.Join(st.dir, "sentinel.conf")
	lines := []string{
		"port " + strconv.Itoa(sp), "bind 127.0.0.1", "dir " + st.dir, "protected-mode no",
		"logfile " + filepath.Join(st.dir, "sentinel.log"),
		fmt.Sprintf("sentinel monitor %s %s %s 1", st.Name, host, port),
		"sentinel down-after-milliseconds " + st.Name + " 1000",
		"sentinel failover-timeout " + st.Name + " 5000",
		"sentinel parallel-syncs " + st.Name + " 1",
	}
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		st.Stop()
		return nil, err
	}
	st.cmd = exec.Command("redis-server", conf, "--sentinel")
	if err := st.cmd.Start(); err != nil {
		st.Stop()
		return nil, fmt.Errorf("start sentinel: %w", err)
	}
	// Ready when it knows every replica: only then can it fail over.
	sc := redis.NewSentinelClient(&redis.Options{Addr: st.Addr})
	defer sc.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rs, err := sc.Replicas(context.Background(), st.Name).Result()
		if err == nil && len(rs) >= replicas {
			return st, nil
		}
		if time.Now().After(deadline) {
			st.Stop()
			return nil, fmt.Errorf("the sentinel knows %d of %d replicas after 20s (%v)", len(rs), replicas, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// URL is the redis-sentinel:// URL of database 0.
func (st *Sentinel) URL() string { return "redis-sentinel://" + st.Addr + "/" + st.Name + "/0" }

// PrimaryAddr asks the Sentinel where the primary is.
func (st *Sentinel) PrimaryAddr(ctx context.Context) (string, error) {
	sc := redis.NewSentinelClient(&redis.Options{Addr: st.Addr})
	defer sc.Close()
	a, err := sc.GetMasterAddrByName(ctx, st.Name).Result()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(a[0], a[1]), nil
}

// WaitFailover waits until the Sentinel names a primary other than old.
func (st *Sentinel) WaitFailover(ctx context.Context, old string, limit time.Duration) (string, error) {
	deadline := time.Now().Add(limit)
	for {
		a, err := st.PrimaryAddr(ctx)
		if err == nil && a != old {
			return a, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no failover from %s after %s (%v)", old, limit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills every process and removes their directories.
func (st *Sentinel) Stop() {
	if st.cmd != nil && st.cmd.Process != nil {
		st.cmd.Process.Kill()
		st.cmd.Wait()
	}
	if st.dir != "" {
		os.RemoveAll(st.dir)
	}
	for _, r := range st.Replicas {
		r.Stop()
	}
	if st.Primary != nil {
		st.Primary.Stop()
	}
}
