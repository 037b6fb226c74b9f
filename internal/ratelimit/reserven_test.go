package ratelimit

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msaudit/msaudit/internal/redistest"
)

// TestReserveNTakesTheNextSlots: n slots in one round trip are the slots n
// Reserve calls would have given, one interval apart, and the schedule goes
// on after them.
func TestReserveNTakesTheNextSlots(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	l := newLimiter(t, rdb, Config{TenantRate: 50, MaxWait: time.Hour})
	ctx := t.Context()
	rs, err := l.ReserveN(ctx, "t", 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 5 {
		t.Fatalf("got %d slots, want 5", len(rs))
	}
	for i, r := range rs {
		want := time.Duration(i) * 20 * time.Millisecond
		if !r.OK || r.Rate != 50 || r.Wait < want-2*time.Millisecond || r.Wait > want+2*time.Millisecond {
			t.Errorf("slot %d = %+v, want OK about %s ahead", i, r, want)
		}
		if i > 0 && r.At-rs[i-1].At != 20000 {
			t.Errorf("slots %d and %d are %d us apart, want 20000", i-1, i, r.At-rs[i-1].At)
		}
	}
	next, _ := l.Reserve(ctx, "t")
	if next.At-rs[4].At != 20000 {
		t.Errorf("the next slot is %d us after the last, want 20000", next.At-rs[4].At)
	}
}

// TestReserveNStopsAtMaxWait: ReserveN takes no slot beyond MaxWait, and
// when even the first is, it returns the refusal alone, as Reserve would.
func TestReserveNStopsAtMaxWait(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	l := newLimiter(t, rdb, Config{TenantRate: 10, MaxWait: 250 * time.Millisecond})
	ctx := t.Context()
	rs, err := l.ReserveN(ctx, "t", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 || !rs[2].OK {
		t.Fatalf("got %+v, want the 3 slots within 250ms", rs)
	}
	rs, err = l.ReserveN(ctx, "t", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].OK || rs[0].Wait < 20*time.Millisecond || rs[0].Wait > 50*time.Millisecond {
		t.Fatalf("got %+v, want one refusal with about 50ms to wait", rs)
	}
	// The refusals took nothing: the next slot is still the 4th.
	if r, _ := l.Reserve(ctx, "t"); r.OK {
		t.Errorf("a slot was given beyond the max wait: %+v", r)
	}
}

// TestReserveNLoadsTheScript: after Redis lost its script cache (a restart,
// SCRIPT FLUSH) the pipelined scripts are sent again. The flush empties the
// whole server's cache: the test has a server of its own.
func TestReserveNLoadsTheScript(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: redistest.StartT(t).Addr})
	t.Cleanup(func() { rdb.Close() })
	l := newLimiter(t, rdb, Config{TenantRate: 100, MaxWait: time.Hour})
	ctx := t.Context()
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	rs, err := l.ReserveN(ctx, "t", 3)
	if err != nil || len(rs) != 3 {
		t.Fatalf("ReserveN after SCRIPT FLUSH = %+v, %v", rs, err)
	}
}

// TestReserveNWaitsOutALocalPause: a pause this process saw is waited out
// without a round trip, as in Reserve.
func TestReserveNWaitsOutALocalPause(t *testing.T) {
	t.Parallel()
	b := setupClock(t)
	l := b.limiter(t, Config{TenantRate: 1000, Initial: 40})
	r := b.reserve(t, l, "t")
	p := b.throttled(t, l, "t", r)
	rs, err := l.ReserveN(b.ctx, "t", 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].OK || rs[0].Wait <= 0 || rs[0].Wait > p {
		t.Fatalf("ReserveN in a pause = %+v, want a refusal for the rest of the %s pause", rs, p)
	}
}
