package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/tasks"
)

// simCounters are the simulator's realm counters at one moment.
type simCounters struct {
	at                           time.Time
	requests, answered, throttle int64
}

func (s *sim) counters(t testing.TB) simCounters {
	resp, err := s.admin(t).Get(s.URL + "/_sim/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Requests  int64 `json:"realm_requests"`
		Answered  int64 `json:"realm_answered"`
		Throttled int64 `json:"realm_throttled"`
	}
	json.NewDecoder(resp.Body).Decode(&st)
	return simCounters{at: time.Now(), requests: st.Requests, answered: st.Answered, throttle: st.Throttled}
}

// throttleResult is one configuration's figures.
type throttleResult struct {
	workers            int
	wholeGoodput       float64 // answered/s over the whole checking phase
	steadyGoodput      float64 // answered/s between 20% and 90% of the run
	throttledShare     float64
	lost               int64
	wall               time.Duration
	requests, answered int64
}

// runThrottle audits n generated addresses with the given worker count
// against a simulator of capacity c (rate 0: unthrottled) and returns the
// figures. extra are worker flags.
func runThrottle(b *testing.B, c float64, n, workers int, extra ...string) throttleResult {
	dir := b.TempDir()
	redisURL := newRedis(b)
	simArgs := []string{"--users", "1", "--seed", "5"}
	if c > 0 {
		simArgs = append(simArgs, "--realm-rate", fmt.Sprint(c), "--realm-burst", fmt.Sprint(int(c)), "--realm-penalty", "2s")
	}
	s := startSim(b, dir, simArgs...)
	list := make([]string, n)
	for i := range list {
		list[i] = fmt.Sprintf("bench%06d@contoso.com", i)
	}
	file := filepath.Join(dir, "addresses.txt")
	os.WriteFile(file, []byte(strings.Join(list, "\n")), 0o600)
	env := s.env(redisURL)
	args := append([]string{"--concurrency", "4", "--max-attempts", "20", "--backoff-base", "200ms", "--backoff-max", "5s"}, extra...)
	for i := 0; i < workers; i++ {
		startWorker(b, dir, fmt.Sprintf("worker%d", i), s, redisURL, args...)
	}
	start := time.Now()
	run := strings.TrimSpace(string(enqueue(b, env, "submit", "--tenant-id", "bench-tenant", "--addresses-file", file)))
	// Poll the run store directly: spawning the CLI every second would take
	// CPU from the workers being measured on a small machine.
	opts, _ := redis.ParseURL(redisURL)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	store := runstore.New(rdb)
	var samples []simCounters
	var st *runstore.Run
	trace := os.Getenv("THROTTLE_TRACE") != ""
	for {
		samples = append(samples, s.counters(b))
		if trace && len(samples) > 1 {
			traceLine(rdb, start, samples[len(samples)-2], samples[len(samples)-1])
		}
		var err error
		if st, err = store.GetRun(context.Background(), run); err != nil {
			b.Fatal(err)
		}
		if st.State() == runstore.StateCompleted {
			break
		}
		if time.Since(start) > 15*time.Minute {
			b.Fatalf("run not completed: %+v", st)
		}
		time.Sleep(time.Second)
	}
	wall := time.Since(start)
	last := s.counters(b)
	samples = append(samples, last)
	// The checking phase starts at the first request the simulator saw.
	var first simCounters
	for _, sm := range samples {
		if sm.requests > 0 {
			first = sm
			break
		}
	}
	at := func(frac float64) simCounters {
		for _, sm := range samples {
			if float64(sm.answered) >= frac*float64(n) {
				return sm
			}
		}
		return last
	}
	lo, hi := at(0.2), at(0.9)
	r := throttleResult{workers: workers, wall: wall, requests: last.requests, answered: last.answered,
		lost: int64(n) - st.Checked - st.DeadLettered}
	if d := last.at.Sub(first.at).Seconds(); d > 0 {
		r.wholeGoodput = float64(last.answered-first.answered) / d
	}
	if d := hi.at.Sub(lo.at).Seconds(); d > 0 {
		r.steadyGoodput = float64(hi.answered-lo.answered) / d
	}
	if last.requests > 0 {
		r.throttledShare = float64(last.throttle) / float64(last.requests)
	}
	return r
}

