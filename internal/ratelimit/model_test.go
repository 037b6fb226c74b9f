package ratelimit

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// The model runs the real limiter scripts (on miniredis, whose clock the
// model sets) against a simulated realm service in virtual time: minutes of
// a run take a second or two, deterministically for a seed. It is how the
// algorithm's constants were chosen; `make bench-throttle` measures the
// whole system against the real simulator.

// modelThrottle is the simulated realm service as the model drives it: a
// request of key (the scope: "" for a source-wide capacity, else the
// tenant) arrives at now and is throttled (with a Retry-After, 0 for none)
// or answered after latency more than the network's.
type modelThrottle interface {
	admit(now time.Time, key string) (throttled bool, retryAfter, latency time.Duration)
	setCapacity(now time.Time, perSecond float64)
}

// modelService is the realm service's throttle of bench-model: a token
// bucket of one second of capacity per scope, and a penalty window that
// every request sent into it prolongs.
type modelService struct {
	capacity float64
	penalty  time.Duration
	buckets  map[string]*modelBucket
}

type modelBucket struct {
	tokens       float64
	last         time.Time
	penaltyUntil time.Time
}

func (m *modelService) setCapacity(_ time.Time, c float64) { m.capacity = c }
func (m *modelService) admit(now time.Time, key string) (bool, time.Duration, time.Duration) {
	return !m.take(key, now), 0, 0
}

func (m *modelService) take(key string, now time.Time) bool {
	if m.buckets == nil {
		m.buckets = map[string]*modelBucket{}
	}
	b := m.buckets[key]
	c := m.capacity
	if b == nil {
		b = &modelBucket{tokens: c, last: now}
		m.buckets[key] = b
	}
	if now.Before(b.penaltyUntil) {
		b.penaltyUntil = now.Add(m.penalty)
		return false
	}
	b.tokens = min(c, b.tokens+now.Sub(b.last).Seconds()*c)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	b.penaltyUntil = now.Add(m.penalty)
	return false
}

// capacityStep changes the service's capacity at a time into the run.
type capacityStep struct {
	at       time.Duration
	capacity float64
}

type modelEvent struct {
	at  time.Time
	seq int
	fn  func()
}

type modelQueue []modelEvent

func (q modelQueue) Len() int { return len(q) }
func (q modelQueue) Less(i, j int) bool {
	if q[i].at.Equal(q[j].at) {
		return q[i].seq < q[j].seq
	}
	return q[i].at.Before(q[j].at)
}
func (q modelQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *modelQueue) Push(x any)   { *q = append(*q, x.(modelEvent)) }
func (q *modelQueue) Pop() any     { old := *q; e := old[len(old)-1]; *q = old[:len(old)-1]; return e }
func (q *modelQueue) after(now time.Time, d time.Duration, fn func()) {
	heap.Push(q, modelEvent{at: now.Add(d), seq: len(*q) + int(now.UnixNano()%1000003), fn: fn})
}

// modelTenant is one run: its addresses and what happened to them.
type modelTenant struct {
	id                  string
	remaining, inFlight int
	answered, throttled int
	requests            int
	first, last         time.Time
	perSecond           map[int]int // answered per second since the model's start
	refused, stale      int
	lost                int // addresses given up after maxAttempts throttles
	lastRate            float64
}

// maxAttempts is how many throttles of one address the model's workers
// take before they give it up (lost), as the throttle bench's workers do.
const maxAttempts = 20

// modelRun is one configuration of the model.
type modelRun struct {
	cfg       Config
	svc       modelThrottle
	perTenant bool           // a capacity per tenant, else one for all
	capacity  float64        // per scope, at the start
	avail     float64        // what the service sustains per scope at capacity (0: capacity)
	steps     []capacityStep // later changes of the capacity
	start     time.Time
	tenants   []*modelTenant
	slots     int // requesters per tenant (batches checked at once)
	processes int // limiter instances (worker processes)
	rng       *rand.Rand
	trace     bool
	// giveUpAfter, if > 0, ends the run once more requests than this were
	// throttled (result.gaveUp): the caller knows it has its answer.
	giveUpAfter int
}

