package runstore

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msaudit/msaudit/internal/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

func newRun(t *testing.T, addrs ...string) (*Store, string) {
	t.Helper()
	return newRunIn(t, addrs...)
}

func newRunB(b *testing.B) (*Store, string) { return newRunIn(b) }

func newRunIn(t testing.TB, addrs ...string) (*Store, string) {
	t.Helper()
	ctx := t.Context()
	s := New(redistest.Client(t))
	id := NewRunID(time.Now())
	if err := s.CreateRun(ctx, &Run{ID: id, TenantID: "t1", Source: "graph", Retention: time.Hour}, time.Now()); err != nil {
		t.Fatal(err)
	}
	var pairs []Pair
	for _, a := range addrs {
		pairs = append(pairs, Pair{Address: a, UserID: "u-" + a, UPN: a})
	}
	if err := s.Register(ctx, id, 0, []byte(`{}`), addrs, pairs, nil); err != nil {
		t.Fatal(err)
	}
	return s, id
}

func answer(a string, st AddressStatus) Outcome {
	return Outcome{Address: a, Status: st, Detail: Detail{RequestID: "rq-" + a, CheckedAt: time.Now()}}
}

func fail(a string) Outcome {
	return Outcome{Address: a, Detail: Detail{CheckedAt: time.Now(), Error: "no answer: HTTP 500"}}
}

func TestRecordCountsEachAddressOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, id := newRun(t, "a@x.com", "b@x.com", "c@x.com")
	outs := []Outcome{answer("a@x.com", StatePresent), answer("b@x.com", StateAbsent)}
	for i := 0; i < 3; i++ { // a re-delivered batch records the same outcomes again
		if _, err := s.Record(ctx, id, 3, time.Now(), outs); err != nil {
			t.Fatal(err)
		}
	}
	r, _ := s.GetRun(ctx, id)
	if r.Checked != 2 || r.Present != 1 || r.Absent != 1 || r.AddressesTotal != 3 {
		t.Fatalf("counters = %+v", r)
	}
	if r.State() != StateIncomplete {
		t.Errorf("state = %s before enumeration finished and without a lock", r.State())
	}
}

func TestFailuresDeadLetterAndComplete(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, id := newRun(t, "a@x.com", "b@x.com")
	if err := s.FinishEnumeration(ctx, id, 2, time.Now()); err != nil {
		t.Fatal(err)
	}
	st, err := s.Record(ctx, id, 3, time.Now(), []Outcome{fail("a@x.com"), fail("b@x.com")})
	if err != nil || !st[0].Pending() || st[0].Attempts != 1 {
		t.Fatalf("after one failure: %+v, %v", st, err)
	}
	r, _ := s.GetRun(ctx, id)
	if r.FailedPending != 2 {
		t.Errorf("failed_pending = %d, want 2", r.FailedPending)
	}
	// b answers on its second attempt; a fails twice more and is dead.
	s.Record(ctx, id, 3, time.Now(), []Outcome{fail("a@x.com"), answer("b@x.com", StateAbsent)})
	st, _ = s.Record(ctx, id, 3, time.Now(), []Outcome{fail("a@x.com")})
	if st[0].State != StateDead || st[0].Attempts != 3 {
		t.Fatalf("a = %+v, want dead after 3 attempts", st[0])
	}
	r, _ = s.GetRun(ctx, id)
	if r.DeadLettered != 1 || r.Checked != 1 || r.FailedPending != 0 || r.State() != StateCompleted {
		t.Fatalf("run = %+v state %s", r, r.State())
	}
	// A late duplicate of a failure changes nothing.
	s.Record(ctx, id, 3, time.Now(), []Outcome{fail("a@x.com"), fail("b@x.com")})
	r2, _ := s.GetRun(ctx, id)
	if r2.DeadLettered != 1 || r2.Checked != 1 || r2.FailedPending != 0 {
		t.Fatalf("duplicate changed counters: %+v", r2)
	}
	dead, _ := s.DeadLetters(ctx, id)
	if len(dead) != 1 || dead[0].Address != "a@x.com" || dead[0].Attempts != 3 || dead[0].Error != "no answer: HTTP 500" {
		t.Fatalf("dead letters = %+v", dead)
	}
	k := keysFor(id)
	ttl := s.rdb.TTL(ctx, k.bucket(famState, k.bucketOf("a@x.com"))).Val()
	if ttl <= 0 || ttl > time.Hour {
		t.Errorf("retention TTL after completion = %s, want (0, 1h]", ttl)
	}
	if n := lasting(t, s, id); n != 0 {
		t.Errorf("%d keys of the completed run do not expire", n)
	}
}

