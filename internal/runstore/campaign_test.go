package runstore

import (
	"strconv"
	"testing"
	"time"
)

func TestPairsKeepDisplayNameAndMail(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, id := newRun(t)
	pairs := []Pair{
		{Address: "a@x.com", UserID: "u1", UPN: "a@x.com", DisplayName: "<b>Ann</b>\x1fX", Mail: "ann@x.com"},
		{Address: "b@x.com", UserID: "u2", UPN: "b@x.com"},
		{Address: "c@x.com"},
	}
	if err := s.Register(ctx, id, 1, []byte(`{}`), []string{"a@x.com", "b@x.com", "c@x.com"}, pairs, nil); err != nil {
		t.Fatal(err)
	}
	res, err := s.Results(ctx, id)
	if err != nil || len(res) != 3 {
		t.Fatalf("results %v, %v", res, err)
	}
	want := []Pair{
		{Address: "a@x.com", UserID: "u1", UPN: "a@x.com", DisplayName: "<b>Ann</b> X", Mail: "ann@x.com"},
		pairs[1], pairs[2],
	}
	for i, w := range want {
		if res[i].Pair != w {
			t.Errorf("pair %d = %+v, want %+v", i, res[i].Pair, w)
		}
	}
}

// Stopped reports whether no more requests of the run may be sent.
func (f Flags) Stopped() bool { return !f.Exists || f.Cancelled || f.Paused }

func TestPauseResume(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, id := newRun(t, "a@x.com", "b@x.com")
	s.FinishEnumeration(ctx, id, 2, time.Now())
	for _, tc := range []struct {
		name    string
		do      func() (bool, error)
		changed bool
		state   RunState
	}{
		{"pause", func() (bool, error) { return s.Pause(ctx, id, time.Now()) }, true, StatePaused},
		{"pause again", func() (bool, error) { return s.Pause(ctx, id, time.Now()) }, false, StatePaused},
		{"resume", func() (bool, error) { return s.Resume(ctx, id, time.Now()) }, true, StateRunning},
		{"resume again", func() (bool, error) { return s.Resume(ctx, id, time.Now()) }, false, StateRunning},
	} {
		changed, err := tc.do()
		r, _ := s.GetRun(ctx, id)
		if err != nil || changed != tc.changed || r.State() != tc.state {
			t.Errorf("%s: changed %v, err %v, state %s; want %v, %s", tc.name, changed, err, r.State(), tc.changed, tc.state)
		}
	}
	s.Pause(ctx, id, time.Now())
	if f, _ := s.RunFlags(ctx, id); !f.Paused || !f.Exists || !f.Stopped() {
		t.Errorf("flags of a paused run: %+v", f)
	}
	if bs, _ := s.LoadBatch(ctx, id, []string{"a@x.com"}); !bs.Paused {
		t.Error("LoadBatch does not say paused")
	}
	if !openIDs(t, s)[id] {
		t.Error("a paused run left the open-runs index")
	}
	s.Record(ctx, id, 1, time.Now(), []Outcome{answer("a@x.com", StateAbsent), answer("b@x.com", StateAbsent)})
	if _, err := s.Pause(ctx, id, time.Now()); err == nil {
		t.Error("a completed run was paused")
	}
	if f, _ := s.RunFlags(ctx, "nope"); f.Exists || !f.Stopped() {
		t.Errorf("flags of an unknown run: %+v", f)
	}
}

func TestRecordAfterPurgeWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, id := newRun(t, "a@x.com")
	if err := s.Purge(ctx, id); err != nil {
		t.Fatal(err)
	}
	st, err := s.Record(ctx, id, 3, time.Now(), []Outcome{answer("a@x.com", StatePresent)})
	if err != nil || len(st) != 1 || st[0].State != "unknown" {
		t.Fatalf("record after purge: %+v, %v", st, err)
	}
	if n, _ := s.rdb.Exists(ctx, keysFor(id).all()...).Result(); n != 0 {
		t.Errorf("%d keys of the purged run came back", n)
	}
}

