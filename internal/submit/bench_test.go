package submit

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/redistest"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/tasks"
)

// BenchmarkSubmitUsers measures the Redis side of a submit, without Graph:
// MSAUDIT_BENCH_USERS users (default 200,000) of some two addresses each,
// with display names and mail, in pages of 999, into a redis-server of its
// own per submit. Besides time and allocations it reports the CPU time Redis
// spent (INFO cpu), which a submit waits for batch after batch. Profile the
// Go side with -cpuprofile and -memprofile.
func BenchmarkSubmitUsers(b *testing.B) {
	users := 200000
	if v := os.Getenv("MSAUDIT_BENCH_USERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("MSAUDIT_BENCH_USERS=%q: want a positive number", v)
		}
		users = n
	}
	pages := benchPages(users)
	addrs := 0
	for _, p := range pages {
		addrs += len(p)
	}
	b.ReportAllocs()
	var redisCPU time.Duration
	for b.Loop() {
		b.StopTimer()
		srv, err := redistest.Start()
		if err != nil {
			b.Fatal(err)
		}
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
		sub := &Submitter{Store: runstore.New(rdb), Queue: asynq.NewClientFromRedisClient(rdb), Log: zap.NewNop()}
		run := runstore.Run{ID: runstore.NewRunID(time.Now()), TenantID: "bench", Source: "graph", Retention: time.Hour}
		src := func(ctx context.Context, emit Emit) error {
			for _, p := range pages {
				if err := emit(999, p); err != nil {
					return err
				}
			}
			return nil
		}
		b.StartTimer()
		sum, err := sub.Submit(b.Context(), Request{Run: run, BatchSize: DefaultBatchSize}, src)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if sum.Addresses != int64(addrs) {
			b.Fatalf("%d addresses added, want %d", sum.Addresses, addrs)
		}
		cpu, err := redistest.CPU(b.Context(), rdb)
		if err != nil {
			b.Fatal(err)
		}
		redisCPU += cpu
		rdb.Close()
		srv.Stop()
		b.StartTimer()
	}
	b.ReportMetric(redisCPU.Seconds()/float64(b.N), "redis-cpu-s/op")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*addrs), "ns/address")
}

// benchPages is a tenant of n users in pages of 999: user IDs are GUIDs,
// each user has its UPN and one to three more addresses, a display name,
// and mail that is its UPN or another address, as a directory has them.
func benchPages(n int) [][]Candidate {
	first := []string{"Adele", "Bianca", "Christie", "Diego", "Élodie", "Henrietta", "Isaiah", "Valentina"}
	last := []string{"Vance", "Siciliani", "Nakamura", "Hightower", "Lindqvist", "Fernandez", "Osei"}
	var pages [][]Candidate
	var page []Candidate
	for i := range n {
		f, l := first[i%len(first)], last[i%len(last)]
		local := strings.ToLower(f+"."+l) + strconv.Itoa(i)
		owner := tasks.Owner{UserID: fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", i, i%65536, i%4096, i%4096, i), UPN: local + "@contoso.com"}
		name, mail := f+" "+l, owner.UPN
		if i%3 == 0 {
			name += " (Sales)"
			mail = strings.ToLower(f[:1]+l) + strconv.Itoa(i) + "@fabrikam.com"
		}
		addrs := []string{owner.UPN, mail}
		if mail == owner.UPN {
			addrs = addrs[:1]
		}
		if i%2 == 0 {
			addrs = append(addrs, local+"@sales.contoso.com")
		}
		if i%5 == 0 {
			addrs = append(addrs, strings.ToLower(f)+strconv.Itoa(i)+"@sales.contoso.com")
		}
		for _, a := range addrs {
			page = append(page, Candidate{Address: a, Owner: owner, DisplayName: name, Mail: mail})
		}
		if (i+1)%999 == 0 {
			pages, page = append(pages, page), nil
		}
	}
	if len(page) > 0 {
		pages = append(pages, page)
	}
	return pages
}
