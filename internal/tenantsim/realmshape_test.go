package tenantsim

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// modelServer is a server that is never started: the tests below drive its
// realm model directly, at instants they choose.
func modelServer(t *testing.T, cfg RealmConfig) *Server {
	t.Helper()
	s, err := NewServer(Generate(testSeed, 5), Config{ClientID: testClientID, ClientSecret: testSecret, Realm: cfg}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ask sends one request for addr at now and reports whether it was
// throttled.
func ask(s *Server, addr string, now time.Time) bool {
	return s.realm.decide(addr, s.realmTenant(addr), now).out == outThrottled
}

func TestRealmScopeBuckets(t *testing.T) {
	t.Parallel()
	// The simulated tenant owns contoso.com and fabrikam.com; the others
	// are foreign domains, each a tenant of its own.
	const a, a2, b, c = "x@contoso.com", "y@Fabrikam.com", "x@northwind.example", "x@tailspin.example"
	for _, tc := range []struct {
		scope string
		addrs []string
		// throttled is the expected outcome of each request, all at one
		// instant against a burst of 2.
		throttled []bool
	}{
		{"", []string{a, b, c}, []bool{false, false, true}},
		{ScopePerSource, []string{a, a2, b}, []bool{false, false, true}},
		{ScopePerTenant, []string{a, a2, a, b, b, c, b}, []bool{false, false, true, false, false, false, true}},
	} {
		t.Run(tc.scope, func(t *testing.T) {
			s := modelServer(t, RealmConfig{Rate: 1, Burst: 2, Penalty: time.Minute, Scope: tc.scope})
			for i, addr := range tc.addrs {
				if got := ask(s, strings.ToLower(addr), t0); got != tc.throttled[i] {
					t.Fatalf("request %d (%s): throttled %v, want %v", i, addr, got, tc.throttled[i])
				}
			}
		})
	}

	// Per tenant, one tenant's penalty window leaves the other alone, and
	// the counters are kept apart.
	s := modelServer(t, RealmConfig{Rate: 1, Burst: 1, Penalty: time.Minute, Scope: ScopePerTenant})
	ask(s, a, t0)
	ask(s, a, t0) // overshoot: penalty for the simulated tenant
	if !ask(s, a, t0.Add(30*time.Second)) {
		t.Fatal("request inside the penalty window answered")
	}
	if ask(s, b, t0.Add(30*time.Second)) {
		t.Fatal("another tenant throttled by the first one's penalty")
	}
	st := s.Stats()
	want := map[string]RealmTenantStats{
		s.tenant.ID:         {Requests: 3, Answered: 1, Throttled: 2},
		"northwind.example": {Requests: 1, Answered: 1},
	}
	if !reflect.DeepEqual(st.RealmTenants, want) {
		t.Fatalf("per-tenant stats %+v, want %+v", st.RealmTenants, want)
	}
}

func TestRealmSchedule(t *testing.T) {
	t.Parallel()
	type burst struct {
		at       time.Duration // after the first request
		n        int           // requests sent at that instant
		answered int
		rate     float64 // Stats.RealmRate at that instant
	}
	for _, tc := range []struct {
		name   string
		cfg    RealmConfig
		bursts []burst
	}{{
		// The defaulted burst follows the rate; tokens left at a step are
		// capped by the new burst, and the refill changes pace at the step.
		name: "burst follows rate",
		cfg:  RealmConfig{Rate: 10, Schedule: []RateStep{{2 * time.Minute, 2}, {4 * time.Minute, 10}}},
		bursts: []burst{
			{0, 12, 10, 10},
			{119 * time.Second, 5, 5, 10}, // 5 tokens left
			{121 * time.Second, 3, 2, 2},  // capped at 2
			{122 * time.Second, 3, 2, 2},  // refilled at 2/s
			{122500 * time.Millisecond, 3, 1, 2},
			{4*time.Minute + 30*time.Second, 12, 10, 10},
		},
	}, {
		name: "fixed burst",
		cfg:  RealmConfig{Rate: 10, Burst: 5, Schedule: []RateStep{{time.Minute, 1}}},
		bursts: []burst{
			{0, 6, 5, 10},
			{2 * time.Minute, 6, 5, 1},
			{2*time.Minute + time.Second, 2, 1, 1},
		},
	}, {
		// A penalty window opened before a step stays open after it, and
		// requests in it keep extending it.
		name: "penalty carries over",
		cfg:  RealmConfig{Rate: 10, Penalty: 30 * time.Second, Schedule: []RateStep{{time.Minute, 40}}},
		bursts: []burst{
			{0, 1, 1, 10},
			{50 * time.Second, 11, 10, 10}, // overshoot: penalty to 1m20s
			{70 * time.Second, 1, 0, 40},   // extends it to 1m40s
			{99 * time.Second, 1, 0, 40},   // to 2m09s
			{130 * time.Second, 40, 40, 40},
		},
	}, {
		name: "unlimited step",
		cfg:  RealmConfig{Rate: 1, Schedule: []RateStep{{time.Minute, 0}, {2 * time.Minute, 1}}},
		bursts: []burst{
			{0, 2, 1, 1},
			{90 * time.Second, 50, 50, 0},
			{2 * time.Minute, 2, 1, 1},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := modelServer(t, tc.cfg)
			// The schedule's clock starts with the first request, not
			// with the server: an hour of idling changes nothing.
			start := t0.Add(time.Hour)
			s.now = func() time.Time { return start }
			if st := s.Stats(); st.RealmScheduleStart != nil || st.RealmRate != tc.cfg.Rate {
				t.Fatalf("before the first request: start %v rate %v", st.RealmScheduleStart, st.RealmRate)
			}
			for _, b := range tc.bursts {
				now := start.Add(b.at)
				answered := 0
				for range b.n {
					if !ask(s, "x@contoso.com", now) {
						answered++
					}
				}
				s.now = func() time.Time { return now }
				st := s.Stats()
				if answered != b.answered || st.RealmRate != b.rate {
					t.Fatalf("at %v: %d of %d answered at rate %v, want %d at %v", b.at, answered, b.n, st.RealmRate, b.answered, b.rate)
				}
				if st.RealmScheduleStart == nil || !st.RealmScheduleStart.Equal(start) {
					t.Fatalf("schedule start %v, want %v", st.RealmScheduleStart, start)
				}
			}
		})
	}
}

func TestRealmScheduleRestartsWithModel(t *testing.T) {
	t.Parallel()
	cfg := RealmConfig{Rate: 10, Schedule: []RateStep{{time.Minute, 1}}}
	s := modelServer(t, cfg)
	ask(s, "x@contoso.com", t0)
	s.now = func() time.Time { return t0.Add(2 * time.Minute) }
	cfg.Faults.Code4 = 0.5
	s.SetRealm(cfg) // faults only: the clock runs on
	if st := s.Stats(); st.RealmRate != 1 {
		t.Fatalf("rate %v after a faults change, want 1", st.RealmRate)
	}
	cfg.Schedule = []RateStep{{time.Minute, 2}}
	s.SetRealm(cfg)
	if st := s.Stats(); st.RealmRate != 10 || st.RealmScheduleStart != nil {
		t.Fatalf("rate %v start %v after a schedule change, want 10 and not started", st.RealmRate, st.RealmScheduleStart)
	}
}

func TestParseSchedule(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []RateStep
		err  bool
	}{
		{"", nil, false},
		{"2m:15,4m:40", []RateStep{{2 * time.Minute, 15}, {4 * time.Minute, 40}}, false},
		{" 90s:2.5 , 3m:0", []RateStep{{90 * time.Second, 2.5}, {3 * time.Minute, 0}}, false},
		{"2m", nil, true},
		{"2m:", nil, true},
		{"soon:15", nil, true},
		{"2m:fast", nil, true},
		{"2m:-1", nil, true},
		{"4m:40,2m:15", nil, true},
		{"2m:15,2m:40", nil, true},
		{"2m:15,", nil, true},
	} {
		got, err := ParseSchedule(tc.in)
		if (err != nil) != tc.err || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseSchedule(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestParseLatency(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	for _, tc := range []struct {
		in     string
		lo, hi time.Duration
		err    bool
	}{
		{"", 0, 0, false},
		{"100ms-400ms", 100 * ms, 400 * ms, false},
		{"250ms", 250 * ms, 250 * ms, false},
		{"1s-1s", time.Second, time.Second, false},
		{"400ms-100ms", 0, 0, true},
		{"-100ms", 0, 0, true},
		{"100ms-", 0, 0, true},
		{"100-400", 0, 0, true},
	} {
		lo, hi, err := ParseDurationRange(tc.in)
		if (err != nil) != tc.err || lo != tc.lo || hi != tc.hi {
			t.Errorf("ParseDurationRange(%q) = %v, %v, %v", tc.in, lo, hi, err)
		}
	}
	for _, tc := range []struct {
		in     string
		share  float64
		lo, hi time.Duration
		err    bool
	}{
		{"", 0, 0, 0, false},
		{"0.02:1s-2s", 0.02, time.Second, 2 * time.Second, false},
		{"1:3s", 1, 3 * time.Second, 3 * time.Second, false},
		{"2%:1s-2s", 0, 0, 0, true},
		{"1.5:1s-2s", 0, 0, 0, true},
		{"0.02", 0, 0, 0, true},
		{"0.02:2s-1s", 0, 0, 0, true},
	} {
		share, lo, hi, err := ParseLatencyTail(tc.in)
		if (err != nil) != tc.err || share != tc.share || lo != tc.lo || hi != tc.hi {
			t.Errorf("ParseLatencyTail(%q) = %v, %v, %v, %v", tc.in, share, lo, hi, err)
		}
	}
}

func TestLatencyDraw(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	l := Latency{Min: 100 * ms, Max: 400 * ms, TailShare: 0.1, TailMin: time.Second, TailMax: 2 * time.Second}
	s := modelServer(t, RealmConfig{Latency: l})
	tail := 0
	for range 2000 {
		d := s.realm.decide("x@contoso.com", "", t0).delay
		switch {
		case d >= time.Second && d <= 2*time.Second:
			tail++
		case d < 100*ms || d > 400*ms:
			t.Fatalf("delay %v outside both ranges", d)
		}
	}
	if tail < 100 || tail > 300 {
		t.Fatalf("%d of 2000 in the tail at share 0.1", tail)
	}
}

// A delayed answer ends when the client hangs up, and when the server
// stops; neither holds the model's lock (the stats stay readable).
func TestRealmLatencyEndsEarly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 5, func(c *Config) { c.Realm.Latency = Latency{Min: time.Hour, Max: time.Hour} })
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after 10s", what)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	get := func(ctx context.Context) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, realmURL(e.srv, "x@contoso.com"), nil)
		resp, err := e.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}
	go get(ctx)
	waitFor("request seen", func() bool { return e.srv.Stats().RealmRequests == 1 })
	cancel()
	if err := <-done; err == nil {
		t.Fatal("a request delayed by an hour was answered")
	}
	waitFor("handler released after hang-up", func() bool { return e.srv.inflight.Load() == 0 })

	go get(context.Background())
	waitFor("second request seen", func() bool { return e.srv.Stats().RealmRequests == 2 })
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatal("a request delayed by an hour was answered at shutdown")
	}
	if n := e.srv.inflight.Load(); n != 0 {
		t.Fatalf("%d handlers still running after Close", n)
	}
}
