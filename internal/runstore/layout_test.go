package runstore

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDetailRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 3, 7, 35, 20, 123_000_000, time.UTC)
	for _, d := range []Detail{
		{},
		{CheckedAt: at},
		{CheckedAt: at, RequestID: "0c1d5b2f-8e4a-4f6b-9d3c-2a1b0c9d8e7f"},
		{CheckedAt: at, RequestID: "0C1D5B2F-8E4A-4F6B-9D3C-2A1B0C9D8E7F"}, // not packed: kept as spelled
		{CheckedAt: at, RequestID: "rq-a@x.com:1"},
		{RequestID: "fault-request"},
	} {
		v := encodeState(storedPresent, 3, d)
		st, n, got := decodeState(v)
		if st != StatePresent || n != 3 || got != d {
			t.Errorf("%+v: decoded %s %d %+v from %q", d, st, n, got, v)
		}
	}
	if v := encodeState(storedAbsent, 1, Detail{CheckedAt: at, RequestID: "0c1d5b2f-8e4a-4f6b-9d3c-2a1b0c9d8e7f"}); len(v) > 26 {
		t.Errorf("value of an answered address is %d bytes: %q", len(v), v)
	}
	if st, n, d := decodeState(storedPending); st != StatePending || n != 0 || d != (Detail{}) {
		t.Errorf("fresh pending decodes as %s %d %+v", st, n, d)
	}
}

func TestRefsRoundTrip(t *testing.T) {
	t.Parallel()
	ids := []string{"6b1c9a52-3f0e-4d7a-b8c2-1e5f9a0d3c47", "", "u-a@x.com", "6B1C9A52-3F0E-4D7A-B8C2-1E5F9A0D3C47", strings.Repeat("x", maxTextRef)}
	var v string
	for _, id := range ids {
		ref, err := encodeRef(id)
		if err != nil {
			t.Fatal(err)
		}
		v += ref
	}
	var got []string
	for _, ref := range splitRefs(v) {
		got = append(got, decodeRef(ref))
	}
	if !slices.Equal(got, ids) {
		t.Errorf("refs decode as %q, want %q", got, ids)
	}
	if _, err := encodeRef(strings.Repeat("x", maxTextRef+1)); err == nil {
		t.Error("an over-long user ID was encoded")
	}
}

func TestUserValueRoundTrip(t *testing.T) {
	t.Parallel()
	for _, p := range []Pair{
		{UPN: "a@x.com"},
		{UPN: "a@x.com", DisplayName: "Ann", Mail: "a@x.com"},
		{UPN: "a@x.com", DisplayName: "Ann", Mail: "ann@x.com"},
		{UPN: "a@x.com", Mail: "ann@x.com"},
		{UPN: "a@x.com", DisplayName: "Ann"},
		{DisplayName: "Ann"},
	} {
		var got Pair
		parseUser(&got, userValue(p))
		if got != p {
			t.Errorf("%+v comes back as %+v from %q", p, got, userValue(p))
		}
	}
}

// TestUsersAreKeptOnce: a user found on several addresses, or registered
// again by a resumed submit, is stored once, and each pair once.
func TestUsersAreKeptOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, id := newRun(t)
	uid := "6b1c9a52-3f0e-4d7a-b8c2-1e5f9a0d3c47"
	ann := func(a, name string) Pair {
		return Pair{Address: a, UserID: uid, UPN: "ann@x.com", DisplayName: name, Mail: "ann@x.com"}
	}
	if err := s.Register(ctx, id, 1, []byte(`{}`), []string{"a@x.com", "b@x.com"}, []Pair{ann("a@x.com", "Ann"), ann("b@x.com", "Ann")}, nil); err != nil {
		t.Fatal(err)
	}
	// The resumed submit finds her again, renamed, and a second owner of b.
	again := []Pair{ann("a@x.com", "Ann B."), ann("b@x.com", "Ann B."), {Address: "b@x.com", UserID: "u2", UPN: "bob@x.com"}}
	if err := s.Register(ctx, id, -1, nil, nil, again, []int{1}); err != nil {
		t.Fatal(err)
	}
	res, err := s.Results(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want := []Pair{ann("a@x.com", "Ann B."), ann("b@x.com", "Ann B."), {Address: "b@x.com", UserID: "u2", UPN: "bob@x.com"}}
	if len(res) != len(want) {
		t.Fatalf("%d results, want %d: %+v", len(res), len(want), res)
	}
	for i, w := range want {
		if res[i].Pair != w || res[i].State != StatePending {
			t.Errorf("result %d = %+v, want %+v pending", i, res[i], w)
		}
	}
	k, _ := s.keysOf(ctx, id)
	var users int64
	for i := 0; i < k.buckets; i++ {
		users += s.rdb.LLen(ctx, k.bucket(famUsers, i)).Val()
	}
	if users != 2 {
		t.Errorf("%d users stored, want 2", users)
	}
}

