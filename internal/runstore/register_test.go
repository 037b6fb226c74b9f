package runstore

import (
	"testing"
)

// usersStored counts the elements of every users bucket of the run.
func usersStored(t *testing.T, s *Store, id string) int64 {
	t.Helper()
	k, err := s.keysOf(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for i := 0; i < k.buckets; i++ {
		n += s.rdb.LLen(t.Context(), k.bucket(famUsers, i)).Val()
	}
	return n
}

// TestRegisterBatchWritesEachUserOnce: of the pairs of one user, the last
// not UserKept gives its value; UserKept alone leaves the user as stored;
// UserAdd and UserSet agree on what a report reads.
func TestRegisterBatchWritesEachUserOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, id := newRun(t)
	ann := func(a, name string) Pair {
		return Pair{Address: a, UserID: "6b1c9a52-3f0e-4d7a-b8c2-1e5f9a0d3c47", UPN: "ann@x.com", DisplayName: name, Mail: "ann@x.com"}
	}
	bob := func(a, name string) Pair { return Pair{Address: a, UserID: "bob", UPN: "bob@x.com", DisplayName: name} }
	first := Registration{Batch: 1, Payload: []byte(`{}`), Addrs: []string{"a@x.com", "b@x.com", "c@x.com"},
		Pairs: []Pair{ann("a@x.com", "Ann"), ann("b@x.com", "Ann"), bob("c@x.com", "Bob"), bob("b@x.com", "Bob")},
		Users: []UserWrite{UserAdd, UserKept, UserAdd, UserKept}}
	if err := s.RegisterBatch(ctx, id, first); err != nil {
		t.Fatal(err)
	}
	// The next call: Ann's pairs carry a new name but are UserKept, Bob
	// is renamed twice (the last wins), c gets Ann as a second owner.
	next := Registration{Batch: -1, Pairs: []Pair{ann("c@x.com", "Ann B."), bob("c@x.com", "Robert"), bob("b@x.com", "Bobby")},
		Users: []UserWrite{UserKept, UserSet, UserSet}, Sent: []int{1}}
	if err := s.RegisterBatch(ctx, id, next); err != nil {
		t.Fatal(err)
	}
	res, err := s.Results(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[string]string)
	for _, r := range res {
		got[r.Address+" "+r.UPN] = r.DisplayName
	}
	want := map[string]string{"a@x.com ann@x.com": "Ann", "b@x.com ann@x.com": "Ann", "b@x.com bob@x.com": "Bobby",
		"c@x.com bob@x.com": "Bobby", "c@x.com ann@x.com": "Ann"}
	if len(got) != len(want) || len(res) != len(want) {
		t.Errorf("results %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: display name %q, want %q", k, got[k], v)
		}
	}
	if n := usersStored(t, s, id); n != 2 {
		t.Errorf("%d users stored, want 2", n)
	}
	if unsent, _ := s.Unsent(ctx, id); unsent[1] != nil {
		t.Errorf("batch 1 still unsent: %v", unsent)
	}
	if r, _ := s.GetRun(ctx, id); r.AddressesTotal != 3 {
		t.Errorf("addresses_total %d, want 3", r.AddressesTotal)
	}
}

// TestArrangeSparesTheLookups: a new address's pairs become one owners
// value, each reference once; only the pairs of addresses the run held
// before are merged, and only users said UserSet are looked up.
func TestArrangeSparesTheLookups(t *testing.T) {
	t.Parallel()
	k := runKeys("r1")
	k.buckets = 16
	p := func(a, u string) Pair { return Pair{Address: a, UserID: u, UPN: u + "@x.com"} }
	r := Registration{Batch: 7, Addrs: []string{"a@x.com", "b@x.com"},
		Pairs: []Pair{p("a@x.com", "u1"), p("a@x.com", "u2"), p("a@x.com", "u1"), p("old@x.com", "u2"), p("b@x.com", "u3"), p("b@x.com", "u4")},
		Users: []UserWrite{UserAdd, UserAdd, UserKept, UserKept, UserSet, UserKept}}
	a, err := arrange(k, r)
	if err != nil {
		t.Fatal(err)
	}
	counts := a.argv[3:8] // na, nm, nn, nu, ns
	if want := []any{2, 1, 2, 1, 0}; !equalAny(counts, want) {
		t.Fatalf("na, nm, nn, nu, ns = %v, want %v", counts, want)
	}
	ref := func(u string) string { r, _ := encodeRef(u); return r }
	if a.argv[8+2] != ref("u1")+ref("u2") || a.argv[8+5] != ref("u3")+ref("u4") {
		t.Errorf("owners values %q and %q", a.argv[10], a.argv[13])
	}
	if a.argv[14+1] != "old@x.com" || a.argv[14+2] != ref("u2") {
		t.Errorf("merged pair %v", a.argv[14:17])
	}
	// The keys of each new address: its state bucket, then its owners bucket.
	i := a.argv[8].(int)
	if n := k.bucketOf("a@x.com"); a.keys[i-1] != k.bucket(famState, n) || a.keys[i] != k.bucket(famOwners, n) {
		t.Errorf("keys of a@x.com: %v", a.keys[i-1:i+1])
	}
}

func equalAny(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
