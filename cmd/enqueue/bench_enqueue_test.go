package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msaudit/msaudit/internal/redistest"
)

// BenchmarkSubmitLargeTenant measures the enqueue bar (docs/design.md: 200,000
// users in <= 60 s, <= 150 MB, first task <= 2 s after the first page) with the real
// binaries: tenantsim serves MSAUDIT_BENCH_USERS users (default 200,000),
// 'enqueue submit' reads them over HTTPS and queues every address into a
// private redis-server. It reports the submit's wall time, its CPU time and
// peak RSS (getrusage of the child), the CPU time of Redis, and the time from
// the first users page read to the first task on Redis. Run it with 'make
// bench-enqueue'; it is not part of 'make test' (benchmarks only run with
// -bench) nor of 'make bench' (which covers ./internal/...).
//
// MSAUDIT_BENCH_BASELINE names another checkout of the repository (a git
// worktree of an earlier commit): its enqueue is built too and the two are
// run in turn, MSAUDIT_BENCH_ROUNDS rounds (default 3), against the same
// simulated tenant, each submit with a redis-server of its own, the order
// swapped every round so that a machine growing busier or quieter favours
// neither. It prints one row per submit and the medians.
func BenchmarkSubmitLargeTenant(b *testing.B) {
	users := benchUsers(b)
	dir := b.TempDir()
	build := exec.Command("go", "build", "-o", dir+"/", "github.com/msaudit/msaudit/cmd/enqueue", "github.com/msaudit/msaudit/cmd/tenantsim")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	codes := []benchCode{{name: "current", enqueue: filepath.Join(dir, "enqueue")}}
	rounds := 1
	if base := os.Getenv("MSAUDIT_BENCH_BASELINE"); base != "" {
		codes = append(codes, buildBaseline(b, base, filepath.Join(dir, "baseline")))
		rounds = benchRounds(b)
	}

	const secret = "bench-secret-value"
	sim := exec.Command(filepath.Join(dir, "tenantsim"), "--listen", "127.0.0.1:0", "--users", strconv.Itoa(users),
		"--ca-out", filepath.Join(dir, "ca.pem"), "--log-level", "warn")
	sim.Env = append(os.Environ(), "TENANTSIM_CLIENT_SECRET="+secret)
	sim.Stderr = os.Stderr
	simOut, err := sim.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { sim.Process.Kill(); sim.Wait() }()
	line, err := bufio.NewReader(simOut).ReadBytes('\n')
	if err != nil {
		b.Fatalf("tenantsim did not start: %v", err)
	}
	var ready struct {
		GraphURL      string `json:"graph_url"`
		AuthorityHost string `json:"authority_host"`
		TenantID      string `json:"tenant_id"`
		ClientID      string `json:"client_id"`
		Addresses     int    `json:"addresses"`
	}
	if err := json.Unmarshal(line, &ready); err != nil {
		b.Fatal(err)
	}
	sub := submitArgs{dir: dir, tenant: ready.TenantID, client: ready.ClientID, graphURL: ready.GraphURL,
		authority: ready.AuthorityHost, secret: secret}

	for i := 0; i < b.N; i++ {
		fmt.Printf("%-8s %5s %8s %8s %8s %9s %10s   (%d users; bar: ≤ 60 s, ≤ 150 MB, ≤ 2000 ms)\n",
			"code", "round", "wall s", "cpu s", "redis s", "peak MB", "first ms", users)
		runs := make(map[string][]submitFigures)
		for round := 1; round <= rounds; round++ {
			for k := range codes {
				c := codes[(k+round-1)%len(codes)]
				r := submitFresh(b, c.enqueue, sub)
				if r.addresses != ready.Addresses {
					b.Errorf("%s queued %d addresses, the tenant has %d", c.name, r.addresses, ready.Addresses)
				}
				fmt.Printf("%-8s %5d %8.1f %8.1f %8.1f %9.0f %10d\n", c.name, round, r.wall.Seconds(), r.cpu.Seconds(),
					r.redisCPU.Seconds(), float64(r.maxRSSKiB)/1024, r.firstTask.Milliseconds())
				runs[c.name] = append(runs[c.name], r)
			}
		}
		for _, c := range codes {
			m := medianFigures(runs[c.name])
			fmt.Printf("%-8s %5s %8.1f %8.1f %8.1f %9.0f %10d\n", c.name, "median", m.wall.Seconds(), m.cpu.Seconds(),
				m.redisCPU.Seconds(), float64(m.maxRSSKiB)/1024, m.firstTask.Milliseconds())
		}
		cur := medianFigures(runs["current"])
		if len(codes) > 1 {
			base := medianFigures(runs["baseline"])
			fmt.Printf("current / baseline: wall %.2f×, cpu %.2f×, redis %.2f× (baseline: %s)\n",
				ratio(cur.wall, base.wall), ratio(cur.cpu, base.cpu), ratio(cur.redisCPU, base.redisCPU), codes[1].source)
		}
		b.ReportMetric(cur.wall.Seconds(), "s/submit")
		b.ReportMetric(float64(cur.maxRSSKiB)/1024, "peak-RSS-MB")
		b.ReportMetric(float64(cur.firstTask.Milliseconds()), "first-task-ms")
	}
}

// benchCode is an enqueue binary the bench runs: this checkout's or the
// baseline's.
type benchCode struct {
	name, enqueue string
	source        string // the baseline's checkout and commit
}

