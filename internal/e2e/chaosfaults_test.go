package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msaudit/msaudit/internal/redistest"
)

// faultPlan sizes TestChaosFaults: the short form runs in 'make test', the
// full one (MSAUDIT_CHAOS=full, 'make chaos') holds each fault for a minute,
// long enough for the batches' 30 s leases to expire.
type faultPlan struct {
	users     int
	realmRate int // requests/s the simulated service sustains
	oom, cut  time.Duration
	// settle is how long after a fault the test waits before the next
	// one: time for asynq to hand back the batches whose leases expired
	// (a recoverer every minute, then a retry delay of up to a minute), so
	// that the answers the fault cost are asked again, and counted, before
	// the next fault.
	settle time.Duration
}

func faultConfig() faultPlan {
	if os.Getenv("MSAUDIT_CHAOS") == "full" {
		return faultPlan{users: 9500, realmRate: 80, oom: time.Minute, cut: time.Minute, settle: 150 * time.Second}
	}
	return faultPlan{users: 600, realmRate: 200, oom: 10 * time.Second, cut: 15 * time.Second, settle: 3 * time.Second}
}

// TestChaosFaults runs an audit through two faults of Redis as the workers
// see it, one after the other: Redis out of memory under noeviction (every
// write refused with OOM) and the network between the workers and Redis
// cut (packets stop, no RST; the connections open during the cut are dead
// when it heals). For each it checks that the workers stay up, that
// /readyz answers 503 at once during the fault and 200 after, that the
// worker logs the fault once rather than each failed command, that nothing
// is dead-lettered and that no more answers are asked again than requests
// were in flight; the run must end equal to the simulator's ground truth.
func TestChaosFaults(t *testing.T) {
	t.Parallel() // a Redis, simulator and workers of its own
	plan := faultConfig()
	dir := t.TempDir()
	srv := privateRedis(t, redisAOF...)
	relay := redistest.NewRelay(t, srv.Addr)
	s := startSim(t, dir, "--users", strconv.Itoa(plan.users), "--seed", "23", "--realm-rate", strconv.Itoa(plan.realmRate),
		"--realm-penalty", "500ms", "--fault-5xx", "0.01", "--fault-bad-json", "0.005")
	env := s.env(srv.URL) // the CLI goes to Redis directly, the workers through the relay
	args := []string{"--concurrency", "4", "--tenant-rate", strconv.Itoa(5 * plan.realmRate),
		"--initial-rate", strconv.Itoa(plan.realmRate / 2), "--max-attempts", "40", "--backoff-base", "100ms",
		"--backoff-max", "2s", "--realm-timeout", "2s"} // the default --reconcile-every: no repair needed
	var probes []string
	for i := range 3 {
		addr := freeAddr(t)
		probes = append(probes, addr)
		startWorker(t, dir, fmt.Sprintf("worker%d", i), s, relay.URL(0), append(args, "--metrics-addr", addr)...)
	}
	for _, a := range probes {
		waitReady(t, a)
	}
	var sub struct {
		RunID string `json:"run_id"`
	}
	out := enqueue(t, env, "submit", "--tenant-id", s.TenantID, "--client-id", clientID,
		"--graph-url", s.GraphURL, "--authority-host", s.Authority, "-o", "json")
	if err := json.Unmarshal(out, &sub); err != nil {
		t.Fatalf("submit output %q: %v", out, err)
	}
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()

	oom := &fault{name: "oom", hold: plan.oom, want: "redis refusing writes (OOM)",
		begin: func() { fillRedis(t, admin) }, end: func() { unfillRedis(t, admin) }}
	cut := &fault{name: "cut", hold: plan.cut, want: "redis unreachable",
		begin: relay.Cut, end: func() { relay.Heal() }}
	var settled time.Time
	progress := func(st status) float64 { return float64(st.Checked) / float64(max(st.AddressesTotal, 1)) }
	st := waitDone(t, env, sub.RunID, 20*time.Minute, func(st status) {
		switch p := progress(st); {
		case oom.start.IsZero() && p > 0.2:
			oom.run(t, s, env, sub.RunID, probes)
			settled = time.Now().Add(plan.settle)
		case cut.start.IsZero() && !oom.start.IsZero() && p > 0.5 && time.Now().After(settled):
			oom.close(t, s, env, sub.RunID)
			cut.run(t, s, env, sub.RunID, probes)
		}
	})
	if cut.start.IsZero() {
		t.Fatalf("the run completed before both faults (oom at %s, cut at %s): it proves too little; make the run larger",
			oom.start.Format(time.TimeOnly), cut.start.Format(time.TimeOnly))
	}
	cut.close(t, s, env, sub.RunID)
	for i := range probes {
		oom.logs(t, dir, i)
		cut.logs(t, dir, i)
	}

	lost, mismatched, present, total := compareTruth(t, s, env, dir, sub.RunID)
	t.Logf("faults: %d addresses; lost %d, mismatched %d, dead-lettered %d; status present %d, ground truth present %d",
		total, lost, mismatched, st.DeadLettered, st.Present, present)
	t.Logf("%-4s %6s %7s %7s %7s %7s %7s %6s %5s %9s %8s %5s  %s", "", "held", "to503", "p50", "p99", "max",
		"to200", "probes", "slow", "in-flight", "repeated", "dead", "warn/error lines per worker (during the fault)")
	for _, f := range []*fault{oom, cut} {
		f.report(t)
	}
	if lost != 0 || mismatched != 0 || st.DeadLettered != 0 || st.AddressesTotal != int64(total) ||
		st.Present != present || st.Checked != st.AddressesTotal {
		t.Errorf("final status %+v: want every address in one final state, equal to the ground truth", st)
	}
}