func TestCountersAndTimeline(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var addrs []string
	for i := 0; i < 40; i++ {
		addrs = append(addrs, "a"+strconv.Itoa(i)+"@x.com")
	}
	s, id := newRun(t, addrs...)
	t0 := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	throttled := Outcome{Address: addrs[0], Throttled: true, Rate: 7.5, Detail: Detail{Error: "throttled"}}
	s.Record(ctx, id, 5, t0, []Outcome{throttled, answer(addrs[1], StatePresent)})
	s.Record(ctx, id, 5, t0.Add(30*time.Second), []Outcome{answer(addrs[0], StateAbsent), answer(addrs[2], StateAbsent)})
	// One answer per minute for 30 minutes more, then nothing.
	for i := 0; i < 30; i++ {
		s.Record(ctx, id, 5, t0.Add(time.Duration(i+1)*time.Minute), []Outcome{answer(addrs[3+i], StateAbsent)})
	}
	r, _ := s.GetRun(ctx, id)
	if r.Requests != 34 || r.Throttles != 1 || r.TenantRate != 7.5 {
		t.Errorf("requests %d, throttles %d, rate %v; want 34, 1, 7.5", r.Requests, r.Throttles, r.TenantRate)
	}
	if r.Chart.Width != time.Minute || len(r.Chart.Buckets) != 31 || r.Chart.Buckets[0].Done != 3 ||
		r.Chart.Buckets[0].Requests != 4 || r.Chart.Buckets[0].Throttles != 1 || !r.Chart.Buckets[0].Start.Equal(t0) {
		t.Errorf("chart = %+v", r.Chart)
	}
	if len(r.Recent) != recentSlots {
		t.Errorf("%d recent minutes, want the ring's %d", len(r.Recent), recentSlots)
	}
	end := t0.Add(30*time.Minute + 30*time.Second)
	for _, tc := range []struct {
		now    time.Time
		window time.Duration
		want   float64
	}{
		{end, 5 * time.Minute, 5.0 / 270},               // 5 answers over 4.5 minutes
		{end.Add(20 * time.Minute), 5 * time.Minute, 0}, // idle since
		{t0.Add(10 * time.Second), 5 * time.Minute, 0},  // before the ring's oldest minute: nothing left of it
	} {
		if got := r.RecentRate(tc.now, tc.window); got < tc.want*0.99 || got > tc.want*1.01+1e-9 {
			t.Errorf("RecentRate(%s, %s) = %v, want %v", tc.now.Format(time.TimeOnly), tc.window, got, tc.want)
		}
	}
}

func TestChartStaysBounded(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, id := newRun(t, "a@x.com", "b@x.com", "c@x.com")
	t0 := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	s.Record(ctx, id, 9, t0, []Outcome{fail("a@x.com")})
	s.Record(ctx, id, 9, t0.Add(100*time.Minute), []Outcome{fail("a@x.com")})
	s.Record(ctx, id, 9, t0.Add(1000*time.Minute), []Outcome{answer("b@x.com", StatePresent)})
	r, _ := s.GetRun(ctx, id)
	// 1000 minutes need 240 buckets of 8 minutes (240*4 < 1000 <= 240*8).
	if r.Chart.Width != 8*time.Minute || len(r.Chart.Buckets) != 1000/8+1 {
		t.Fatalf("width %s, %d buckets", r.Chart.Width, len(r.Chart.Buckets))
	}
	var reqs, done int64
	for _, b := range r.Chart.Buckets {
		reqs, done = reqs+b.Requests, done+b.Done
	}
	if reqs != 3 || done != 1 || r.Chart.Buckets[100/8].Requests != 1 {
		t.Errorf("merged chart lost counts: requests %d, done %d, %+v", reqs, done, r.Chart.Buckets[100/8])
	}
}
