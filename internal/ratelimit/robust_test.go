package ratelimit

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The robustness bench runs the limiter's scripts, as the model does,
// against every throttle of a family of plausible service shapes
// (robustFamily), half of which tuned the constants and half of which were
// held out of that tuning: the held-out half's figures are the ones that
// count.

// robustSetup is how tenants meet the service's capacity.
type robustSetup struct {
	name      string
	tenants   int
	perTenant bool
}

var robustSetups = []robustSetup{{"one", 1, false}, {"shared", 2, false}, {"own", 2, true}}

// robustCase is one run of the bench.
type robustCase struct {
	model    robustModel
	index    int // the model's place in the family (seeds, capacity)
	setup    robustSetup
	workers  int
	capacity float64 // per scope
	change   bool    // the capacity-change scenario
}

// robustCapacities are the capacities (per scope) the sweep's runs take in
// turn, so that every model meets a low, a middling and a high one.
var robustCapacities = []float64{10, 20, 40}

// The capacity-change scenario: one tenant, 2 workers, robustChangeHigh
// dropping to robustChangeLow at 2 min and back at 4 min.
const (
	robustChangeHigh, robustChangeLow  = 40.0, 16.0
	robustChangeDrop, robustChangeBack = 2 * time.Minute, 4 * time.Minute
)

// robustResult is what one run measured.
type robustResult struct {
	c         robustCase
	goodput   float64 // whole run over the available capacity
	throttled float64 // share of requests
	lost      int
	// The change scenario: answered rate from 15 s after the drop to the
	// recovery over the low capacity, and from 60 s after the recovery to
	// the end over the high one.
	afterDrop, afterBack float64
	// paced is what the best evenly paced constant rate reaches, as a share
	// of the available capacity (see bestPaced): for the change scenario,
	// at the low and at the high capacity.
	paced, pacedLow, pacedHigh float64
	err                        string
}

// The bar of the held-out half: whole-run goodput and throttled share.
const (
	robustGoodput   = 0.9
	robustThrottled = 0.02
)

// meets says whether a sweep run meets the bar against the available
// capacity (over 1) or against what the best constant pacer reached.
func (r robustResult) meets(over float64) bool {
	return r.goodput >= robustGoodput*over && r.throttled <= robustThrottled && r.lost == 0
}

// pacedKey names a constant-pacer measurement: a model at a capacity.
type pacedKey struct {
	index    int
	capacity float64
}

// bestPaced is the best a limiter could do on the bench's network: the
// model run with the rate fixed (no adaptation) at fractions of the
// available capacity, one tenant, 2 workers, and the goodput (over the
// available capacity) of the highest fraction whose throttled share stays
// within robustThrottled. Requests leave evenly spaced but arrive 50–200 ms
// later (a few a second later), so a burst allowance of a request or two
// (bucket-small at 10/s), a low concurrency or a penalty box on the first
// excess throttles evenly paced rates well under the capacity: no limiter
// pacing evenly does better than this rate chosen in hindsight, and goodput
// over it is the limiter's own loss. The fraction is searched by bisection
// from 1 down to pacedFloor.
//
// A fixed rate into a penalty box that every request extends never leaves
// it, and its run would last until every address had been throttled
// maxAttempts times. Since no address is sent more than maxAttempts+1
// times, a run with more throttles than robustThrottled of that many
// requests is over the bar whatever follows, and it stops there.
func bestPaced(tb testing.TB, c robustCase) float64 {
	try := func(f float64) (goodput float64, ok bool) {
		k := robustCase{model: c.model, index: c.index, setup: robustSetups[0], workers: 2, capacity: c.capacity}
		m := k.newRun()
		m.cfg.Adaptive = false
		m.cfg.TenantRate = f * m.available()
		addresses := 0
		for _, t := range m.tenants {
			addresses += t.remaining
		}
		m.giveUpAfter = int(robustThrottled * float64(addresses*(maxAttempts+1)))
		r := m.run(panicTB{tb})
		if r.gaveUp {
			return 0, false
		}
		return r.whole / m.available(), r.throttledShare <= robustThrottled
	}
	if g, ok := try(1); ok {
		return g
	}
	lo, hi, best := pacedFloor, 1.0, 0.0
	if g, ok := try(lo); ok {
		best = g
	} else {
		return 0
	}
	for range pacedSteps {
		mid := (lo + hi) / 2
		if g, ok := try(mid); ok {
			lo, best = mid, g
		} else {
			hi = mid
		}
	}
	return best
}

