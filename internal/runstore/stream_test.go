package runstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msaudit/msaudit/internal/redistest"
)

// memSorter is a Sorter that holds everything, for the tests.
type memSorter struct{ recs [][2][]byte }

func (m *memSorter) Add(k, v []byte) error {
	m.recs = append(m.recs, [2][]byte{bytes.Clone(k), bytes.Clone(v)})
	return nil
}

func (m *memSorter) Each(fn func(k, v []byte) error) error {
	slices.SortStableFunc(m.recs, func(a, b [2][]byte) int { return bytes.Compare(a[0], b[0]) })
	for _, r := range m.recs {
		if err := fn(r[0], r[1]); err != nil {
			return err
		}
	}
	return nil
}

func (m *memSorter) Close() error { return nil }

func newMemSorter() Sorter { return &memSorter{} }

// replyCounter is a go-redis hook that keeps the most elements one reply,
// or one pipeline's replies together, brought back.
type replyCounter struct {
	mu  sync.Mutex
	max int
}

func elements(c redis.Cmder) int {
	switch c := c.(type) {
	case *redis.MapStringStringCmd:
		return 2 * len(c.Val())
	case *redis.StringSliceCmd:
		return len(c.Val())
	case *redis.SliceCmd:
		return len(c.Val())
	case *redis.ScanCmd:
		keys, _ := c.Val()
		return len(keys)
	}
	return 1
}

func (h *replyCounter) note(n int) {
	h.mu.Lock()
	h.max = max(h.max, n)
	h.mu.Unlock()
}

func (h *replyCounter) take() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.max
	h.max = 0
	return n
}

func (h *replyCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *replyCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, c redis.Cmder) error {
		err := next(ctx, c)
		h.note(elements(c))
		return err
	}
}

func (h *replyCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		n := 0
		for _, c := range cmds {
			n += elements(c)
		}
		h.note(n)
		return err
	}
}

// streamRun stores a run of n addresses: most of one user with a display
// name and mail, every tenth shared with a second user, every seventh of
// no one (an address list); a third answered, a third failing and a third
// dead-lettered, each failure with its error.
func streamRun(t *testing.T, s *Store, n int) string {
	t.Helper()
	ctx := t.Context()
	id := NewRunID(time.Now())
	if err := s.CreateRun(ctx, &Run{ID: id, TenantID: "t1", Source: "graph", Retention: time.Hour}, time.Now()); err != nil {
		t.Fatal(err)
	}
	var addrs []string
	var pairs []Pair
	var outs, dead []Outcome
	for i := range n {
		a := fmt.Sprintf("user%05d@contoso.com", i)
		addrs = append(addrs, a)
		switch {
		case i%7 == 0:
			pairs = append(pairs, Pair{Address: a})
		default:
			u := fmt.Sprintf("%08x-0000-4000-8000-%012x", i/2, i/2)
			pairs = append(pairs, Pair{Address: a, UserID: u, UPN: fmt.Sprintf("u%d@contoso.com", i/2), DisplayName: fmt.Sprintf("User %d", i/2), Mail: fmt.Sprintf("m%d@contoso.com", i/2)})
		}
		if i%10 == 0 {
			pairs = append(pairs, Pair{Address: a, UserID: "text-id-" + a, UPN: "second@contoso.com"})
		}
		o := Outcome{Address: a, Detail: Detail{RequestID: fmt.Sprintf("%08x-1111-4000-8000-%012x", i, i), CheckedAt: time.UnixMilli(int64(1e12 + i))}}
		switch i % 3 {
		case 0:
			o.Status = []AddressStatus{StatePresent, StateAbsent}[i%2]
			outs = append(outs, o)
		case 1:
			o.Detail.Error = fmt.Sprintf("no answer: HTTP %d", 500+i%4)
			outs = append(outs, o)
		default:
			o.Detail.Error = "timeout waiting for the response"
			dead = append(dead, o)
		}
	}
	if err := s.Register(ctx, id, -1, nil, addrs, pairs, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(ctx, id, 3, time.Now(), outs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(ctx, id, 1, time.Now(), dead); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishEnumeration(ctx, id, int64(n), time.Now()); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestReadResultsPagesAndMatches: the streaming readers give what the
// readers that load a run whole give, in the same order, while no reply
// of Redis, nor any pipeline's replies together, holds more than a few
// pages; the readers that load everything exceed that on the same run,
// which shows the hook counts what it should.
func TestReadResultsPagesAndMatches(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	rdb := redistest.Client(t)
	hook := &replyCounter{}
	rdb.AddHook(hook)
	s := New(rdb)
	s.page = 200
	const n = 3000
	id := streamRun(t, s, n)
	bound := 4 * s.page // a page of addresses as field and value, of two families

	hook.take()
	var got []Result
	pages := 0
	err := s.ReadResults(ctx, id, newMemSorter, func(part []Result) error {
		pages++
		got = append(got, part...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if m := hook.take(); m > bound {
		t.Errorf("ReadResults had Redis send %d elements at once, want at most %d", m, bound)
	}
	want, err := s.Results(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if m := hook.take(); m <= bound {
		t.Errorf("Results, which loads the run whole, took at most %d elements at once: the hook does not count", m)
	}
	if len(got) != n+n/10 || pages != (len(got)+resultsPage-1)/resultsPage {
		t.Errorf("ReadResults gave %d results in %d pages, want %d in pages of %d", len(got), pages, n+n/10, resultsPage)
	}
	if !reflect.DeepEqual(got, want) {
		for i := range min(len(got), len(want)) {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("result %d = %+v, want %+v", i, got[i], want[i])
			}
		}
		t.Fatalf("%d results, want %d", len(got), len(want))
	}

	var dead []DeadLetter
	err = s.ReadDeadLetters(ctx, id, newMemSorter, func(part []DeadLetter) error {
		dead = append(dead, part...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if m := hook.take(); m > bound {
		t.Errorf("ReadDeadLetters had Redis send %d elements at once, want at most %d", m, bound)
	}
	wantDead, err := s.DeadLetters(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if m := hook.take(); m <= bound {
		t.Errorf("DeadLetters, which loads the dead set whole, took at most %d elements at once", m)
	}
	if len(dead) != n/3 || !reflect.DeepEqual(dead, wantDead) {
		t.Errorf("ReadDeadLetters gave %d, want %d as DeadLetters gives them", len(dead), n/3)
	}
}

func TestReadResultsOfUnknownRun(t *testing.T) {
	t.Parallel()
	s := New(redistest.Client(t))
	err := s.ReadResults(t.Context(), "nope", newMemSorter, func([]Result) error { return nil })
	if !errors.Is(err, ErrRunNotFound) {
		t.Errorf("err = %v, want ErrRunNotFound", err)
	}
}