// TestRecountAndAddressLists: recount, the pending list and the known
// addresses read every state bucket.
func TestRecountAndAddressLists(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var addrs []string
	for i := 0; i < 300; i++ {
		addrs = append(addrs, "a"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+time.Duration(i).String()+"@x.com")
	}
	s, id := newRun(t, addrs...)
	s.Record(ctx, id, 2, time.Now(), []Outcome{answer(addrs[0], StatePresent), answer(addrs[1], StateAbsent), fail(addrs[2]), fail(addrs[3])})
	s.Record(ctx, id, 2, time.Now(), []Outcome{fail(addrs[3])})
	// Lose some counter writes, as a failover might.
	if err := s.rdb.HSet(ctx, runKeys(id).run, fieldChecked, 0, fieldPresent, 0, fieldDead, 5, fieldFailedPending, 9).Err(); err != nil {
		t.Fatal(err)
	}
	_, after, err := s.Recount(ctx, id, time.Now())
	want := Counters{Total: 300, Checked: 2, Present: 1, Absent: 1, Dead: 1, FailedPending: 1}
	if err != nil || after != want {
		t.Errorf("recount = %+v, %v; want %+v", after, err, want)
	}
	pending, err := s.PendingAddresses(ctx, id)
	if err != nil || len(pending) != 297 || pending[addrs[0]] || pending[addrs[3]] || !pending[addrs[2]] {
		t.Errorf("%d pending (%v)", len(pending), err)
	}
	known := 0
	if err := s.KnownAddresses(ctx, id, func(string) { known++ }); err != nil || known != 300 {
		t.Errorf("%d known addresses (%v)", known, err)
	}
	dead, _ := s.DeadLetters(ctx, id)
	if len(dead) != 1 || dead[0].Address != addrs[3] || dead[0].Attempts != 2 || dead[0].Error == "" || dead[0].CheckedAt.IsZero() {
		t.Errorf("dead letters = %+v", dead)
	}
}

// TestOldLayoutFailsLoudly: a run an earlier version made (no bucket
// count, addresses in one status hash) is refused rather than read as
// holding no addresses, and cancel and purge still reach its keys.
func TestOldLayoutFailsLoudly(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	for _, end := range []string{"cancel", "purge"} {
		s, id := newRun(t)
		k := runKeys(id)
		s.rdb.HDel(ctx, k.run, fieldBuckets)
		s.rdb.HSet(ctx, k.run+":status", "a@x.com", "p")
		s2 := New(s.rdb) // a fresh process: nothing cached
		if _, err := s2.LoadBatch(ctx, id, []string{"a@x.com"}); !errors.Is(err, ErrOldLayout) {
			t.Fatalf("LoadBatch: %v, want ErrOldLayout", err)
		}
		if _, err := s2.Record(ctx, id, 3, time.Now(), []Outcome{answer("a@x.com", StatePresent)}); !errors.Is(err, ErrOldLayout) {
			t.Fatalf("Record: %v, want ErrOldLayout", err)
		}
		if end == "cancel" {
			if err := s2.Cancel(ctx, id); err != nil {
				t.Fatal(err)
			}
			if ttl := s.rdb.TTL(ctx, k.run+":status").Val(); ttl <= 0 {
				t.Errorf("old status hash after cancel: ttl %s", ttl)
			}
			continue
		}
		if err := s2.Purge(ctx, id); err != nil {
			t.Fatal(err)
		}
		if n := s.rdb.Exists(ctx, k.run, k.run+":status").Val(); n != 0 {
			t.Errorf("%d keys of the old run left after purge", n)
		}
	}
}