// BenchmarkThrottle is `make bench-throttle`: the throttle-seeking bar
// (goodput >= 0.9·C with <= 2% of requests throttled, at 1 to 8
// worker processes, nothing lost) and the limiter accuracy bar (8 processes
// at a fixed ceiling R: aggregate <= 1.05·R). C is hidden from the workers:
// their ceiling is 10·C and they start from the default initial rate (1/s).
// Each run is about three minutes of work at C; "steady" goodput is measured
// between 20 % and 90 % of the addresses answered, after slow start, and
// "whole" from the first request to the end.
// THROTTLE_CAPACITIES and THROTTLE_WORKERS (comma lists) narrow the sweep;
// THROTTLE_TRACE=1 prints every second of each run.
func BenchmarkThrottle(b *testing.B) {
	caps := envInts(b, "THROTTLE_CAPACITIES", []int{20, 100})
	workers := envInts(b, "THROTTLE_WORKERS", []int{1, 2, 4, 8})
	// Each configuration is a sub-benchmark so that its processes (workers,
	// simulator) stop before the next one starts.
	for _, ci := range caps {
		c := float64(ci)
		n := int(c * 180) // three minutes of work at capacity
		fmt.Printf("\ncapacity C = %.0f/s (burst %.0f, 2s penalty window), %d addresses\n", c, c, n)
		fmt.Printf("%-8s %-16s %-16s %-10s %-5s %s\n", "workers", "goodput/C whole", "goodput/C steady", "throttled", "lost", "wall")
		for _, w := range workers {
			b.Run(fmt.Sprintf("C=%d/workers=%d", ci, w), func(b *testing.B) {
				for b.Loop() {
					r := runThrottle(b, c, n, w, "--tenant-rate", fmt.Sprint(10*c))
					fmt.Printf("%-8d %-16.3f %-16.3f %-10s %-5d %s\n", w, r.wholeGoodput/c, r.steadyGoodput/c,
						fmt.Sprintf("%.2f%%", 100*r.throttledShare), r.lost, r.wall.Round(time.Second))
					b.ReportMetric(r.steadyGoodput/c, "goodput/C")
					b.ReportMetric(100*r.throttledShare, "%throttled")
				}
			})
		}
	}
	b.Run("accuracy", func(b *testing.B) {
		const rate = 100.0
		for b.Loop() {
			r := runThrottle(b, 0, int(rate*30), 8, "--tenant-rate", fmt.Sprint(rate), "--adaptive=false")
			fmt.Printf("\nlimiter accuracy: 8 worker processes, fixed ceiling R = %.0f/s, unthrottled simulator:\n", rate)
			fmt.Printf("aggregate %.1f/s whole run, %.1f/s steady: %.3f·R (bar <= 1.05), lost %d\n",
				r.wholeGoodput, r.steadyGoodput, r.steadyGoodput/rate, r.lost)
			b.ReportMetric(r.steadyGoodput/rate, "aggregate/R")
		}
	})
}

// traceLine prints one second of a run (THROTTLE_TRACE=1): the simulator's
// answers and throttles in it, the tenant's limiter state, and the batches
// pending, active and deferred over all lanes.
func traceLine(rdb *redis.Client, start time.Time, prev, cur simCounters) {
	ctx := context.Background()
	rl, _ := rdb.HMGet(ctx, "msaudit:rl:tenant:bench-tenant", "rate", "est", "pause", "epoch").Result()
	var pending, active, retry int64
	for q := range tasks.Queues() {
		pending += rdb.LLen(ctx, "asynq:{"+q+"}:pending").Val()
		active += rdb.LLen(ctx, "asynq:{"+q+"}:active").Val()
		retry += rdb.ZCard(ctx, "asynq:{"+q+"}:retry").Val()
	}
	dt := cur.at.Sub(prev.at).Seconds()
	fmt.Printf("t=%5.1fs answered/s %6.1f throttled %3d rate %v est %v pause %v epoch %v batches pending %d active %d deferred %d\n",
		cur.at.Sub(start).Seconds(), float64(cur.answered-prev.answered)/dt, cur.throttle-prev.throttle,
		rl[0], rl[1], rl[2], rl[3], pending, active, retry)
}

func envInts(b *testing.B, name string, def []int) []int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("%s: %q is not a positive integer", name, f)
		}
		out = append(out, n)
	}
	return out
}