type modelResult struct {
	whole, steady  float64 // answered/s over the run, and from 20% to 90%
	throttledShare float64
	duration       time.Duration
	tenants        []*modelTenant
	start          time.Time
	reach, tail    time.Duration // to 0.9 of the capacity (5 s average); the last 1 % of answers
	gaveUp         bool          // ended at giveUpAfter throttles: the other figures are not set
}

// key is the scope of tenant t's requests at the service.
func (m *modelRun) key(t *modelTenant) string {
	if m.perTenant {
		return t.id
	}
	return ""
}

// available is the capacity all tenants together can use at the start.
func (m *modelRun) available() float64 {
	avail := m.avail
	if avail == 0 {
		avail = m.capacity
	}
	if m.perTenant {
		return avail * float64(len(m.tenants))
	}
	return avail
}

// applySteps applies the capacity changes due by now.
func (m *modelRun) applySteps(now time.Time) {
	for len(m.steps) > 0 && now.Sub(m.start) >= m.steps[0].at {
		m.svc.setCapacity(now, m.steps[0].capacity)
		m.steps = m.steps[1:]
	}
}

func (m *modelRun) latency() time.Duration {
	if m.rng.Float64() < 0.02 {
		return time.Second + time.Duration(m.rng.Float64()*float64(time.Second))
	}
	return 100*time.Millisecond + time.Duration(m.rng.Float64()*float64(300*time.Millisecond))
}

// forward is the delay asynq adds to a batch handed back to the queue: it
// waits for the forwarder and a worker's poll.
func (m *modelRun) forward() time.Duration {
	return time.Duration(m.rng.Float64() * float64(750*time.Millisecond))
}

