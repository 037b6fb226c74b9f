package checker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/ratelimit"
	"github.com/msaudit/msaudit/internal/realm"
	"github.com/msaudit/msaudit/internal/realmtest"
	"github.com/msaudit/msaudit/internal/redistest"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/runstore/runstoretest"
)

// TestRealmFaultsEndDeadLettered runs the handler with the real realm client
// against each misbehaving endpoint and a real run store: every address
// takes its MaxAttempts requests, then is dead-lettered with an error naming
// the fault; none is ever recorded present or absent. Throttle faults are
// left out: they pause the tenant rather than fail the address
// (TestThrottleStopsTheBatch).
func TestRealmFaultsEndDeadLettered(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t) // once: each call flushes the database
	const maxAttempts = 2
	addrs := []string{"a@contoso.com", "b@contoso.com"}
	for _, f := range realmtest.Faults() {
		if f.Throttle {
			continue
		}
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			ep := f.Start(t)
			rc, err := realm.NewClient(ep.URL, ep.Client, realmtest.Timeout)
			if err != nil {
				t.Fatal(err)
			}
			st := runstore.New(rdb)
			run := runstoretest.NewRun(t, st, runstoretest.Run{Addresses: addrs, BatchSize: len(addrs)})
			id, p := run.ID, run.Batches[0]
			lim, err := ratelimit.New(rdb, ratelimit.Config{TenantRate: 1000, MaxWait: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			h, err := NewHandler(st, lim, rc, Config{MaxAttempts: maxAttempts, BackoffBase: time.Millisecond, BackoffMax: time.Millisecond}, zap.NewNop(), nil)
			if err != nil {
				t.Fatal(err)
			}

			// Each pass is one asynq delivery; the deferral's delay is
			// asynq's to wait, so the next delivery comes at once here.
			var err2 error
			for pass := 1; ; pass++ {
				err2 = h.ProcessTask(ctx, task(t, p))
				if errors.Is(err2, asynq.SkipRetry) || err2 == nil || pass > 2*maxAttempts {
					break
				}
				var d *deferError
				if !errors.As(err2, &d) || !IsFailure(err2) {
					t.Fatalf("pass %d: %v, want a failure deferral", pass, err2)
				}
			}
			if !errors.Is(err2, asynq.SkipRetry) {
				t.Fatalf("the batch ended with %v, want archived (SkipRetry) after its dead letters", err2)
			}
			dead, err := st.DeadLetters(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if len(dead) != len(addrs) {
				t.Fatalf("%d dead letters, want %d: %+v", len(dead), len(addrs), dead)
			}
			for _, d := range dead {
				if d.Attempts != maxAttempts {
					t.Errorf("%s: %d attempts, want %d", d.Address, d.Attempts, maxAttempts)
				}
				if !strings.Contains(d.Error, f.Want) {
					t.Errorf("%s: recorded error %q does not name the fault (want %q)", d.Address, d.Error, f.Want)
				}
			}
			r, err := st.GetRun(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if r.Absent != 0 || r.Present != 0 || r.DeadLettered != int64(len(addrs)) || r.State() != runstore.StateCompleted {
				t.Errorf("run %+v: want every address dead, none answered", r)
			}
			results, err := st.Results(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if len(results) != len(addrs) {
				t.Errorf("%d results, want %d", len(results), len(addrs))
			}
			for _, res := range results {
				if res.State != runstore.StateDead {
					t.Errorf("result %+v, want dead", res)
				}
			}
		})
	}
}

// hookedRealm answers as fakeRealm does and calls first at its first
// request.
type hookedRealm struct {
	fakeRealm
	once  sync.Once
	first func()
}

func (r *hookedRealm) Check(ctx context.Context, addr string) (realm.Result, error) {
	r.once.Do(r.first)
	return r.fakeRealm.Check(ctx, addr)
}

// TestPassStopsWhileAnswersCannotBeWritten: Redis runs out of memory at the
// pass's first request. The limiter still hands out slots (its scripts may
// write once they have), but the pass stops sending at the first answers
// the run store refuses, keeps those it has until Redis takes them, and
// hands the batch back with the rest pending.
func TestPassStopsWhileAnswersCannotBeWritten(t *testing.T) {
	t.Parallel()
	srv := redistest.StartT(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	var addrs []string
	for i := range 40 {
		addrs = append(addrs, fmt.Sprintf("u%d@x.com", i))
	}
	full, freed := make(chan struct{}), make(chan struct{})
	fr := &hookedRealm{fakeRealm: fakeRealm{calls: map[string]int{}}, first: func() {
		if err := rdb.ConfigSet(context.Background(), "maxmemory", "1").Err(); err != nil {
			t.Error(err)
		}
		close(full)
	}}
	// 20/s: the 40 requests would take two seconds; the first refused
	// write comes 200 ms after the first answer.
	h, p := setup(t, rdb, ratelimit.Config{TenantRate: 20, MaxWait: time.Second}, &fr.fakeRealm, addrs...)
	h.realm = fr
	go func() {
		<-full
		time.Sleep(time.Second) // while the pass holds its answers
		if err := rdb.ConfigSet(context.Background(), "maxmemory", "0").Err(); err != nil {
			t.Error(err)
		}
		close(freed)
	}()
	err := h.ProcessTask(t.Context(), task(t, p))
	<-freed
	var d *deferError
	if !errors.As(err, &d) || !strings.Contains(d.reason, "refuses the answers") {
		t.Fatalf("pass: %v, want a deferral for the refused answers", err)
	}
	sent := len(fr.calls)
	if sent >= len(addrs) {
		t.Fatalf("the pass sent all %d requests while Redis refused their answers", sent)
	}
	st, err := h.store.GetRun(context.Background(), p.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Absent != int64(sent) {
		t.Errorf("%d answers recorded of the %d got: want every one written once Redis took writes again", st.Absent, sent)
	}
	t.Logf("sent %d of %d before stopping", sent, len(addrs))
	if err := h.ProcessTask(t.Context(), task(t, p)); err != nil {
		t.Fatalf("next pass: %v", err)
	}
	for a, n := range fr.calls {
		if n != 1 {
			t.Errorf("%s asked %d times", a, n)
		}
	}
}
