package runstore

import (
	"testing"
	"time"
)

func openIDs(t *testing.T, s *Store) map[string]bool {
	t.Helper()
	runs, err := s.OpenRuns(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ids := make(map[string]bool)
	for _, r := range runs {
		ids[r.ID] = true
	}
	return ids
}

// TestOpenRunsIndex: a run is in the open-runs index from its creation until
// it completes, is cancelled or purged, and again while a requeue reopens it.
func TestOpenRunsIndex(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, id := newRun(t, "a@x.com", "b@x.com")
	if !openIDs(t, s)[id] {
		t.Fatal("a new run is not open")
	}
	if err := s.FinishEnumeration(ctx, id, 2, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(ctx, id, 1, time.Now(), []Outcome{answer("a@x.com", StateAbsent)}); err != nil {
		t.Fatal(err)
	}
	if !openIDs(t, s)[id] {
		t.Fatal("a run with a pending address is not open")
	}
	if _, err := s.Record(ctx, id, 1, time.Now(), []Outcome{fail("b@x.com")}); err != nil {
		t.Fatal(err)
	}
	if openIDs(t, s)[id] {
		t.Fatal("a completed run (one answer, one dead letter) is still open")
	}
	n, err := s.Requeue(ctx, id, []string{"b@x.com"}, map[int][]byte{7: []byte(`{}`)}, time.Now().UnixMilli())
	if err != nil || n != 1 {
		t.Fatalf("requeue: %d, %v", n, err)
	}
	if !openIDs(t, s)[id] {
		t.Fatal("a requeued run is not open again")
	}
	if err := s.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	if openIDs(t, s)[id] {
		t.Fatal("a cancelled run is still open")
	}

	other := &Run{ID: NewRunID(time.Now()), TenantID: "t2", Source: "graph", Retention: time.Hour}
	if err := s.CreateRun(ctx, other, time.Now()); err != nil {
		t.Fatal(err)
	}
	if !openIDs(t, s)[other.ID] {
		t.Fatal("a new run is not open")
	}
	if err := s.Purge(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	if n := s.rdb.ZCard(ctx, OpenRunsKey).Val(); n != 0 {
		t.Errorf("after cancel and purge the index holds %d runs", n)
	}
}

// TestExtendingACompletedRunReopensIt: a submit --run-id that adds to a
// completed run makes it open again, with no expiry, until the new
// addresses are final.
func TestExtendingACompletedRunReopensIt(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, id := newRun(t, "a@x.com")
	if err := s.FinishEnumeration(ctx, id, 1, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(ctx, id, 1, time.Now(), []Outcome{answer("a@x.com", StateAbsent)}); err != nil {
		t.Fatal(err)
	}
	if ttl := s.rdb.TTL(ctx, runKeys(id).run).Val(); ttl <= 0 || openIDs(t, s)[id] {
		t.Fatalf("completed run: ttl %s, open %v", ttl, openIDs(t, s)[id])
	}
	if err := s.StartEnumeration(ctx, id, time.Now()); err != nil {
		t.Fatal(err)
	}
	r, _ := s.GetRun(ctx, id)
	if ttl := s.rdb.TTL(ctx, runKeys(id).run).Val(); ttl != -1 || !openIDs(t, s)[id] || !r.CompletedAt.IsZero() || r.Enumerated {
		t.Errorf("extended run: ttl %s, open %v, completed at %v, enumerated %v", ttl, openIDs(t, s)[id], r.CompletedAt, r.Enumerated)
	}
}

// TestCancelStartsTheRetention: a cancelled run's data expires like a
// completed one's.
func TestCancelStartsTheRetention(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, id := newRun(t, "a@x.com")
	if err := s.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n := lasting(t, s, id); n != 0 {
		t.Errorf("%d keys do not expire after cancel", n)
	}
}
