package submit

import (
	"context"
	"fmt"
	"hash/maphash"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/redistest"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/tasks"
)

// pagesSource emits each page as it is, with no user count.
func pagesSource(pages ...[]Candidate) Source {
	return func(ctx context.Context, emit Emit) error {
		for _, p := range pages {
			if err := emit(0, p); err != nil {
				return err
			}
		}
		return nil
	}
}

// userCands are the candidates of user n: addrs addresses, its display
// name name.
func userCands(n, addrs int, name string) []Candidate {
	o := tasks.Owner{UserID: fmt.Sprintf("00000000-0000-4000-8000-%012d", n), UPN: fmt.Sprintf("user%d@x.com", n)}
	out := make([]Candidate, addrs)
	for i := range out {
		out[i] = Candidate{Address: fmt.Sprintf("a%d-%d@x.com", n, i), Owner: o, DisplayName: name, Mail: o.UPN}
	}
	return out
}

// TestUserWrite: a fresh run's users are added unlooked the first time,
// kept while their addresses follow one another, and looked up when they
// come back later; a resumed run looks every user up once.
func TestUserWrite(t *testing.T) {
	t.Parallel()
	fresh := &job{users: make(map[uint64]struct{}), seed: maphash.MakeSeed()}
	resumed := &job{users: make(map[uint64]struct{}), seed: maphash.MakeSeed(), req: Request{Resume: true}}
	for _, c := range []struct {
		j    *job
		id   string
		want runstore.UserWrite
	}{
		{fresh, "u1", runstore.UserAdd}, {fresh, "u1", runstore.UserKept}, {fresh, "u2", runstore.UserAdd},
		{fresh, "u1", runstore.UserSet}, {fresh, "u1", runstore.UserKept}, {fresh, "", runstore.UserSet},
		{resumed, "u1", runstore.UserSet}, {resumed, "u1", runstore.UserKept}, {resumed, "u2", runstore.UserSet},
	} {
		if got := c.j.userWrite(c.id); got != c.want {
			t.Errorf("resume %v, user %q: %d, want %d", c.j.req.Resume, c.id, got, c.want)
		}
	}
}

// TestSubmitStoresEachUserOnce: a user whose addresses span batches, and a
// user the source yields twice (a users file naming one user by UPN and by
// ID), are stored once; a resumed submit that finds a user renamed stores
// the new name.
func TestSubmitStoresEachUserOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	rdb := redistest.Client(t)
	store := runstore.New(rdb)
	sub := &Submitter{Store: store, Queue: asynq.NewClientFromRedisClient(rdb), Log: zap.NewNop()}
	run := runstore.Run{ID: runstore.NewRunID(time.Now()), TenantID: "t1", Source: "graph", Retention: time.Hour}
	ann, bob := userCands(1, 7, "Ann"), userCands(2, 3, "Bob")
	src := pagesSource(append(ann[:5:5], bob...), ann[5:], ann[:2])
	if _, err := sub.Submit(ctx, Request{Run: run, BatchSize: 4}, src); err != nil {
		t.Fatal(err)
	}
	check := func(when string, names map[string]string) {
		t.Helper()
		res, err := store.Results(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 10 {
			t.Errorf("%s: %d results, want 10", when, len(res))
		}
		for _, r := range res {
			if r.DisplayName != names[r.UPN] {
				t.Errorf("%s: %s of %s is %q, want %q", when, r.Address, r.UPN, r.DisplayName, names[r.UPN])
			}
		}
		keys, err := rdb.Keys(ctx, "msaudit:run:"+run.ID+":u:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		var users int64
		for _, k := range keys {
			users += rdb.LLen(ctx, k).Val()
		}
		if users != 2 {
			t.Errorf("%s: %d users stored, want 2", when, users)
		}
	}
	check("first submit", map[string]string{"user1@x.com": "Ann", "user2@x.com": "Bob"})

	renamed := userCands(2, 3, "Robert")
	if _, err := sub.Submit(ctx, Request{Run: run, Resume: true, BatchSize: 4}, pagesSource(ann, renamed)); err != nil {
		t.Fatal(err)
	}
	check("resumed submit", map[string]string{"user1@x.com": "Ann", "user2@x.com": "Robert"})
}
