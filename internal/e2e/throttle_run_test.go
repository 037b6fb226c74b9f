package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msaudit/msaudit/internal/redistest"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/tasks"
)

// benchTenant is one audited tenant of a configuration. Its ID is also the
// domain of its addresses, which is how the simulator tells tenants apart
// (--realm-scope per-tenant): contoso.com is the simulated tenant's own
// domain, counted under the simulator's tenant ID; northwind.example is a
// foreign domain, counted under its name.
type benchTenant struct {
	id  string
	own bool
}

var benchTenants = []benchTenant{{"contoso.com", true}, {"northwind.example", false}}

// simKey is the tenant's key in the simulator's realm_tenants.
func (bt benchTenant) simKey(s *sim) string {
	if bt.own {
		return s.TenantID
	}
	return bt.id
}

// simSample is the simulator's realm counters at one moment.
type simSample struct {
	at                            time.Time
	requests, answered, throttled int64
	tenants                       map[string]int64 // answered, by simKey
}

func (s *sim) sample(t testing.TB, c *http.Client) (simSample, *time.Time) {
	var st struct {
		Requests  int64                               `json:"realm_requests"`
		Answered  int64                               `json:"realm_answered"`
		Throttled int64                               `json:"realm_throttled"`
		Start     *time.Time                          `json:"realm_schedule_start"`
		Tenants   map[string]struct{ Answered int64 } `json:"realm_tenants"`
	}
	resp, err := c.Get(s.URL + "/_sim/stats?per_address=false")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	sm := simSample{at: time.Now(), requests: st.Requests, answered: st.Answered, throttled: st.Throttled,
		tenants: make(map[string]int64, len(st.Tenants))}
	for k, v := range st.Tenants {
		sm.tenants[k] = v.Answered
	}
	return sm, st.Start
}

// samples are one run's simulator samples, a second apart, with the time of
// the first realm request (the simulator's schedule start).
type samples struct {
	list  []simSample
	first time.Time
}

func (ss samples) last() simSample { return ss.list[len(ss.list)-1] }

// answeredAt interpolates the answers of tenant key ("" for all) at t.
func (ss samples) answeredAt(key string, t time.Time) float64 {
	val := func(sm simSample) float64 {
		if key == "" {
			return float64(sm.answered)
		}
		return float64(sm.tenants[key])
	}
	prev := simSample{at: ss.first}
	for _, sm := range ss.list {
		if !sm.at.Before(t) {
			if d := sm.at.Sub(prev.at); d > 0 && prev.at.Before(t) {
				return val(prev) + (val(sm)-val(prev))*t.Sub(prev.at).Seconds()/d.Seconds()
			}
			return val(sm)
		}
		prev = sm
	}
	return val(ss.last())
}

// rate is tenant key's answers per second between from and to (as offsets
// from the first request).
func (ss samples) rate(key string, from, to time.Duration) float64 {
	if to <= from {
		return 0
	}
	a, b := ss.first.Add(from), ss.first.Add(to)
	return (ss.answeredAt(key, b) - ss.answeredAt(key, a)) / (to - from).Seconds()
}

// lastAnswer is when tenant key got its last answer, as an offset from the
// first request: the first sample holding its final count.
func (ss samples) lastAnswer(key string) time.Duration {
	final := ss.answeredAt(key, ss.last().at)
	for _, sm := range ss.list {
		if ss.answeredAt(key, sm.at) >= final {
			return sm.at.Sub(ss.first)
		}
	}
	return ss.last().at.Sub(ss.first)
}

// startUp is when the answers over a 5 s window first came at rate or more:
// the window's end, as an offset from the first request; -1 if they never
// did.
func (ss samples) startUp(rate float64) time.Duration {
	const window = 5 * time.Second
	end := ss.lastAnswer("")
	for t := time.Duration(0); t+window <= end; t += time.Second {
		if ss.rate("", t, t+window) >= rate {
			return t + window
		}
	}
	return -1
}

// reached is when all answers first reached frac of n (offset from the first
// request).
func (ss samples) reached(frac float64, n int) time.Duration {
	for _, sm := range ss.list {
		if float64(sm.answered) >= frac*float64(n) {
			return sm.at.Sub(ss.first)
		}
	}
	return ss.last().at.Sub(ss.first)
}

// runOutcome is what one configuration's processes did.
type runOutcome struct {
	samples samples
	keys    []string // the tenants' simulator keys, in benchTenants order
	lost    int64
	wall    time.Duration
}