// The constant pacer's search: from pacedFloor of the available capacity,
// pacedSteps halvings (to within 1 %).
const (
	pacedFloor = 0.3
	pacedSteps = 6
)

func (c robustCase) seed() uint64 { return uint64(1000*c.index + 10*c.workers + len(c.setup.name)) }

// newRun builds the model of the case.
func (c robustCase) newRun() *modelRun {
	m := &modelRun{
		cfg:       Config{TenantRate: 10 * c.capacity, Initial: 5, Adaptive: true, MaxWait: 2 * time.Second},
		svc:       c.model.new(c.capacity),
		perTenant: c.setup.perTenant,
		capacity:  c.capacity,
		avail:     c.model.available(c.capacity),
		slots:     int(2*c.capacity*0.4) + 6,
		processes: c.workers,
		rng:       rand.New(rand.NewPCG(c.seed(), 77)),
		trace:     os.Getenv("MODEL_TRACE") != "",
	}
	n := int(180 * c.model.available(c.capacity) * float64(c.setup.tenants))
	if !c.setup.perTenant {
		n = int(180 * c.model.available(c.capacity))
	}
	if c.change {
		m.steps = []capacityStep{{robustChangeDrop, robustChangeLow}, {robustChangeBack, robustChangeHigh}}
		n = int(robustChangeHigh*robustChangeDrop.Seconds() + robustChangeLow*(robustChangeBack-robustChangeDrop).Seconds() +
			robustChangeHigh*robustChangeDrop.Seconds())
	}
	for i := range c.setup.tenants {
		m.tenants = append(m.tenants, &modelTenant{id: fmt.Sprintf("t%d", i), remaining: n / c.setup.tenants})
	}
	return m
}

// run runs the case; a failure of the model is returned, not fatal, since
// cases run on goroutines of their own.
func (c robustCase) run(tb testing.TB) (out robustResult) {
	out.c = c
	defer func() {
		if v := recover(); v != nil {
			out.err = fmt.Sprint(v)
		}
	}()
	m := c.newRun()
	r := m.run(panicTB{tb})
	out.goodput, out.throttled = r.whole/m.available(), r.throttledShare
	for _, t := range r.tenants {
		out.lost += t.lost
	}
	if c.change {
		rate := func(from, to time.Duration) float64 {
			n := 0
			for s := int(from.Seconds()); s < int(to.Seconds()); s++ {
				for _, t := range r.tenants {
					n += t.perSecond[s]
				}
			}
			return float64(n) / (to - from).Seconds()
		}
		end := r.duration + r.tenants[0].first.Sub(r.start)
		out.afterDrop = rate(robustChangeDrop+15*time.Second, robustChangeBack) / c.model.available(robustChangeLow)
		out.afterBack = rate(robustChangeBack+time.Minute, end.Truncate(time.Second)) / c.model.available(robustChangeHigh)
	}
	return out
}

// panicTB turns the model's fatal errors into panics, which run recovers:
// testing.TB's Fatal must be called from the benchmark's own goroutine.
type panicTB struct{ testing.TB }

func (p panicTB) Fatal(args ...any) { panic(fmt.Sprint(args...)) }
func (p panicTB) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// robustCases is every case of the bench for the models of one half.
func robustCases(family []robustModel, heldOut bool) []robustCase {
	var cases []robustCase
	for i, model := range family {
		if model.heldOut() != heldOut {
			continue
		}
		if f := os.Getenv("ROBUST_MODELS"); f != "" && !slices.ContainsFunc(strings.Split(f, ","), func(sub string) bool {
			return strings.Contains(model.name(), sub)
		}) {
			continue
		}
		for si, setup := range robustSetups {
			for wi, w := range []int{1, 2, 4, 8} {
				if f := os.Getenv("ROBUST_WORKERS"); f != "" && !slices.Contains(strings.Split(f, ","), strconv.Itoa(w)) {
					continue
				}
				cases = append(cases, robustCase{model: model, index: i, setup: setup, workers: w,
					capacity: robustCapacities[(i+si+wi)%len(robustCapacities)]})
			}
		}
		cases = append(cases, robustCase{model: model, index: i, setup: robustSetups[0], workers: 2,
			capacity: robustChangeHigh, change: true})
	}
	return cases
}

