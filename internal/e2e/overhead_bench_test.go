package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/checker"
	"github.com/msaudit/msaudit/internal/ratelimit"
	"github.com/msaudit/msaudit/internal/runstore"
	workerpkg "github.com/msaudit/msaudit/internal/worker"
)

// roundTrips counts the round trips a client makes: one per command sent
// alone, one per pipeline or transaction.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmds)
	}
}

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWorkerOverhead is `make bench-overhead`: the worker overhead
// bar, at most 3 Redis round trips and 0.5 ms of CPU per address checked
// against an unthrottled local realm service. The run is submitted first;
// then a worker runs in this process, with every round trip of its Redis
// client (asynq's included) counted and the process's CPU time measured
// until the run completes. The simulator runs in its own process, so its
// CPU is not counted; the HTTPS client's is. Two regimes: as fast as the
// machine goes, and paced by the adaptive limiter at 200/s, where every
// request waits for its slot. Besides: what an idle worker costs (idle),
// and the rate one default worker reaches when the service answers in
// realistic time (latency, in latency_bench_test.go).
func BenchmarkWorkerOverhead(b *testing.B) {
	b.Run("idle", func(b *testing.B) {
		for b.Loop() {
			measureIdle(b)
		}
	})
	for _, c := range []struct {
		name     string
		n        int
		limits   ratelimit.Config
		describe string
	}{
		{"unpaced", 20000, ratelimit.Config{TenantRate: 1e6, MaxWait: 2 * time.Second}, "no rate limit"},
		{"paced", 4000, ratelimit.Config{TenantRate: 200, Initial: 200, Adaptive: true, MaxWait: 2 * time.Second}, "adaptive limiter at 200/s"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				measureOverhead(b, c.n, c.limits, c.describe)
			}
		})
	}
	b.Run("latency", func(b *testing.B) {
		for b.Loop() {
			measureLatency(b)
		}
	})
}

// asCmdWorker runs the rest of b with the GOMAXPROCS cmd/worker sets when
// the environment does not (workerpkg.Procs): the worker measured here runs
// in this process.
func asCmdWorker(b *testing.B) {
	if _, set := os.LookupEnv("GOMAXPROCS"); set {
		return
	}
	prev := runtime.GOMAXPROCS(workerpkg.Procs)
	b.Cleanup(func() { runtime.GOMAXPROCS(prev) })
}

// idleFor is how long the idle worker is watched: several periods of each
// of asynq's background loops.
const idleFor = 20 * time.Second

// measureIdle counts the round trips and CPU of a default worker with
// nothing to do, after its start-up.
func measureIdle(b *testing.B) {
	asCmdWorker(b)
	rdb, rt := countingClient(b, newRedis(b))
	cfg := workerpkg.DefaultConfig()
	cfg.RealmURL = "https://127.0.0.1:9/common/userrealm" // never asked: no run
	w, err := workerpkg.New(rdb, cfg, zap.NewNop(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Shutdown()
	time.Sleep(2 * time.Second)
	trips0, cpu0 := rt.n.Load(), cpuTime(b)
	time.Sleep(idleFor)
	trips, cpu := rt.n.Load()-trips0, cpuTime(b)-cpu0
	perSec := float64(trips) / idleFor.Seconds()
	fmt.Printf("\nidle worker, default settings, over %s: %.1f Redis round trips/s, CPU %.2f ms/s\n",
		idleFor, perSec, float64(cpu.Microseconds())/1000/idleFor.Seconds())
	b.ReportMetric(perSec, "roundtrips/s")
}

func plainClient(b *testing.B, redisURL string) *redis.Client {
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		b.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	b.Cleanup(func() { rdb.Close() })
	return rdb
}

// countingClient is a client of redisURL, with a pool as cmd/worker opens
// for the default concurrency, whose round trips are counted.
func countingClient(b *testing.B, redisURL string) (*redis.Client, *roundTrips) {
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		b.Fatal(err)
	}
	opts.PoolSize = workerpkg.DefaultConfig().Concurrency + 10
	rdb := redis.NewClient(opts)
	b.Cleanup(func() { rdb.Close() })
	rt := &roundTrips{}
	rdb.AddHook(rt)
	return rdb, rt
}

// submitGenerated starts a simulator and a Redis and submits a run of n
// generated addresses (prefix000000@contoso.com …) for the simulator's
// tenant, with no worker yet.
func submitGenerated(b *testing.B, prefix string, n int) (s *sim, redisURL, run string) {
	dir := b.TempDir()
	redisURL = newRedis(b)
	s = startSim(b, dir, "--users", "1", "--seed", "5")
	list := make([]string, n)
	for i := range list {
		list[i] = fmt.Sprintf("%s%06d@contoso.com", prefix, i)
	}
	file := filepath.Join(dir, "addresses.txt")
	if err := os.WriteFile(file, []byte(strings.Join(list, "\n")), 0o600); err != nil {
		b.Fatal(err)
	}
	run = strings.TrimSpace(string(enqueue(b, s.env(redisURL), "submit", "--tenant-id", s.TenantID, "--addresses-file", file)))
	return s, redisURL, run
}

func measureOverhead(b *testing.B, n int, limits ratelimit.Config, describe string) {
	asCmdWorker(b)
	s, redisURL, run := submitGenerated(b, "load", n)

	store := runstore.New(plainClient(b, redisURL))
	rdb, rt := countingClient(b, redisURL)
	tr, dials := simTransport(b, s)

	cfg := workerpkg.DefaultConfig()
	cfg.RealmURL, cfg.RealmTimeout, cfg.RealmClient = s.RealmURL, 5*time.Second, &http.Client{Transport: tr}
	cfg.Limits = limits
	cfg.Checker = checker.Config{MaxAttempts: 5, BackoffBase: 100 * time.Millisecond, BackoffMax: time.Second}
	cfg.ShutdownTimeout = 5 * time.Second
	cpu0, start := cpuTime(b), time.Now()
	w, err := workerpkg.New(rdb, cfg, zap.NewNop(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Shutdown()
	for {
		st, err := store.GetRun(context.Background(), run)
		if err != nil {
			b.Fatal(err)
		}
		if st.State() == runstore.StateCompleted {
			break
		}
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("run not completed: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	wall, cpu, trips := time.Since(start), cpuTime(b)-cpu0, rt.n.Load()

	perAddr := float64(cpu.Microseconds()) / 1000 / float64(n)
	fmt.Printf("\nworker overhead, %s: %d addresses in %s (%.0f/s), default settings (%d slots), unthrottled simulator\n",
		describe, n, wall.Round(time.Millisecond), float64(n)/wall.Seconds(), cfg.Concurrency)
	fmt.Printf("redis round trips: %.2f per address (bar <= 3); CPU: %.3f ms per address (bar <= 0.5); realm connections opened: %d\n",
		float64(trips)/float64(n), perAddr, dials.Load())
	b.ReportMetric(float64(trips)/float64(n), "roundtrips/address")
	b.ReportMetric(perAddr, "cpu-ms/address")
}
