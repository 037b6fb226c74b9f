package e2e

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msaudit/msaudit/internal/redistest"
)

// BenchmarkRedisFootprint measures Redis memory per address of a run of the
// simulated tenant (FOOTPRINT_USERS users, default 200,000): INFO memory's
// used_memory above the empty server, once the run is queued (no worker
// yet) and once it is completed, with the share of asynq's keys and of the
// run store's. The bar: completed <= 400 bytes/address — the results must
// stay for the run's retention, the payloads of finished batches need not.
//
//	go test -run XXX -bench RedisFootprint -benchtime 1x ./internal/e2e
func BenchmarkRedisFootprint(b *testing.B) {
	users := 200000
	if v := os.Getenv("FOOTPRINT_USERS"); v != "" {
		var err error
		if users, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		footprint(b, users)
	}
}

func footprint(b *testing.B, users int) {
	dir := b.TempDir()
	srv, err := redistest.Start()
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	empty := usedMemory(b, rdb)

	s := startSim(b, dir, "--users", strconv.Itoa(users), "--seed", "17")
	env := s.env(srv.URL)
	start := time.Now()
	run := strings.TrimSpace(string(enqueue(b, env, "submit", "--tenant-id", s.TenantID, "--client-id", clientID,
		"--graph-url", s.GraphURL, "--authority-host", s.Authority)))
	st := getStatus(b, env, run)
	n := float64(st.AddressesTotal)
	queued := usedMemory(b, rdb) - empty
	qa, qs := keyShares(b, rdb)
	fmt.Printf("%d users, %d addresses submitted in %s\n", users, st.AddressesTotal, time.Since(start).Round(time.Second))
	fmt.Printf("queued:    %6.0f bytes/address (asynq %.0f, run store %.0f)\n", float64(queued)/n, qa/n, qs/n)

	start = time.Now()
	args := []string{"--concurrency", "32", "--tenant-rate", "100000", "--initial-rate", "100000", "--adaptive=false", "--log-level", "warn"}
	for i := 1; i <= 2; i++ {
		startWorker(b, dir, fmt.Sprintf("worker%d", i), s, srv.URL, args...)
	}
	st = waitDone(b, env, run, 30*time.Minute, nil)
	done := usedMemory(b, rdb) - empty
	ca, cs := keyShares(b, rdb)
	fmt.Printf("checked in %s\n", time.Since(start).Round(time.Second))
	fmt.Printf("completed: %6.0f bytes/address (asynq %.0f, run store %.0f)\n", float64(done)/n, ca/n, cs/n)
	b.ReportMetric(float64(queued)/n, "queued-B/address")
	b.ReportMetric(float64(done)/n, "completed-B/address")
	b.ReportMetric(n, "addresses")
}

// usedMemory is INFO memory's used_memory.
func usedMemory(b testing.TB, rdb *redis.Client) int64 {
	b.Helper()
	info, err := rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no used_memory in INFO memory")
	return 0
}

// keyShares sums MEMORY USAGE over asynq's keys and over the run store's,
// and logs the largest key families.
func keyShares(b *testing.B, rdb *redis.Client) (asynqBytes, storeBytes float64) {
	b.Helper()
	ctx := context.Background()
	families := map[string]int64{}
	count := map[string]int{}
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		n, err := rdb.MemoryUsage(ctx, k, 0).Result()
		if err != nil {
			b.Fatal(err)
		}
		fam := family(k)
		families[fam] += n
		count[fam]++
		if strings.HasPrefix(k, "asynq:") {
			asynqBytes += float64(n)
		} else {
			storeBytes += float64(n)
		}
	}
	if err := iter.Err(); err != nil {
		b.Fatal(err)
	}
	names := make([]string, 0, len(families))
	for f := range families {
		names = append(names, f)
	}
	sort.Slice(names, func(i, j int) bool { return families[names[i]] > families[names[j]] })
	for _, f := range names[:min(len(names), 8)] {
		fmt.Printf("  %-45s %7d keys %12d bytes\n", f, count[f], families[f])
	}
	return asynqBytes, storeBytes
}

// family replaces the run and task IDs of a key, and the numbers after a
// run ID (task and bucket numbers), by placeholders.
func family(k string) string {
	parts := strings.Split(k, ":")
	run := false
	for i, p := range parts {
		if len(p) == 23 && p[8] == 'T' && p[15] == 'Z' { // a run ID
			parts[i], run = "RUN", true
		} else if _, err := strconv.Atoi(p); err == nil && run {
			parts[i] = "N"
		}
	}
	return strings.Join(parts, ":")
}
