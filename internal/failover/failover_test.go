package failover

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

var ctx = context.Background()

// look checks once and fails the test on error.
func look(t *testing.T, w *Watch, now time.Time) Record {
	t.Helper()
	rec, err := w.Check(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestNothingChanges: looks at a Redis that keeps its writes notice nothing.
func TestNothingChanges(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	a, b := NewWatch(rdb, zap.NewNop()), NewWatch(rdb, zap.NewNop())
	now := time.Now()
	for i := 0; i < 5; i++ {
		look(t, a, now)
		if rec := look(t, b, now); rec != (Record{}) {
			t.Fatalf("record %+v, want none", rec)
		}
	}
	if a.Failovers() != 0 || b.Failovers() != 0 {
		t.Errorf("failovers noticed: %d and %d, want none", a.Failovers(), b.Failovers())
	}
}

// TestRestartIsNoticed: a Redis restarted (the same data, a new server
// process) is a failover: the watch that notices records it, another
// learns it from the record, and the open runs are due for a reconcile
// Settle later.
func TestRestartIsNoticed(t *testing.T) {
	t.Parallel()
	srv := redistest.StartT(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	a, b := NewWatch(rdb, zap.NewNop()), NewWatch(rdb, zap.NewNop())
	t0 := time.UnixMilli(time.Now().UnixMilli())
	look(t, a, t0)
	look(t, b, t0)
	if err := rdb.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	t1 := t0.Add(time.Second)
	rec := look(t, a, t1)
	if want := (Record{Epoch: 1, NoticedAt: t1}); rec != want || a.Failovers() != 1 {
		t.Fatalf("after a restart: record %+v, %d failovers noticed; want %+v, 1", rec, a.Failovers(), want)
	}
	if rec.Due(t1.Add(Settle-time.Millisecond), Settle) || !rec.Due(t1.Add(Settle), Settle) {
		t.Errorf("record %+v: due before %s or not then", rec, Settle)
	}
	// b sees the new server as well, and the record: it does not record
	// the same failover again.
	if rec := look(t, b, t1.Add(time.Second)); rec.Epoch != 1 || !rec.NoticedAt.Equal(t1) || b.Failovers() != 1 {
		t.Fatalf("the other watch: record %+v, %d failovers noticed; want epoch 1 noticed at %s, 1", rec, b.Failovers(), t1)
	}
	if err := MarkReconciled(ctx, rdb, 1); err != nil {
		t.Fatal(err)
	}
	for _, w := range []*Watch{a, b} {
		if rec := look(t, w, t1.Add(time.Hour)); rec.Due(t1.Add(time.Hour), Settle) || w.Failovers() != 1 {
			t.Errorf("after the reconcile: record %+v due, %d failovers noticed", rec, w.Failovers())
		}
	}
}

// TestRollbackInPlaceIsNoticed: a copy restored into the same server
// process (the same run_id) is older than what a watch saw last: its
// marker went back. A watch that saw nothing of what was lost learns it
// from the record.
func TestRollbackInPlaceIsNoticed(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	a, b := NewWatch(rdb, zap.NewNop()), NewWatch(rdb, zap.NewNop())
	now := time.UnixMilli(time.Now().UnixMilli())
	look(t, b, now)
	look(t, a, now)
	look(t, a, now)
	// The copy from before a's last look: the marker b saw.
	if err := rdb.Set(ctx, markerKey, 1, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if rec := look(t, a, now); rec.Epoch != 1 || a.Failovers() != 1 {
		t.Fatalf("after a rollback: record %+v, %d failovers noticed; want epoch 1, 1", rec, a.Failovers())
	}
	if rec := look(t, b, now); rec.Epoch != 1 || b.Failovers() != 1 {
		t.Fatalf("the other watch: record %+v, %d failovers noticed; want epoch 1, 1", rec, b.Failovers())
	}
	// A rollback that takes the record back is noticed too, and recorded
	// after the epoch the watch knew.
	if err := rdb.Del(ctx, recordKey).Err(); err != nil {
		t.Fatal(err)
	}
	if rec := look(t, b, now); rec.Epoch != 2 || b.Failovers() != 2 {
		t.Fatalf("after the record's rollback: record %+v, %d failovers noticed; want epoch 2, 2", rec, b.Failovers())
	}
}

// TestLock: one holder at a time; it renews its lease and gives it up.
func TestLock(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	a, b := NewLock(rdb, "a", time.Minute), NewLock(rdb, "b", time.Minute)
	hold := func(l *Lock) bool {
		ok, err := l.Hold(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !hold(a) {
		t.Fatal("a could not take the free lease")
	}
	if !hold(a) {
		t.Fatal("a could not renew its lease")
	}
	if hold(b) {
		t.Fatal("b took a's lease")
	}
	if err := b.Release(ctx); err != nil || hold(b) {
		t.Fatalf("b released a's lease (%v)", err)
	}
	if err := a.Release(ctx); err != nil || !hold(b) {
		t.Fatalf("b could not take the lease a released (%v)", err)
	}
}

// TestSettledAt: the work in flight settles Settle after the later of the
// server's start and the last failover noticed.
func TestSettledAt(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	now := time.UnixMilli(time.Now().UnixMilli())
	up := rdb.Info(ctx, "server").Val()
	uptime, err := time.ParseDuration(infoField(up, "uptime_in_seconds") + "s")
	if err != nil {
		t.Fatal(err)
	}
	at, err := SettledAt(ctx, rdb, now)
	if err != nil {
		t.Fatal(err)
	}
	// The uptime is in whole seconds, and may tick meanwhile.
	if want := now.Add(Settle - uptime); at.After(want) || at.Before(want.Add(-time.Second)) {
		t.Errorf("with no failover noticed: settled at %s, want %s (the server started %s ago)", at, want, uptime)
	}
	noticed := now.Add(10 * time.Second)
	if _, err := announce(ctx, rdb, 0, noticed); err != nil {
		t.Fatal(err)
	}
	if at, err := SettledAt(ctx, rdb, now); err != nil || !at.Equal(noticed.Add(Settle)) {
		t.Errorf("settled at %s (%v), want %s", at, err, noticed.Add(Settle))
	}
}

// TestWithoutInfo: where an ACL refuses INFO, the marker and the record
// still notice a rollback, and SettledAt goes by the record.
func TestWithoutInfo(t *testing.T) {
	t.Parallel()
	srv := redistest.StartT(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { admin.Close() })
	if err := admin.Do(ctx, "ACL", "SETUSER", "worker", "on", ">pw", "~*", "&*", "+@all", "-info").Err(); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "worker", Password: "pw"})
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Info(ctx, "server").Err(); err == nil {
		t.Fatal("the ACL lets INFO through")
	}
	w := NewWatch(rdb, zap.NewNop())
	now := time.UnixMilli(time.Now().UnixMilli())
	look(t, w, now)
	look(t, w, now)
	if err := admin.Del(ctx, markerKey).Err(); err != nil {
		t.Fatal(err)
	}
	if rec := look(t, w, now); rec.Epoch != 1 || w.Failovers() != 1 {
		t.Fatalf("after a rollback: record %+v, %d failovers noticed; want epoch 1, 1", rec, w.Failovers())
	}
	if at, err := SettledAt(ctx, rdb, now); err != nil || !at.Equal(now.Add(Settle)) {
		t.Errorf("settled at %s (%v), want %s", at, err, now.Add(Settle))
	}
}
