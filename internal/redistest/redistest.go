// Package redistest starts a private redis-server for tests: on a free
// loopback port, with its own temporary directory, stopped when the test
// binary's tests end. Each test gets a database of its own (URL, Client), so
// tests may run in parallel. Set TEST_REDIS_URL to use an existing server
// instead (one database, flushed per test). It is imported only by tests.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a running redis-server.
type Server struct {
	URL  string
	Addr string
	Dir  string
	cmd  *exec.Cmd
}

var (
	once   sync.Once
	shared *Server
	errRun error
)

// Start starts a new redis-server with the given extra config lines (e.g.
// "appendonly yes"); the caller stops it. Tests that restart Redis use this.
func Start(extra ...string) (*Server, error) {
	s, err := newServer()
	if err != nil {
		return nil, err
	}
	s.URL = "redis://" + s.Addr + "/0"
	if err := s.Restart(extra...); err != nil {
		return nil, err
	}
	return s, nil
}

// newServer finds redis-server, a free port and a directory for a server.
func newServer() (*Server, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, fmt.Errorf("redis-server not installed (apt-get install redis-server, or set TEST_REDIS_URL): %w", err)
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	return &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: dir}, nil
}

// Restart (re)starts the server process on the same port and directory.
func (s *Server) Restart(extra ...string) error {
	_, port, _ := net.SplitHostPort(s.Addr)
	args := []string{"--port", port, "--bind", "127.0.0.1", "--dir", s.Dir, "--save", "",
		"--maxmemory-policy", "noeviction", "--protected-mode", "no", "--logfile", filepath.Join(s.Dir, "redis.log")}
	for _, e := range extra {
		k, v, _ := strings.Cut(e, " ")
		args = append(args, "--"+k, v)
	}
	s.cmd = exec.Command("redis-server", args...)
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := c.Ping(context.Background()).Err(); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("redis-server did not come up: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the server at once (SIGKILL).
func (s *Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}

// Stop kills the server and removes its directory.
func (s *Server) Stop() {
	s.Kill()
	os.RemoveAll(s.Dir)
}

// sharedDatabases is how many databases the shared server has: each test
// gets one of its own (the first is left unused), so tests that use it may
// run in parallel.
const sharedDatabases = 256

var (
	dbMu   sync.Mutex
	nextDB int
)

// URL returns the URL of a database of the shared test Redis for this test
// alone, flushed: a private server started once per test binary, or
// TEST_REDIS_URL (then its one database, and tests using it must not run in
// parallel).
func URL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("TEST_REDIS_URL")
	if url == "" {
		once.Do(func() { shared, errRun = Start(fmt.Sprintf("databases %d", sharedDatabases)) })
		if errRun != nil {
			t.Fatal(errRun)
		}
		dbMu.Lock()
		db := nextDB%(sharedDatabases-1) + 1
		nextDB++
		dbMu.Unlock()
		url = fmt.Sprintf("redis://%s/%d", shared.Addr, db)
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	if err := c.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	return url
}

// Client returns a client of the shared test Redis, flushed, closed at the
// end of the test.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(URL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// Main runs the package's tests and then stops the shared server; call it
// from TestMain.
func Main(m interface{ Run() int }) int {
	// Tests kill and restart Redis on purpose: go-redis' own lines about
	// failed dials would only bury the test output.
	redis.SetLogger(quiet{})
	code := m.Run()
	if shared != nil {
		shared.Stop()
	}
	return code
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
