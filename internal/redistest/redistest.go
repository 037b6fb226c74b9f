// Package redistest starts a private redis-server for tests: on a free
// loopback port, with its own temporary directory, stopped when the test
// binary's tests end. Each test gets a database of its own (URL, Client),
// returned when the test ends, so tests may run in parallel. A test that
// changes what the whole server shares (SCRIPT FLUSH, CONFIG SET, a
// restart) takes a server of its own (StartT). Set TEST_REDIS_URL to use an
// existing server instead (one database, flushed per test; the tests that
// use it take turns). A Relay in front of a server lets a test cut the
// network to it and heal it. It is imported only by tests.
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

// StartT starts a server for test t alone, stopped when t ends: for a test
// that changes what every database of a server shares.
func StartT(t testing.TB, extra ...string) *Server {
	t.Helper()
	s, err := Start(extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Restart (re)starts the server process on the same port and directory.
// The server that answers must be this process: on a port another test's
// server took meanwhile, it fails rather than hand over a stranger's data.
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
		pid, err := serverPID(c)
		if err == nil && pid == s.cmd.Process.Pid {
			return nil
		}
		if err == nil { // the port is held: this server will never have it
			s.Kill()
			return fmt.Errorf("%s is served by process %d, not by the redis-server started (%d)", s.Addr, pid, s.cmd.Process.Pid)
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("redis-server did not come up: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serverPID is the process_id the server at c says it is.
func serverPID(c *redis.Client) (int, error) {
	info, err := c.Info(context.Background(), "server").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("no process_id in INFO server")
}

// CPU is the CPU time, user and system, the server at c has used since it
// started (INFO cpu).
func CPU(ctx context.Context, c redis.Cmdable) (time.Duration, error) {
	info, err := c.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, err
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k != "used_cpu_sys" && k != "used_cpu_user" {
			continue
		}
		s, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("INFO cpu %q: %w", line, err)
		}
		total += s
	}
	return time.Duration(total * float64(time.Second)), nil
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
	dbFree = sync.NewCond(&dbMu)
	dbUsed [sharedDatabases]bool
	// turn is the test (and its subtests) using TEST_REDIS_URL's one
	// database; "" when none is.
	turn string
)

// URL returns the URL of a database of the shared test Redis for this test
// alone, flushed: a private server started once per test binary, or
// TEST_REDIS_URL. A database of the shared server is taken back when the
// test ends; one is never handed to two tests at once (a test waits for a
// free one). TEST_REDIS_URL has one database: tests using it take turns,
// the next waits until the test using it and its subtests end.
func URL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("TEST_REDIS_URL")
	if url == "" {
		once.Do(func() { shared, errRun = Start(fmt.Sprintf("databases %d", sharedDatabases)) })
		if errRun != nil {
			t.Fatal(errRun)
		}
		db := takeDB()
		t.Cleanup(func() { giveDB(db) })
		url = fmt.Sprintf("redis://%s/%d", shared.Addr, db)
	} else {
		takeTurn(t)
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

// takeDB waits for a database of the shared server no test holds and
// takes it.
func takeDB() int {
	dbMu.Lock()
	defer dbMu.Unlock()
	for {
		for db := 1; db < sharedDatabases; db++ {
			if !dbUsed[db] {
				dbUsed[db] = true
				return db
			}
		}
		dbFree.Wait()
	}
}

func giveDB(db int) {
	dbMu.Lock()
	dbUsed[db] = false
	dbMu.Unlock()
	dbFree.Broadcast()
}

// takeTurn waits until no other test uses TEST_REDIS_URL's database and
// gives it to t until t ends. A subtest of the test whose turn it is
// shares the turn.
func takeTurn(t testing.TB) {
	name := t.Name()
	dbMu.Lock()
	defer dbMu.Unlock()
	for turn != "" && name != turn && !strings.HasPrefix(name, turn+"/") {
		dbFree.Wait()
	}
	if turn != "" {
		return
	}
	turn = name
	t.Cleanup(func() {
		dbMu.Lock()
		turn = ""
		dbMu.Unlock()
		dbFree.Broadcast()
	})
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

var (
	portMu sync.Mutex
	given  = map[int]bool{}
)

// freePort is a loopback port free now and never handed out before in this
// process: a server killed to be restarted leaves its port free for a
// while, and another test's server must not take it meanwhile.
func freePort() (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !given[port] {
			given[port] = true
			return port, nil
		}
	}
}