// runAll runs the cases, and the constant pacer at each model and capacity
// they use, on ROBUST_PARALLEL goroutines (default: one per CPU). Each run
// has its own Redis, service and random source, so its figures do not depend
// on the others.
func runAll(tb testing.TB, cases []robustCase) []robustResult {
	parallel := runtime.GOMAXPROCS(0)
	if v, err := strconv.Atoi(os.Getenv("ROBUST_PARALLEL")); err == nil && v > 0 {
		parallel = v
	}
	inParallel := func(n int, run func(i int)) {
		var wg sync.WaitGroup
		sem := make(chan struct{}, parallel)
		for i := range n {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				run(i)
			}()
		}
		wg.Wait()
	}
	var keys []robustCase
	paced := map[pacedKey]float64{}
	need := func(c robustCase, capacity float64) {
		k := pacedKey{c.index, capacity}
		if _, ok := paced[k]; !ok {
			paced[k] = 0
			c.capacity = capacity
			keys = append(keys, c)
		}
	}
	for _, c := range cases {
		if c.change {
			need(c, robustChangeLow)
			need(c, robustChangeHigh)
		} else {
			need(c, c.capacity)
		}
	}
	found := make([]float64, len(keys))
	inParallel(len(keys), func(i int) { found[i] = bestPaced(tb, keys[i]) })
	for i, c := range keys {
		paced[pacedKey{c.index, c.capacity}] = found[i]
	}
	out := make([]robustResult, len(cases))
	inParallel(len(cases), func(i int) {
		c := cases[i]
		out[i] = c.run(tb)
		if c.change {
			out[i].pacedLow, out[i].pacedHigh = paced[pacedKey{c.index, robustChangeLow}], paced[pacedKey{c.index, robustChangeHigh}]
		} else {
			out[i].paced = paced[pacedKey{c.index, c.capacity}]
		}
	})
	return out
}