func TestRequeueIsAtomicAndIdempotent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, id := newRun(t, "a@x.com")
	s.FinishEnumeration(ctx, id, 1, time.Now())
	s.Record(ctx, id, 1, time.Now(), []Outcome{fail("a@x.com")})
	batches := map[int][]byte{7: []byte(`{"batch":7}`)}
	n, err := s.Requeue(ctx, id, []string{"a@x.com"}, batches, time.Now().UnixMilli())
	if err != nil || n != 1 {
		t.Fatalf("first requeue = %d, %v", n, err)
	}
	n, _ = s.Requeue(ctx, id, []string{"a@x.com"}, map[int][]byte{8: []byte(`{"batch":8}`)}, time.Now().UnixMilli())
	if n != 0 {
		t.Fatalf("second requeue moved %d", n)
	}
	unsent, _ := s.Unsent(ctx, id)
	if _, second := unsent[8]; second || string(unsent[7]) != `{"batch":7}` {
		t.Fatalf("unsent = %v", unsent)
	}
	r, _ := s.GetRun(ctx, id)
	if r.DeadLettered != 0 || r.State() != StateRunning || s.rdb.TTL(ctx, runKeys(id).run).Val() != -1 {
		t.Fatalf("after requeue: %+v state %s", r, r.State())
	}
	st, _ := s.Record(ctx, id, 1, time.Now(), []Outcome{answer("a@x.com", StatePresent)})
	if st[0].State != StatePresent || st[0].Attempts != 1 {
		t.Fatalf("requeued address = %+v, want present on a fresh first attempt", st[0])
	}
}

func TestResultsListEveryPair(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, id := newRun(t, "a@x.com", "b@x.com")
	s.Register(ctx, id, -1, nil, nil, []Pair{{Address: "a@x.com", UserID: "u2", UPN: "second@x.com"}}, []int{0})
	s.Record(ctx, id, 3, time.Now(), []Outcome{answer("a@x.com", StatePresent)})
	res, err := s.Results(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("%d results, want 3: %+v", len(res), res)
	}
	if res[0].Address != "a@x.com" || res[1].Address != "a@x.com" || res[0].State != StatePresent || res[1].State != StatePresent {
		t.Errorf("shared address rows = %+v %+v", res[0], res[1])
	}
	if res[2].State != "pending" || res[2].RequestID != "" {
		t.Errorf("unchecked row = %+v", res[2])
	}
	if unsent, _ := s.Unsent(ctx, id); len(unsent) != 0 {
		t.Errorf("batch 0 not marked sent: %v", unsent)
	}
}

func TestLockIsExclusive(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, id := newRun(t, "a@x.com")
	if err := s.Lock(ctx, id, "one"); err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(ctx, id, "two"); !errors.Is(err, ErrSubmitRunning) {
		t.Fatalf("second lock: %v", err)
	}
	if r, _ := s.GetRun(ctx, id); r.State() != StateEnumerating {
		t.Errorf("state with lock held = %s", r.State())
	}
	s.Unlock(ctx, id, "two") // not the holder: no effect
	if err := s.RefreshLock(ctx, id, "one"); err != nil {
		t.Fatal(err)
	}
	s.Unlock(ctx, id, "one")
	if err := s.Lock(ctx, id, "two"); err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
}

func TestPurgeAndUnknownRun(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, id := newRun(t, "a@x.com")
	if err := s.Purge(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRun(ctx, id); !errors.Is(err, ErrRunNotFound) {
		t.Fatalf("after purge: %v", err)
	}
	if n := s.rdb.Exists(ctx, keysFor(id).all()...).Val(); n != 0 {
		t.Errorf("%d keys left after purge", n)
	}
	if runs, _ := s.ListRuns(ctx); len(runs) != 0 {
		t.Errorf("runs after purge = %v", runs)
	}
}

// keysFor is the keys of run id with the bucket count of a new run, so
// that a test can look for them after the run is gone.
func keysFor(id string) keys {
	k := runKeys(id)
	k.buckets = defaultBuckets
	return k
}

// lasting counts the run's keys that exist and do not expire.
func lasting(t *testing.T, s *Store, id string) int {
	t.Helper()
	ctx := t.Context()
	all := keysFor(id).all()
	pipe := s.rdb.Pipeline()
	ttls := make([]*redis.DurationCmd, len(all))
	for i, key := range all {
		ttls[i] = pipe.TTL(ctx, key)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	for i, c := range ttls {
		if c.Val() == -1 {
			t.Logf("%s does not expire", all[i])
			n++
		}
	}
	return n
}