// buildBaseline builds the enqueue of the checkout at src into out.
func buildBaseline(b *testing.B, src, out string) benchCode {
	b.Helper()
	build := exec.Command("go", "build", "-o", out+"/", "./cmd/enqueue")
	build.Dir = src
	if msg, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build in MSAUDIT_BENCH_BASELINE=%s: %v\n%s", src, err, msg)
	}
	rev, err := exec.Command("git", "-C", src, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		b.Fatalf("MSAUDIT_BENCH_BASELINE=%s: not a git checkout: %v", src, err)
	}
	return benchCode{name: "baseline", enqueue: filepath.Join(out, "enqueue"), source: src + " at " + strings.TrimSpace(string(rev))}
}

// benchRounds is MSAUDIT_BENCH_ROUNDS, default 3.
func benchRounds(b *testing.B) int {
	v := os.Getenv("MSAUDIT_BENCH_ROUNDS")
	if v == "" {
		return 3
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("MSAUDIT_BENCH_ROUNDS=%q: want a positive number", v)
	}
	return n
}

// submitFresh runs one submit of the binary enqueue into a redis-server of
// its own, and reads the server's CPU time before stopping it.
func submitFresh(b *testing.B, enqueue string, a submitArgs) submitFigures {
	b.Helper()
	rs, err := redistest.Start()
	if err != nil {
		b.Fatal(err)
	}
	defer rs.Stop()
	opts, _ := redis.ParseURL(rs.URL)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	r := submitOnce(b, enqueue, rs.URL, rdb, a)
	if r.redisCPU, err = redistest.CPU(context.Background(), rdb); err != nil {
		b.Fatal(err)
	}
	return r
}

// medianFigures is the median of each figure of rs on its own.
func medianFigures(rs []submitFigures) submitFigures {
	med := func(f func(submitFigures) int64) int64 {
		v := make([]int64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return submitFigures{
		wall:      time.Duration(med(func(r submitFigures) int64 { return int64(r.wall) })),
		cpu:       time.Duration(med(func(r submitFigures) int64 { return int64(r.cpu) })),
		redisCPU:  time.Duration(med(func(r submitFigures) int64 { return int64(r.redisCPU) })),
		firstTask: time.Duration(med(func(r submitFigures) int64 { return int64(r.firstTask) })),
		maxRSSKiB: med(func(r submitFigures) int64 { return r.maxRSSKiB }),
	}
}

func ratio(a, b time.Duration) float64 { return a.Seconds() / b.Seconds() }

// submitArgs are what a submit needs to reach the simulated tenant.
type submitArgs struct {
	dir, tenant, client, graphURL, authority, secret string
}

type submitFigures struct {
	users, addresses, batches      int
	wall, cpu, redisCPU, firstTask time.Duration
	maxRSSKiB                      int64
}

// submitOnce runs the binary enqueue's submit of the tenant into the empty
// database at redisURL (rdb).
func submitOnce(b *testing.B, enqueue, redisURL string, rdb *redis.Client, a submitArgs) submitFigures {
	b.Helper()
	cmd := exec.Command(enqueue, "submit", "--tenant-id", a.tenant, "--client-id", a.client,
		"--graph-url", a.graphURL, "--authority-host", a.authority, "-o", "json", "--log-format", "json", "--log-level", "debug")
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+filepath.Join(a.dir, "ca.pem"), "AZURE_CLIENT_SECRET="+a.secret, "REDIS_URL="+redisURL)
	logPath := filepath.Join(a.dir, "submit.log")
	logf, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	var stdout strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, logf

	// asynq registers a queue in asynq:queues with its first enqueue: the
	// first moment a task is on Redis.
	var firstTask atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if n, _ := rdb.Exists(context.Background(), "asynq:queues").Result(); n > 0 {
				firstTask.Store(time.Now().UnixNano())
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	start := time.Now()
	if err := cmd.Run(); err != nil {
		close(stop)
		<-done
		log, _ := os.ReadFile(logPath)
		b.Fatalf("submit: %v\n%s", err, log[max(0, len(log)-4000):])
	}
	wall := time.Since(start)
	close(stop)
	<-done

	var res struct {
		Users     int `json:"users"`
		Addresses int `json:"addresses_added"`
		Batches   int `json:"batches"`
	}
	if err := json.Unmarshal([]byte(stdout.String()), &res); err != nil {
		b.Fatalf("submit output %q: %v", stdout.String(), err)
	}
	fig := submitFigures{users: res.Users, addresses: res.Addresses, batches: res.Batches, wall: wall,
		cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		fig.maxRSSKiB = ru.Maxrss // KiB on Linux
	}
	firstPage := firstPageTime(b, logPath)
	if ft := firstTask.Load(); ft > 0 && !firstPage.IsZero() {
		fig.firstTask = time.Unix(0, ft).Sub(firstPage)
	}
	return fig
}

// firstPageTime is the "users page read" log line of page 1 (debug level).
func firstPageTime(b *testing.B, logPath string) time.Time {
	f, err := os.Open(logPath)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e struct {
			TS   string `json:"ts"`
			Msg  string `json:"msg"`
			Page int    `json:"page"`
		}
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Msg == "users page read" && e.Page == 1 {
			t, err := time.Parse("2006-01-02T15:04:05.000Z0700", e.TS)
			if err != nil {
				b.Fatalf("log time %q: %v", e.TS, err)
			}
			return t
		}
	}
	b.Fatalf("no 'users page read' line for page 1 in %s", logPath)
	return time.Time{}
}

// benchUsers is the size of a benchmark's simulated tenant:
// MSAUDIT_BENCH_USERS, default 200,000.
func benchUsers(b *testing.B) int {
	v := os.Getenv("MSAUDIT_BENCH_USERS")
	if v == "" {
		return 200000
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		b.Fatalf("MSAUDIT_BENCH_USERS=%q: %v", v, err)
	}
	return n
}