// printHalf prints the figures of one half of the family and its summary
// line.
func printHalf(label string, results []robustResult) {
	fmt.Printf("\n%s\n%-9s %-28s %-5s %-7s %-7s %-8s %-9s %-4s %-6s %s\n", strings.ToUpper(label)+" models", "split", "model", "C", "workers", "tenants", "goodput", "throttled", "lost", "paced", "of paced")
	var sweep, change []robustResult
	for _, r := range results {
		if r.err != "" {
			fmt.Printf("%-9s %-28s failed: %s\n", label, r.c.model.name(), r.err)
			continue
		}
		if r.c.change {
			change = append(change, r)
			continue
		}
		sweep = append(sweep, r)
		fmt.Printf("%-9s %-28s %-5g %-7d %-7s %-8.3f %-9s %-4d %-6.3f %s\n", label, r.c.model.name(), r.c.capacity, r.c.workers, r.c.setup.name,
			r.goodput, fmt.Sprintf("%.2f%%", 100*r.throttled), r.lost, r.paced, ofPaced(r.goodput, r.paced))
	}
	fmt.Printf("\n%-9s %-28s %-11s %-9s %-11s %-9s %s\n", "split", "model", "after drop", "of paced", "after back", "of paced", "throttled")
	for _, r := range change {
		fmt.Printf("%-9s %-28s %-11.3f %-9s %-11.3f %-9s %.2f%%\n", label, r.c.model.name(), r.afterDrop, ofPaced(r.afterDrop, r.pacedLow),
			r.afterBack, ofPaced(r.afterBack, r.pacedHigh), 100*r.throttled)
	}
	if len(sweep) == 0 {
		return
	}
	worst := slices.MinFunc(sweep, func(a, b robustResult) int { return cmp.Compare(a.goodput, b.goodput) })
	most := slices.MaxFunc(sweep, func(a, b robustResult) int { return cmp.Compare(a.throttled, b.throttled) })
	lost := 0
	for _, r := range sweep {
		lost += r.lost
	}
	fmt.Printf("%s summary: %d runs, min goodput %.3f (%s C=%g w=%d %s), max throttled %.2f%% (%s), lost %d",
		label, len(sweep), worst.goodput, worst.c.model.name(), worst.c.capacity, worst.c.workers, worst.c.setup.name,
		100*most.throttled, most.c.model.name(), lost)
	if len(change) > 0 {
		drop := slices.MinFunc(change, func(a, b robustResult) int { return cmp.Compare(a.afterDrop, b.afterDrop) })
		back := slices.MinFunc(change, func(a, b robustResult) int { return cmp.Compare(a.afterBack, b.afterBack) })
		thr := slices.MaxFunc(change, func(a, b robustResult) int { return cmp.Compare(a.throttled, b.throttled) })
		fmt.Printf("; change: min after drop %.3f (%s), min after recovery %.3f (%s), max throttled %.2f%% (%s)",
			drop.afterDrop, drop.c.model.name(), back.afterBack, back.c.model.name(), 100*thr.throttled, thr.c.model.name())
	}
	fmt.Println()
	meet, meetPaced, unpaceable := 0, 0, 0
	for _, r := range sweep {
		if r.meets(1) {
			meet++
		}
		switch {
		case r.paced == 0:
			unpaceable++
		case r.meets(r.paced):
			meetPaced++
		}
	}
	fmt.Printf("%s bar (goodput ≥ %.2f, throttled ≤ %.0f%%, 0 lost): %d of %d runs over the available capacity, %d over the best paced rate; %d runs where no paced rate from %.0f%% up stays within the throttled bar\n",
		label, robustGoodput, 100*robustThrottled, meet, len(sweep), meetPaced, unpaceable, 100*pacedFloor)
	if len(change) > 0 {
		drop, back := 0, 0
		for _, r := range change {
			if r.afterDrop >= robustChanged && r.throttled <= robustChangeThrottled {
				drop++
			}
			if r.afterBack >= robustChanged && r.throttled <= robustChangeThrottled {
				back++
			}
		}
		fmt.Printf("%s change bar (≥ %.2f, throttled ≤ %.0f%%): after the drop %d of %d models, after the recovery %d of %d\n",
			label, robustChanged, 100*robustChangeThrottled, drop, len(change), back, len(change))
	}
}

// The bar of the capacity-change scenario: the answered share of the
// capacity from 15 s after the drop and from 60 s after the recovery, and
// the throttled share.
const (
	robustChanged         = 0.85
	robustChangeThrottled = 0.03
)

// ofPaced is goodput over the best paced rate's, or "-" when no paced rate
// stayed within the throttled bar.
func ofPaced(goodput, paced float64) string {
	if paced == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", goodput/paced)
}

// BenchmarkLimiterRobust is `make bench-robust`: every model of the
// throttle family × workers {1, 2, 4, 8} × {one tenant, two sharing one
// capacity, two with one each}, three minutes of work at the model's
// capacity (10, 20 or 40/s per scope, in turn), and the capacity-change
// scenario (one tenant, 2 workers, 40/s dropping to 16/s at 2 min and back
// at 4 min), printed for the tuning half and then for the held-out half.
// Goodput is whole-run (first request to last answer) over the available
// capacity; lost addresses are those given up after 20 throttles. Beside
// it, "paced" is what the best evenly paced constant rate reaches on the
// same model and network (bestPaced), and "of paced" the goodput over it:
// the part of the loss that is the limiter's own.
// ROBUST_SPLIT=tuning runs the tuning half alone (as while tuning),
// ROBUST_MODELS=sub1,sub2 the models whose names contain one of them,
// ROBUST_WORKERS=1,8 of the worker counts, ROBUST_PARALLEL=n the runs at
// once; MODEL_TRACE=1 prints each run's state once a second (with
// ROBUST_PARALLEL=1, one run after another).
func BenchmarkLimiterRobust(b *testing.B) {
	family := robustFamily()
	for b.Loop() {
		halves := []struct {
			label   string
			heldOut bool
		}{{"tuning", false}, {"held-out", true}}
		for _, h := range halves {
			if s := os.Getenv("ROBUST_SPLIT"); s != "" && s != h.label {
				continue
			}
			printHalf(h.label, runAll(b, robustCases(family, h.heldOut)))
		}
	}
}
