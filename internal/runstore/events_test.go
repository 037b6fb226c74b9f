package runstore

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func eventTypes(t *testing.T, s *Store, id string) []EventType {
	t.Helper()
	o, err := s.Events(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []EventType
	for i, e := range o.Events {
		if e.Seq != i+1 || e.At.IsZero() {
			t.Errorf("event %d: %+v", i, e)
		}
		out = append(out, e.Type)
	}
	return out
}

// TestTransitionsRecordTheirEvents: each transition records its event once,
// however often it is asked for.
func TestTransitionsRecordTheirEvents(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, id := newRun(t, "a@x.com", "b@x.com")
	now := time.Now()
	s.FinishEnumeration(ctx, id, 2, now)
	s.FinishEnumeration(ctx, id, 2, now) // a resumed submit finishes again
	s.Pause(ctx, id, now)
	s.Pause(ctx, id, now)
	s.Resume(ctx, id, now)
	s.Resume(ctx, id, now)
	s.Record(ctx, id, 3, now, []Outcome{answer("a@x.com", StatePresent), fail("b@x.com")})
	s.Record(ctx, id, 3, now, []Outcome{answer("b@x.com", StateAbsent)})
	s.Record(ctx, id, 3, now, []Outcome{answer("b@x.com", StateAbsent)}) // redelivered
	want := []EventType{EventSubmitted, EventPaused, EventResumed, EventCompleted}
	if got := eventTypes(t, s, id); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}

	s2, other := newRun(t, "c@x.com")
	s2.Cancel(ctx, other)
	s2.Cancel(ctx, other)
	if got := eventTypes(t, s2, other); !slices.Equal(got, []EventType{EventCancelled}) {
		t.Errorf("cancelled twice: events %v", got)
	}
}

