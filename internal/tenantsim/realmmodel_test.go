package tenantsim

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/msaudit/msaudit/internal/throttlemodel"
)

// The simulator's realm, given a throttle model, decides as the model does:
// per tenant with ScopePerTenant, with the model's Retry-After and service
// time, and with the schedule's capacity steps at their own instants.
func TestRealmFollowsModel(t *testing.T) {
	t.Parallel()
	const a, b = "x@contoso.com", "x@northwind.example"
	for _, name := range []string{"penalty-extend-ra-4", "concurrency-3", "sliding-window-ra-4", "queue-ra-1", "soft-limit-3"} {
		for _, scope := range []string{ScopePerSource, ScopePerTenant} {
			t.Run(name+"/"+scope, func(t *testing.T) {
				t.Parallel()
				sched := []RateStep{{10 * time.Second, 8}, {20 * time.Second, 20}}
				s := modelServer(t, RealmConfig{Rate: 20, Model: name, Scope: scope, Schedule: sched, ThrottleHTTP: true})
				spec, err := throttlemodel.Parse(name)
				if err != nil {
					t.Fatal(err)
				}
				ref := spec.New(20)
				steps := 0
				throttled := 0
				now := t0
				for i := range 3000 {
					// About 50/s, irregular, alternating tenants in bursts.
					now = now.Add(time.Duration(5+(i*7919)%30) * time.Millisecond)
					for steps < len(sched) && !now.Before(t0.Add(sched[steps].After)) {
						ref.SetCapacity(t0.Add(sched[steps].After), sched[steps].Rate)
						steps++
					}
					addr, key := a, ""
					if (i/10)%2 == 1 {
						addr = b
					}
					if scope == ScopePerTenant {
						key = s.realmTenant(addr)
					}
					want := ref.Admit(now, key)
					got := s.realm.decide(addr, s.realmTenant(addr), now)
					if (got.out == outThrottled) != want.Throttled || got.retry != want.RetryAfter ||
						got.retryHeader != (want.RetryAfter > 0) || (!want.Throttled && got.delay != want.Latency) {
						t.Fatalf("request %d at %v: got %+v, the model says %+v", i, now.Sub(t0), got, want)
					}
					if want.Throttled {
						throttled++
					}
				}
				if throttled == 0 {
					t.Fatal("nothing throttled at over twice the capacity")
				}
			})
		}
	}
}

// A model without Retry-After sends 429 without the header; one with it
// sends whole seconds.
func TestRealmModelRetryAfterHeader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ model, header string }{{"bucket-small-3", ""}, {"penalty-fixed-ra-4", "10"}} {
		e := newEnv(t, 20, func(c *Config) { c.Realm = RealmConfig{Rate: 2, Model: tc.model, ThrottleHTTP: true} })
		var r response
		for range 5 {
			if r, _ = e.realm("a@contoso.com"); r.status == 429 {
				break
			}
		}
		if r.status != 429 {
			t.Fatalf("%s: no 429 in five requests at once", tc.model)
		}
		if got := r.header.Get("Retry-After"); got != tc.header {
			t.Errorf("%s: Retry-After %q, want %q", tc.model, got, tc.header)
		}
	}
}

func TestRealmModelConfig(t *testing.T) {
	t.Parallel()
	for _, bad := range []RealmConfig{
		{Rate: 5, Model: "token-bucket-1"},
		{Rate: 5, Model: "bucket-small"},
		{Rate: 5, Model: "bucket-small-1", Penalty: time.Second},
		{Rate: 5, Model: "bucket-small-1", Burst: 3},
		{Model: "bucket-small-1"},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
		if c := bad.clamped(); c.Validate() != nil || c.Model != "" {
			t.Errorf("%+v clamped to %+v", bad, c)
		}
	}
	e := newEnv(t, 20, nil)
	put := func(body string) response {
		return e.do(http.MethodPut, e.srv.URL()+"/_sim/realm", map[string]string{"Content-Type": "application/json"}, strings.NewReader(body))
	}
	if r := put(`{"rate":5,"model":"queue-ra-4"}`); r.status != 200 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	if got := e.srv.realm.config().Model; got != "queue-ra-4" {
		t.Fatalf("model after PUT %q", got)
	}
	if r := e.do(http.MethodGet, e.srv.URL()+"/_sim/realm", nil, nil); !bytes.Contains(r.body, []byte(`"model":"queue-ra-4"`)) {
		t.Fatalf("GET realm %s", r.body)
	}
	if r := put(`{"rate":5,"model":"queue"}`); r.status != 400 {
		t.Errorf("PUT of a model without seed: %d", r.status)
	}
}
