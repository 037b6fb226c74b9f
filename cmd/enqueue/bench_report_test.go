package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msaudit/msaudit/internal/redistest"
	"github.com/msaudit/msaudit/internal/runstore"
)

// BenchmarkReport200k measures 'enqueue report' of a completed run of
// MSAUDIT_BENCH_USERS users (default 200,000, three addresses each, 10 %
// with a consumer account, a few dead-lettered) in every format, 'enqueue
// compare' of the run with itself and 'enqueue deadletters --export', with
// the real binary against a private redis-server: wall time and peak RSS
// of the enqueue process itself (its rusage, as wait4 reports it), then a
// table of them. The bar is 30 s and 150 MB for each, and a peak that does
// not grow with the run.
func BenchmarkReport200k(b *testing.B) {
	users := benchUsers(b)
	dir := b.TempDir()
	if out, err := exec.Command("go", "build", "-o", dir+"/", "github.com/msaudit/msaudit/cmd/enqueue").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	rs, err := redistest.Start()
	if err != nil {
		b.Fatal(err)
	}
	defer rs.Stop()
	opts, _ := redis.ParseURL(rs.URL)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	start := time.Now()
	id, addrs := fillRun(b, runstore.New(rdb), users)
	fmt.Printf("stored a run of %d users, %d addresses in %.1f s\n", users, addrs, time.Since(start).Seconds())

	type measure struct {
		name       string
		wall, rssM float64
	}
	var table []measure
	for _, c := range []struct {
		name string
		args []string
	}{
		{"json", []string{"report", id, "--format", "json", "--out", filepath.Join(dir, "report.json")}},
		{"csv", []string{"report", id, "--format", "csv", "--out", filepath.Join(dir, "report.csv")}},
		{"contacts", []string{"report", id, "--format", "contacts", "--out", filepath.Join(dir, "contacts.csv")}},
		{"html", []string{"report", id, "--format", "html", "--out", filepath.Join(dir, "report.html")}},
		{"compare", []string{"compare", id, id, "-o", "json"}},
		{"deadletters", []string{"deadletters", id, "--export", filepath.Join(dir, "failed.txt")}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				cmd := exec.Command(filepath.Join(dir, "enqueue"), c.args...)
				cmd.Env = append(os.Environ(), "REDIS_URL="+rs.URL)
				cmd.Stdout = io.Discard
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				t0 := time.Now()
				if err := cmd.Run(); err != nil {
					b.Fatalf("%s: %v\n%s", c.name, err, stderr.Bytes())
				}
				wall := time.Since(t0).Seconds()
				rss := float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024
				table = append(table, measure{c.name, wall, rss})
				b.ReportMetric(wall, "s/report")
				b.ReportMetric(rss, "peak-RSS-MB")
			}
		})
	}
	fmt.Printf("\n%-12s %8s %8s %13s   (bar: <= 30 s, <= 150 MB)\n", "format", "users", "seconds", "peak RSS MB")
	for _, m := range table {
		fmt.Printf("%-12s %8d %8.1f %13.0f\n", m.name, users, m.wall, m.rssM)
	}
}

// fillRun stores a completed run of n users with three addresses each.
func fillRun(b *testing.B, s *runstore.Store, users int) (string, int) {
	ctx := context.Background()
	id := runstore.NewRunID(time.Now())
	now := time.Now()
	if err := s.CreateRun(ctx, &runstore.Run{ID: id, TenantID: "bench", Source: "graph", Retention: time.Hour}, now); err != nil {
		b.Fatal(err)
	}
	const chunk = 1000
	var addrs []string
	var pairs []runstore.Pair
	var outs []runstore.Outcome
	total := 0
	flush := func() {
		if err := s.Register(ctx, id, -1, nil, addrs, pairs, nil); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Record(ctx, id, 1, now, outs); err != nil {
			b.Fatal(err)
		}
		total += len(addrs)
		addrs, pairs, outs = addrs[:0], pairs[:0], outs[:0]
	}
	for u := 0; u < users; u++ {
		uid := fmt.Sprintf("%08x-0000-4000-8000-%012x", u, u)
		upn := fmt.Sprintf("first.last%d@contoso.com", u)
		for k, a := range []string{upn, fmt.Sprintf("fl%d@fabrikam.com", u), fmt.Sprintf("first%d@sales.contoso.com", u)} {
			addrs = append(addrs, a)
			pairs = append(pairs, runstore.Pair{Address: a, UserID: uid, UPN: upn, DisplayName: "Firstname Lastname " + strconv.Itoa(u), Mail: upn})
			o := runstore.Outcome{Address: a, Status: runstore.StateAbsent, Detail: runstore.Detail{RequestID: uid, CheckedAt: now}}
			switch {
			case (u*3+k)%10 == 0:
				o.Status = runstore.StatePresent
			case (u*3+k)%2000 == 1:
				o.Status, o.Detail.Error = "", "no answer: HTTP 500"
			}
			outs = append(outs, o)
		}
		if len(addrs) >= chunk {
			flush()
		}
	}
	if len(addrs) > 0 {
		flush()
	}
	if err := s.FinishEnumeration(ctx, id, int64(users), now); err != nil {
		b.Fatal(err)
	}
	return id, total
}