func (m *modelRun) run(tb testing.TB) modelResult {
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		tb.Fatal(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mr.SetTime(now)
	m.start = now
	lims := make([]*Limiter, m.processes)
	for i := range lims {
		l, err := New(rdb, m.cfg)
		if err != nil {
			tb.Fatal(err)
		}
		l.now = func() time.Time { return now }
		lims[i] = l
	}
	ctx := tb.Context()
	q := &modelQueue{}
	var step func(t *modelTenant, l *Limiter, holding bool, attempts int)
	step = func(t *modelTenant, l *Limiter, holding bool, attempts int) {
		if !holding {
			if t.remaining == 0 {
				return
			}
			t.remaining--
			holding, attempts = true, 0
		}
		again := func(d time.Duration) {
			q.after(now, d, func() { step(t, l, true, attempts) })
		}
		mr.SetTime(now)
		r, err := l.Reserve(ctx, t.id)
		if err != nil {
			tb.Fatal(err)
		}
		t.lastRate = r.Rate
		if !r.OK {
			t.refused++
			again(r.Wait + time.Duration(m.rng.Int64N(int64(r.Wait/4)+1)) + m.forward())
			return
		}
		q.after(now, r.Wait, func() {
			if left := l.PausedFor(t.id); left > 0 {
				again(left + m.forward())
				return
			}
			if r.Wait >= 20*time.Millisecond {
				mr.SetTime(now)
				stale, left, err := l.Stale(ctx, t.id, r)
				if err != nil {
					tb.Fatal(err)
				}
				if stale {
					t.stale++
					again(max(left, 100*time.Millisecond) + m.forward())
					return
				}
			}
			lat := m.latency()
			t.requests++
			t.inFlight++
			if t.first.IsZero() {
				t.first = now
			}
			q.after(now, lat/2, func() {
				m.applySteps(now)
				throttled, retry, work := m.svc.admit(now, m.key(t))
				q.after(now, work+lat-lat/2, func() {
					t.inFlight--
					if !throttled {
						l.Answered(t.id, r)
						t.answered++
						t.last = now
						t.perSecond[int(now.Sub(m.start)/time.Second)]++
						step(t, l, false, 0)
						return
					}
					t.throttled++
					mr.SetTime(now)
					p, err := l.Throttled(ctx, t.id, retry, r)
					if err != nil {
						tb.Fatal(err)
					}
					if attempts++; attempts >= maxAttempts {
						t.lost++
						q.after(now, m.forward(), func() { step(t, l, false, 0) })
						return
					}
					backoff := min(5*time.Second, 200*time.Millisecond<<min(attempts, 10))
					again(max(p, time.Duration(m.rng.Int64N(int64(backoff)))) + m.forward())
				})
			})
		})
	}
	for _, t := range m.tenants {
		t.perSecond = map[int]int{}
		for i := 0; i < m.slots; i++ {
			l := lims[i%len(lims)]
			q.after(now, time.Duration(m.rng.Int64N(int64(500*time.Millisecond))), func() { step(t, l, false, 0) })
		}
	}
	lastTrace := now
	for q.Len() > 0 {
		e := heap.Pop(q).(modelEvent)
		now = e.at
		e.fn()
		if m.trace && now.Sub(lastTrace) >= time.Second {
			lastTrace = now
			m.traceLine(tb, rdb, now)
		}
		if now.Sub(m.start) > time.Hour {
			tb.Fatal("model run did not finish in an hour of model time")
		}
		if m.giveUpAfter > 0 && m.throttled() > m.giveUpAfter {
			return modelResult{gaveUp: true}
		}
	}
	return m.result()
}

// throttled is how many requests were throttled so far.
func (m *modelRun) throttled() (n int) {
	for _, t := range m.tenants {
		n += t.throttled
	}
	return n
}

func (m *modelRun) traceLine(tb testing.TB, rdb *redis.Client, now time.Time) {
	ctx := tb.Context()
	var b strings.Builder
	sec := int(now.Sub(m.start) / time.Second)
	fmt.Fprintf(&b, "t=%4ds", sec)
	for _, t := range m.tenants {
		h := rdb.HMGet(ctx, stateKey(t.id), "rate", "est", "pause", "sh").Val()
		fmt.Fprintf(&b, " | %s ans %3d thr %4d refused %d stale %d inflight %d paced %.1f rate %.6v est %.6v pause %.7v sh %v", t.id, t.perSecond[sec-1], t.throttled, t.refused, t.stale, t.inFlight, t.lastRate, h[0], h[1], h[2], h[3])
	}
	g := rdb.HMGet(ctx, sourceKey, "rate", "est", "pause").Val()
	fmt.Fprintf(&b, " | source rate %.6v est %.6v pause %.7v", g[0], g[1], g[2])
	fmt.Println(b.String())
}

func (m *modelRun) result() modelResult {
	var res modelResult
	res.tenants = m.tenants
	res.start = m.start
	var first, last time.Time
	total, throttled, requests := 0, 0, 0
	for _, t := range m.tenants {
		if first.IsZero() || t.first.Before(first) {
			first = t.first
		}
		if t.last.After(last) {
			last = t.last
		}
		total += t.answered
		throttled += t.throttled
		requests += t.requests
	}
	res.duration = last.Sub(first)
	res.whole = float64(total) / res.duration.Seconds()
	res.throttledShare = float64(throttled) / float64(requests)
	// Steady: between 20 % and 90 % of all answers.
	seconds := int(last.Sub(m.start)/time.Second) + 1
	cum, lo, hi := 0, -1, -1
	for s := 0; s < seconds; s++ {
		for _, t := range m.tenants {
			cum += t.perSecond[s]
		}
		if lo < 0 && float64(cum) >= 0.2*float64(total) {
			lo = s
		}
		if hi < 0 && float64(cum) >= 0.9*float64(total) {
			hi = s
			break
		}
	}
	if hi > lo {
		res.steady = 0.7 * float64(total) / float64(hi-lo)
	}
	avail := m.available()
	sum := func(s int) (n int) {
		for _, t := range m.tenants {
			n += t.perSecond[s]
		}
		return n
	}
	for s := 5; s < seconds; s++ {
		if sum(s-4)+sum(s-3)+sum(s-2)+sum(s-1)+sum(s) >= int(4.5*avail) {
			res.reach = time.Duration(s)*time.Second - first.Sub(m.start)
			break
		}
	}
	cum = 0
	for s := 0; s < seconds; s++ {
		if cum += sum(s); float64(cum) >= 0.99*float64(total) {
			res.tail = last.Sub(m.start) - time.Duration(s)*time.Second
			break
		}
	}
	return res
}

func newModel(seed uint64, capacity float64, tenants int, perTenant bool, processes int) *modelRun {
	avail := capacity
	if perTenant {
		avail *= float64(tenants)
	}
	m := &modelRun{
		cfg:       Config{TenantRate: 10 * capacity, Initial: 5, Adaptive: true, MaxWait: 2 * time.Second},
		svc:       &modelService{capacity: capacity, penalty: 2 * time.Second},
		perTenant: perTenant,
		capacity:  capacity,
		slots:     int(2*capacity*0.4) + 6,
		processes: processes,
		rng:       rand.New(rand.NewPCG(seed, uint64(capacity)*31+uint64(tenants))),
		trace:     os.Getenv("MODEL_TRACE") != "",
	}
	n := int(avail * 180)
	for i := 0; i < tenants; i++ {
		m.tenants = append(m.tenants, &modelTenant{id: fmt.Sprintf("t%d", i), remaining: n / tenants})
	}
	return m
}

// BenchmarkLimiterModel prints the model's figures for the configurations
// of `make bench-throttle`: whole-run and steady goodput over the available
// capacity, throttled share.
//
//	go test -run '^$' -bench LimiterModel -benchtime 1x ./internal/ratelimit
func BenchmarkLimiterModel(b *testing.B) {
	for b.Loop() {
		fmt.Printf("%-10s %-5s %-7s %-8s %-8s %-9s %s\n", "setup", "C", "procs", "whole", "steady", "throttled", "per tenant")
		for _, setup := range []struct {
			name      string
			tenants   int
			perTenant bool
		}{{"one", 1, false}, {"shared", 2, false}, {"pertenant", 2, true}} {
			if s := os.Getenv("MODEL_SETUPS"); s != "" && !strings.Contains(s, setup.name) {
				continue
			}
			for _, c := range []float64{5, 20, 100} {
				if s := os.Getenv("MODEL_C"); s != "" && s != fmt.Sprint(c) {
					continue
				}
				seeds := 1
				if v, err := strconv.Atoi(os.Getenv("MODEL_SEEDS")); err == nil && v > 0 {
					seeds = v
				}
				avail := c
				if setup.perTenant {
					avail *= 2
				}
				for seed := range seeds {
					m := newModel(uint64(seed+7), c, setup.tenants, setup.perTenant, 2)
					r := m.run(b)
					var per []string
					for _, t := range r.tenants {
						per = append(per, fmt.Sprintf("%.2f", float64(t.answered)/t.last.Sub(t.first).Seconds()/avail))
					}
					fmt.Printf("%-10s %-5.0f %-7d %-8.3f %-8.3f %-9s %s (%s, 0.9C after %s, last 1%% took %s)\n", setup.name, c, 2, r.whole/avail, r.steady/avail,
						fmt.Sprintf("%.2f%%", 100*r.throttledShare), strings.Join(per, " "), r.duration.Round(time.Second), r.reach, r.tail)
				}
			}
		}
	}
}

// BenchmarkLimiterModelCapacityChange prints the answered rate of one
// tenant whose capacity drops from 40/s to 15/s at 2 min and is back at 40/s
// from 4 min, per 5 s window, and the figures of the bar: the answered rate
// from 15 s after the drop until the recovery, and from 60 s after the
// recovery, over the capacity then.
func BenchmarkLimiterModelCapacityChange(b *testing.B) {
	for b.Loop() {
		m := newModel(7, 40, 1, false, 2)
		m.steps = []capacityStep{{2 * time.Minute, 15}, {4 * time.Minute, 40}}
		m.tenants[0].remaining = 40*120 + 15*120 + 40*120
		r := m.run(b)
		t := r.tenants[0]
		rate := func(from, to int) float64 {
			n := 0
			for s := from; s < to; s++ {
				n += t.perSecond[s]
			}
			return float64(n) / float64(to-from)
		}
		end := int(t.last.Sub(r.start) / time.Second)
		for s := 0; s+5 <= end; s += 5 {
			fmt.Printf("%3d-%3ds %5.1f/s\n", s, s+5, rate(s, s+5))
		}
		fmt.Printf("after the drop (135-240 s): %.2f of 15/s; after the recovery (300-%d s): %.2f of 40/s; throttled %.2f%%\n",
			rate(135, 240)/15, end, rate(300, end)/40, 100*r.throttledShare)
	}
}
