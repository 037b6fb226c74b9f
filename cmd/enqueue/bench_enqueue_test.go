package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
// users in <= 60 s, <= 300 MB, first task <= 2 s after the first page) with the real
// binaries: tenantsim serves MSAUDIT_BENCH_USERS users (default 200,000),
// 'enqueue submit' reads them over HTTPS and queues every address into a
// private redis-server. It reports the submit's wall time, its peak RSS
// (getrusage of the child), and the time from the first users page read to
// the first task on Redis. Run it with 'make bench-enqueue'; it is not part
// of 'make test' (benchmarks only run with -bench) nor of 'make bench' (which
// covers ./internal/...).
func BenchmarkSubmitLargeTenant(b *testing.B) {
	users := benchUsers(b)
	dir := b.TempDir()
	build := exec.Command("go", "build", "-o", dir+"/", "github.com/msaudit/msaudit/cmd/enqueue", "github.com/msaudit/msaudit/cmd/tenantsim")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	rs, err := redistest.Start()
	if err != nil {
		b.Fatal(err)
	}
	defer rs.Stop()

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

	for i := 0; i < b.N; i++ {
		opts, _ := redis.ParseURL(rs.URL)
		rdb := redis.NewClient(opts)
		rdb.FlushDB(context.Background())
		r := submitOnce(b, dir, rs.URL, rdb, ready.TenantID, ready.ClientID, ready.GraphURL, ready.AuthorityHost, secret)
		rdb.Close()
		if r.addresses != ready.Addresses {
			b.Errorf("queued %d addresses, the tenant has %d", r.addresses, ready.Addresses)
		}
		fmt.Printf("enqueue %d users, %d addresses, %d batches: %.1f s, peak RSS %.0f MB, first page → first task %d ms (bar: ≤ 60 s, ≤ 300 MB, ≤ 2000 ms)\n",
			r.users, r.addresses, r.batches, r.wall.Seconds(), float64(r.maxRSSKiB)/1024, r.firstTask.Milliseconds())
		b.ReportMetric(r.wall.Seconds(), "s/submit")
		b.ReportMetric(float64(r.maxRSSKiB)/1024, "peak-RSS-MB")
		b.ReportMetric(float64(r.firstTask.Milliseconds()), "first-task-ms")
	}
}

type submitFigures struct {
	users, addresses, batches int
	wall, firstTask           time.Duration
	maxRSSKiB                 int64
}

func submitOnce(b *testing.B, dir, redisURL string, rdb *redis.Client, tenant, client, graphURL, authority, secret string) submitFigures {
	b.Helper()
	cmd := exec.Command(filepath.Join(dir, "enqueue"), "submit", "--tenant-id", tenant, "--client-id", client,
		"--graph-url", graphURL, "--authority-host", authority, "-o", "json", "--log-format", "json", "--log-level", "debug")
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+filepath.Join(dir, "ca.pem"), "AZURE_CLIENT_SECRET="+secret, "REDIS_URL="+redisURL)
	logPath := filepath.Join(dir, "submit.log")
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
	fig := submitFigures{users: res.Users, addresses: res.Addresses, batches: res.Batches, wall: wall}
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