// runThrottle starts a private Redis, the simulator and the workers of cfg,
// submits the tenants' runs at once and samples the simulator every second
// until all runs complete.
func runThrottle(t testing.TB, cfg throttleConfig) runOutcome {
	dir := t.TempDir()
	rs, err := redistest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Stop)
	s := startSim(t, dir, cfg.simArgs()...)
	for i := range cfg.workers {
		startWorker(t, dir, fmt.Sprintf("worker%d", i), s, rs.URL, cfg.workerArgs()...)
	}
	tenants := benchTenants[:cfg.tenantCount()]
	start := time.Now()
	runs := submitAll(t, s.env(rs.URL), dir, tenants, cfg.n)
	opts, _ := redis.ParseURL(rs.URL)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	store := runstore.New(rdb)
	admin := s.admin(t)
	out := runOutcome{samples: samples{first: start}}
	for _, bt := range tenants {
		out.keys = append(out.keys, bt.simKey(s))
	}
	trace := os.Getenv("THROTTLE_TRACE") != ""
	limit := max(20*time.Minute, 6*time.Duration(float64(cfg.n)/cfg.available()*float64(time.Second)))
	for done := false; !done; {
		time.Sleep(time.Second)
		sm, first := s.sample(t, admin)
		if first != nil {
			out.samples.first = *first
		}
		out.samples.list = append(out.samples.list, sm)
		if trace && len(out.samples.list) > 1 {
			traceLine(rdb, cfg.name(), out.samples, out.keys)
		}
		done, out.lost = true, int64(cfg.n)
		for _, run := range runs {
			st, err := store.GetRun(context.Background(), run)
			if err != nil {
				t.Fatal(err)
			}
			done = done && st.State() == runstore.StateCompleted
			out.lost -= st.Checked + st.DeadLettered
		}
		if !done && time.Since(start) > limit {
			t.Fatalf("runs not completed after %s", limit)
		}
	}
	out.wall = time.Since(start)
	return out
}

// submitAll writes each tenant's share of n addresses and submits the runs
// at the same moment, as two teams starting their audits together would.
func submitAll(t testing.TB, env []string, dir string, tenants []benchTenant, n int) []string {
	type submitted struct {
		run string
		err error
	}
	ch := make([]chan submitted, len(tenants))
	for i, bt := range tenants {
		list := make([]string, 0, n/len(tenants))
		for j := i; j < n; j += len(tenants) {
			list = append(list, fmt.Sprintf("bench%06d@%s", j, bt.id))
		}
		file := filepath.Join(dir, bt.id+".txt")
		if err := os.WriteFile(file, []byte(strings.Join(list, "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
		ch[i] = make(chan submitted, 1)
		go func() {
			out, errOut, err := enqueueErr(env, "submit", "--tenant-id", bt.id, "--addresses-file", file)
			if err != nil {
				err = fmt.Errorf("submit %s: %v\n%s", bt.id, err, errOut)
			}
			ch[i] <- submitted{strings.TrimSpace(string(out)), err}
		}()
	}
	var runs []string
	for _, c := range ch {
		r := <-c
		if r.err != nil {
			t.Fatal(r.err)
		}
		runs = append(runs, r.run)
	}
	return runs
}

// traceLine prints the last second of a run (THROTTLE_TRACE=1): answers and
// throttles, each tenant's answers, every field of every tenant's limiter
// hash (whatever the limiter keeps there), and the batches pending, active
// and deferred over all lanes.
func traceLine(rdb *redis.Client, name string, ss samples, keys []string) {
	ctx := context.Background()
	prev, cur := ss.list[len(ss.list)-2], ss.list[len(ss.list)-1]
	dt := cur.at.Sub(prev.at).Seconds()
	var b strings.Builder
	fmt.Fprintf(&b, "%s t=%5.1fs answered/s %6.1f throttled %3d", name, cur.at.Sub(ss.first).Seconds(),
		float64(cur.answered-prev.answered)/dt, cur.throttled-prev.throttled)
	if len(keys) > 1 {
		for i, k := range keys {
			fmt.Fprintf(&b, " t%d %5.1f/s", i+1, float64(cur.tenants[k]-prev.tenants[k])/dt)
		}
	}
	rlKeys, _ := rdb.Keys(ctx, "msaudit:rl:*").Result()
	slices.Sort(rlKeys)
	for _, k := range rlKeys {
		h, _ := rdb.HGetAll(ctx, k).Result()
		fields := make([]string, 0, len(h))
		for f, v := range h {
			fields = append(fields, f+"="+v)
		}
		slices.Sort(fields)
		fmt.Fprintf(&b, " | %s %s", strings.TrimPrefix(strings.TrimPrefix(k, "msaudit:rl:"), "tenant:"), strings.Join(fields, " "))
	}
	var pending, active, retry int64
	for q := range tasks.Queues() {
		pending += rdb.LLen(ctx, "asynq:{"+q+"}:pending").Val()
		active += rdb.LLen(ctx, "asynq:{"+q+"}:active").Val()
		retry += rdb.ZCard(ctx, "asynq:{"+q+"}:retry").Val()
	}
	fmt.Fprintf(&b, " | batches pending %d active %d deferred %d", pending, active, retry)
	fmt.Println(b.String())
}
