package autoscale

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/msaudit/msaudit/internal/ratelimit"
	"github.com/msaudit/msaudit/internal/redistest"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/runstore/runstoretest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

func TestPlan(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		tenants  []Tenant
		open     int
		global   float64
		want     int
		wantSlot int
	}{
		{name: "no open run", want: 0},
		{name: "open run, nothing queued yet (enumerating)", open: 1, tenants: []Tenant{{Rate: 5}}, want: 1},
		{name: "5/s with 10,000 batches pending: the rate, not the queue",
			open: 1, tenants: []Tenant{{Rate: 5, Latency: 300 * time.Millisecond, Batches: 10000}}, want: 1, wantSlot: 3},
		{name: "100/s at 1s latency", open: 1, tenants: []Tenant{{Rate: 100, Latency: time.Second, Batches: 10000}}, want: 3, wantSlot: 27},
		{name: "only three batches left, retrying", open: 1, tenants: []Tenant{{Rate: 100, Latency: time.Second, Batches: 3}}, want: 1, wantSlot: 3},
		{name: "unknown latency counts as the default", open: 1, tenants: []Tenant{{Rate: 200, Batches: 1000}}, want: 2, wantSlot: 17},
		{name: "two tenants add up", open: 3, tenants: []Tenant{
			{Rate: 100, Latency: 400 * time.Millisecond, Batches: 1000}, {Rate: 100, Latency: 400 * time.Millisecond, Batches: 1000}},
			want: 3, wantSlot: 24},
		{name: "a global rate caps them together", open: 2, global: 20, tenants: []Tenant{
			{Rate: 100, Latency: 400 * time.Millisecond, Batches: 1000}, {Rate: 100, Latency: 400 * time.Millisecond, Batches: 1000}},
			want: 1, wantSlot: 6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Plan(c.tenants, c.open, 10, c.global)
			if got.DesiredWorkers != c.want || (c.wantSlot > 0 && got.UsableSlots != c.wantSlot) {
				t.Errorf("Plan = %+v, want %d workers, %d slots", got, c.want, c.wantSlot)
			}
		})
	}
}

// TestComputeFromTheRunStore: the figures come from the open runs in Redis
// and the limiter's rate; a run whose remaining addresses all wait for a
// retry still asks for a worker, and a completed run for none.
func TestComputeFromTheRunStore(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	store := runstore.New(rdb)
	lim, err := ratelimit.New(rdb, ratelimit.Config{TenantRate: 5, MaxWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	src := Source{Store: store, Rate: lim.Rate, SlotsPerWorker: 10,
		Latency: func(string) time.Duration { return 300 * time.Millisecond }}

	run := runstoretest.NewRun(t, store, runstoretest.Run{TenantID: "tenant-a", N: 2000, BatchSize: 5}).ID // 400 batches
	got, err := src.Compute(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got != (Result{DesiredWorkers: 1, UsableSlots: 3, OpenRuns: 1, OutstandingBatches: 400}) {
		t.Errorf("400 batches at 5/s: %+v", got)
	}

	// Every address fails once: all of them wait in asynq's retry set.
	var fails []runstore.Outcome
	for i := 0; i < 2000; i++ {
		fails = append(fails, runstore.Outcome{Address: runstoretest.Address(i), Detail: runstore.Detail{Error: "HTTP 503"}})
	}
	if _, err := store.Record(ctx, run, 5, time.Now(), fails); err != nil {
		t.Fatal(err)
	}
	if got, _ := src.Compute(ctx); got.DesiredWorkers < 1 {
		t.Errorf("only retrying batches left: %+v, want at least one worker", got)
	}

	// Answer everything: the run completes and nothing is left to scale for.
	var answers []runstore.Outcome
	for _, f := range fails {
		answers = append(answers, runstore.Outcome{Address: f.Address, Status: runstore.StateAbsent})
	}
	if _, err := store.Record(ctx, run, 5, time.Now(), answers); err != nil {
		t.Fatal(err)
	}
	if got, _ := src.Compute(ctx); got != (Result{}) {
		t.Errorf("after the run completed: %+v, want zero", got)
	}
}