// TestStall: a run with no answer for the stall time is marked stalled once,
// an answer recovers it, a paused run never stalls, and a resume restarts
// the clock.
func TestStall(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, id := newRun(t, "a@x.com", "b@x.com", "c@x.com")
	start := time.Now()
	s.FinishEnumeration(ctx, id, 3, start)
	const after = 30 * time.Minute
	mark := func(at time.Time) bool {
		t.Helper()
		ok, err := s.MarkStalled(ctx, id, at, after)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if mark(start.Add(after / 2)) {
		t.Error("stalled before the stall time")
	}
	if !mark(start.Add(after+time.Minute)) || mark(start.Add(after+2*time.Minute)) {
		t.Error("want one stall, marked once")
	}
	if r, _ := s.GetRun(ctx, id); r.StalledAt.IsZero() {
		t.Error("StalledAt not set")
	}
	// Failed attempts and dead letters are no answers: still stalled.
	s.Record(ctx, id, 1, start.Add(after+3*time.Minute), []Outcome{fail("c@x.com")})
	if r, _ := s.GetRun(ctx, id); r.StalledAt.IsZero() || r.DeadLettered != 1 {
		t.Errorf("a dead letter recovered the run: %+v", r)
	}
	answeredAt := start.Add(after + 4*time.Minute)
	s.Record(ctx, id, 3, answeredAt, []Outcome{answer("a@x.com", StateAbsent)})
	if r, _ := s.GetRun(ctx, id); !r.StalledAt.IsZero() {
		t.Error("an answer did not recover the run")
	}
	if mark(answeredAt.Add(after / 2)) {
		t.Error("stalled again before the stall time since the answer")
	}
	s.Pause(ctx, id, answeredAt)
	if mark(answeredAt.Add(10 * after)) {
		t.Error("a paused run stalled")
	}
	resumedAt := answeredAt.Add(10 * after)
	s.Resume(ctx, id, resumedAt)
	if mark(resumedAt.Add(after / 2)) {
		t.Error("stalled right after a resume")
	}
	if !mark(resumedAt.Add(after + time.Second)) {
		t.Error("no stall after the resume")
	}
	want := []EventType{EventSubmitted, EventStalled, EventRecovered, EventPaused, EventResumed, EventStalled}
	if got := eventTypes(t, s, id); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	s.Record(ctx, id, 3, resumedAt.Add(2*after), []Outcome{answer("b@x.com", StatePresent)})
	want = append(want, EventRecovered, EventCompleted)
	if got := eventTypes(t, s, id); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	if mark(resumedAt.Add(10 * after)) {
		t.Error("a completed run stalled")
	}
}

// TestDeliveryInOrder: events are delivered one after the other; a late
// report about an event that is not the next one changes nothing.
func TestDeliveryInOrder(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, id := newRun(t, "a@x.com")
	now := time.Now().Truncate(time.Millisecond)
	s.FinishEnumeration(ctx, id, 1, now)
	s.Pause(ctx, id, now)
	pending, waiting, err := s.Undelivered(ctx)
	if err != nil || len(pending) != 1 || waiting != 2 || pending[0].RunID != id {
		t.Fatalf("Undelivered = %+v, %d, %v", pending, waiting, err)
	}
	if e, ok := pending[0].Next(); !ok || e.Seq != 1 || e.Type != EventSubmitted || EventID(id, e.Seq) != id+".1" {
		t.Fatalf("next %+v", e)
	}
	if err := s.DeliveryFailed(ctx, id, 2, now, "out of order"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeliveryFailed(ctx, id, 1, now.Add(time.Minute), "webhook: HTTP 503"); err != nil {
		t.Fatal(err)
	}
	s.DeliveryFailed(ctx, id, 1, now.Add(2*time.Minute), "webhook: HTTP 502")
	o, _ := s.Events(ctx, id)
	if o.Attempts != 2 || o.LastError != "webhook: HTTP 502" || !o.NextAt.Equal(now.Add(2*time.Minute)) || o.Delivered != 0 {
		t.Errorf("after two failures: %+v", o)
	}
	s.MarkDelivered(ctx, id, 2, now) // not the next one
	s.MarkDelivered(ctx, id, 1, now)
	s.MarkDelivered(ctx, id, 1, now) // twice
	o, _ = s.Events(ctx, id)
	if o.Delivered != 1 || o.Attempts != 0 || o.LastError != "" || !o.Events[0].DeliveredAt.Equal(now) || !o.Events[1].DeliveredAt.IsZero() {
		t.Errorf("after delivering the first: %+v", o)
	}
	s.MarkDelivered(ctx, id, 2, now)
	if pending, waiting, _ := s.Undelivered(ctx); len(pending) != 0 || waiting != 0 {
		t.Errorf("all delivered, still %+v", pending)
	}
	// Purged: no trace of the run or its events.
	if err := s.Purge(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Events(ctx, id); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("events of a purged run: %v", err)
	}
	if err := s.MarkDelivered(ctx, id, 3, now); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.rdb.Exists(ctx, runKeys(id).run).Result(); n != 0 {
		t.Error("a late delivery report brought the purged run back")
	}
}

// TestRegisterReused: reused answers count as checked and absent, are told
// apart by having no attempt, never overwrite an address the run holds,
// and a run whose every address is reused completes when its enumeration
// ends.
func TestRegisterReused(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, id := newRun(t, "asked@x.com")
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	reused := []Reused{{Address: "r1@x.com", Detail: Detail{RequestID: "rq1", CheckedAt: at}}, {Address: "r2@x.com", Detail: Detail{CheckedAt: at}},
		{Address: "asked@x.com", Detail: Detail{CheckedAt: at}}}
	if err := s.RegisterReused(ctx, id, reused); err != nil {
		t.Fatal(err)
	}
	s.RegisterReused(ctx, id, reused[:1]) // a resumed submit
	r, _ := s.GetRun(ctx, id)
	if r.AddressesTotal != 3 || r.Checked != 2 || r.Absent != 2 || r.Reused != 2 {
		t.Errorf("counters %+v", r)
	}
	res, _ := s.Results(ctx, id)
	for _, x := range res {
		switch x.Address {
		case "r1@x.com":
			if !x.Reused() || x.RequestID != "rq1" || !x.CheckedAt.Equal(at) {
				t.Errorf("reused %+v", x)
			}
		case "asked@x.com":
			if x.Reused() || x.State != StatePending {
				t.Errorf("an address the run held was overwritten: %+v", x)
			}
		}
	}
	s2, all := newRun(t)
	s2.RegisterReused(ctx, all, reused[:2])
	s2.FinishEnumeration(ctx, all, 2, time.Now())
	if r, _ := s2.GetRun(ctx, all); r.State() != StateCompleted {
		t.Errorf("a run of reused answers only is %s", r.State())
	}
}