// fault is one fault of the plan and what the test saw of it.
type fault struct {
	name       string
	hold       time.Duration
	want       string // /readyz's body during the fault
	begin, end func()

	start, stop time.Time
	ready       time.Time // every worker ready again
	samples     []probeSample
	inflight    int64 // realm requests sent from just before the fault until its end
	repeats0    int64
	repeats     int64 // answers asked again from the fault's start until the next checkpoint
	dead0, dead int64
	lines       []string // per worker: its warn and error lines from the fault's start until it was ready again
}

// recordLag is how long before the fault a request's answer may still wait
// to be written (the checker groups answers over 200 ms): such requests are
// counted in flight at the fault.
const recordLag = 250 * time.Millisecond

// run holds the fault for f.hold while probing every worker's /readyz,
// ends it and waits until every worker is ready again.
func (f *fault) run(t *testing.T, s *sim, env []string, run string, probes []string) {
	t.Helper()
	f.repeats0, f.dead0 = repeatedRequests(t, s), getStatus(t, env, run).DeadLettered
	before := s.stats(t).RealmRequests
	time.Sleep(recordLag)
	p := startProbes(probes)
	f.start = time.Now()
	f.begin()
	time.Sleep(f.hold)
	f.inflight = s.stats(t).RealmRequests - before
	f.stop = time.Now()
	f.end()
	deadline := time.Now().Add(time.Minute)
	for !p.allReadySince(f.stop) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	f.ready = time.Now()
	f.samples = p.halt()
}

// close takes the fault's figures once its effects have settled.
func (f *fault) close(t *testing.T, s *sim, env []string, run string) {
	t.Helper()
	f.repeats = repeatedRequests(t, s) - f.repeats0
	f.dead = getStatus(t, env, run).DeadLettered - f.dead0
}

// report prints the fault's figures and checks them.
func (f *fault) report(t *testing.T) {
	t.Helper()
	var (
		to503, to200, slowest time.Duration
		lat                   []time.Duration
		slow, errs            int
	)
	byWorker := map[int][]probeSample{}
	for _, s := range f.samples {
		byWorker[s.worker] = append(byWorker[s.worker], s)
		if s.err != nil {
			errs++
			continue
		}
		lat = append(lat, s.latency)
		if s.latency > 200*time.Millisecond {
			slow++
		}
	}
	for w, ss := range byWorker {
		first503, first200 := time.Time{}, time.Time{}
		for _, s := range ss {
			done := s.at.Add(s.latency)
			switch {
			case s.err != nil:
			case s.code == http.StatusServiceUnavailable && first503.IsZero() && s.at.After(f.start) && done.Before(f.stop):
				first503 = done
				if !strings.Contains(s.body, f.want) {
					t.Errorf("%s: worker%d /readyz during the fault: %q, want %q", f.name, w, s.body, f.want)
				}
			case s.code == http.StatusOK && !first503.IsZero() && s.at.After(first503) && done.Before(f.stop):
				t.Errorf("%s: worker%d /readyz 200 at %s, during the fault", f.name, w, s.at.Format(time.TimeOnly))
			case s.code == http.StatusOK && first200.IsZero() && s.at.After(f.stop):
				first200 = done
			}
		}
		if first503.IsZero() {
			t.Errorf("%s: worker%d never answered 503 during the fault", f.name, w)
		} else {
			to503 = max(to503, first503.Sub(f.start))
		}
		if first200.IsZero() {
			t.Errorf("%s: worker%d not ready again within a minute of the fault's end", f.name, w)
		} else {
			to200 = max(to200, first200.Sub(f.stop))
		}
	}
	slices.Sort(lat)
	pct := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(q*float64(len(lat))))]
	}
	if len(lat) > 0 {
		slowest = lat[len(lat)-1]
	}
	ms := func(d time.Duration) string {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
	}
	t.Logf("%-4s %6s %7s %7s %7s %7s %7s %6d %5d %9d %8d %5d  %s", f.name, f.hold, to503.Round(10*time.Millisecond),
		ms(pct(0.5)), ms(pct(0.99)), ms(slowest), to200.Round(10*time.Millisecond), len(f.samples), slow,
		f.inflight, f.repeats, f.dead, strings.Join(f.lines, " | "))
	switch {
	case errs > 0:
		t.Errorf("%s: %d probes got no answer: a worker died or hung", f.name, errs)
	case pct(0.5) >= 200*time.Millisecond || slowest >= 2*time.Second:
		// A probe that waited on Redis would take seconds (go-redis' read
		// timeout is 5 s); a loaded machine delays a few by a fraction.
		t.Errorf("%s: /readyz answered in %s (median), %s (slowest), %d of %d over 200 ms: want at once, whatever Redis does",
			f.name, pct(0.5), slowest, slow, len(lat))
	}
	if f.dead != 0 {
		t.Errorf("%s: %d addresses dead-lettered", f.name, f.dead)
	}
	if f.repeats > f.inflight {
		t.Errorf("%s: %d answers asked again, more than the %d requests in flight at the fault", f.name, f.repeats, f.inflight)
	}
}

// logs reads worker i's warn and error lines from the fault's start until
// every worker was ready again, and checks that between the worker's line saying
// Redis is faulty and its line saying Redis is back it logged nothing else.
func (f *fault) logs(t *testing.T, dir string, i int) {
	t.Helper()
	file, err := os.Open(fmt.Sprintf("%s/worker%d.log", dir, i))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var (
		msgs    []string
		faulty  bool
		between int
	)
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e struct {
			TS    string `json:"ts"`
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		at, err := time.Parse("2006-01-02T15:04:05.000Z0700", e.TS)
		if err != nil || at.Before(f.start) || at.After(f.ready) {
			continue
		}
		checkerLine := strings.HasPrefix(e.Msg, "redis ")
		switch {
		case e.Msg == "redis reachable and writable again":
			if faulty {
				msgs = append(msgs, e.Msg)
			}
			faulty = false
		case checkerLine && (e.Level == "warn" || e.Level == "error"):
			faulty = true
			msgs = append(msgs, e.Msg)
		case e.Level == "warn" || e.Level == "error":
			msgs = append(msgs, e.Msg)
			if faulty {
				between++
			}
		}
	}
	f.lines = append(f.lines, fmt.Sprintf("%d: %s", len(msgs), strings.Join(msgs, "; ")))
	if between > 0 {
		t.Errorf("%s: worker%d logged %d lines while Redis was faulty, besides the line saying so", f.name, i, between)
	}
}

// fillRedis does to the workers what a Redis that filled up does: under
// noeviction, maxmemory is set to half of what Redis uses, so that every
// write that may grow memory is refused with OOM until unfillRedis. Half,
// not just below: a busy Redis frees megabytes of client buffers and
// deleted keys in moments, which would let writes through a thin margin.
func fillRedis(t *testing.T, rdb *redis.Client) {
	ctx := context.Background()
	if err := rdb.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Error(err)
	}
	if err := rdb.ConfigSet(ctx, "maxmemory", strconv.FormatInt(usedMemory(t, rdb)/2, 10)).Err(); err != nil {
		t.Error(err)
	}
}

// unfillRedis lifts the limit.
func unfillRedis(t *testing.T, rdb *redis.Client) {
	if err := rdb.ConfigSet(context.Background(), "maxmemory", "0").Err(); err != nil {
		t.Error(err)
	}
}

// compareTruth reads the run's JSON report and compares it with the
// simulator's ground truth.
func compareTruth(t *testing.T, s *sim, env []string, dir, run string) (lost, mismatched int, present int64, total int) {
	t.Helper()
	gt := s.truth(t)
	final := map[string]string{}
	for _, r := range jsonReport(t, env, dir, run) {
		final[r.Address] = r.Status
	}
	for _, a := range gt.Addresses {
		want := "absent"
		if a.ConsumerAccount {
			want = "present"
			present++
		}
		switch got := final[a.Address]; {
		case got == "" || got == "pending":
			lost++
		case got != want:
			mismatched++
		}
	}
	return lost, mismatched, present, len(gt.Addresses)
}

// waitReady waits until the worker at addr answers /readyz 200.
func waitReady(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker at %s not ready after 30 s", addr)
		}
	}
}

// probeSample is one /readyz answer.
type probeSample struct {
	worker  int
	at      time.Time
	latency time.Duration
	code    int
	body    string
	err     error
}

// probes asks every worker's /readyz every 100 ms, as a kubelet would.
type probes struct {
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	got  []probeSample
}

func startProbes(addrs []string) *probes {
	p := &probes{stop: make(chan struct{})}
	client := &http.Client{Timeout: 5 * time.Second}
	for i, a := range addrs {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for {
				s := probeSample{worker: i, at: time.Now()}
				resp, err := client.Get("http://" + a + "/readyz")
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					s.code, s.body = resp.StatusCode, strings.TrimSpace(string(b))
				}
				s.latency, s.err = time.Since(s.at), err
				p.mu.Lock()
				p.got = append(p.got, s)
				p.mu.Unlock()
				select {
				case <-p.stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
	}
	return p
}

// allReadySince reports whether every worker answered 200 to a probe sent
// after t.
func (p *probes) allReadySince(t time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	ready := map[int]bool{}
	workers := map[int]bool{}
	for _, s := range p.got {
		workers[s.worker] = true
		if s.err == nil && s.code == http.StatusOK && s.at.After(t) {
			ready[s.worker] = true
		}
	}
	return len(workers) > 0 && len(ready) == len(workers)
}

func (p *probes) halt() []probeSample {
	close(p.stop)
	p.wg.Wait()
	return p.got
}
