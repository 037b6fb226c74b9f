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
	err                  string
}

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
		if f := os.Getenv("ROBUST_MODELS"); f != "" && !strings.Contains(model.name(), f) {
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

// runAll runs the cases on ROBUST_PARALLEL goroutines (default: one per
// CPU). Each case has its own Redis, service and random source, so its
// figures do not depend on the others.
func runAll(tb testing.TB, cases []robustCase) []robustResult {
	parallel := runtime.GOMAXPROCS(0)
	if v, err := strconv.Atoi(os.Getenv("ROBUST_PARALLEL")); err == nil && v > 0 {
		parallel = v
	}
	out := make([]robustResult, len(cases))
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	for i, c := range cases {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = c.run(tb)
		}()
	}
	wg.Wait()
	return out
}

// printHalf prints the figures of one half of the family and its summary
// line.
func printHalf(label string, results []robustResult) {
	fmt.Printf("\n%s\n%-9s %-28s %-5s %-7s %-7s %-8s %-9s %s\n", strings.ToUpper(label)+" models", "split", "model", "C", "workers", "tenants", "goodput", "throttled", "lost")
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
		fmt.Printf("%-9s %-28s %-5g %-7d %-7s %-8.3f %-9s %d\n", label, r.c.model.name(), r.c.capacity, r.c.workers, r.c.setup.name,
			r.goodput, fmt.Sprintf("%.2f%%", 100*r.throttled), r.lost)
	}
	fmt.Printf("\n%-9s %-28s %-11s %-11s %s\n", "split", "model", "after drop", "after back", "throttled")
	for _, r := range change {
		fmt.Printf("%-9s %-28s %-11.3f %-11.3f %.2f%%\n", label, r.c.model.name(), r.afterDrop, r.afterBack, 100*r.throttled)
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
}

// BenchmarkLimiterRobust is `make bench-robust`: every model of the
// throttle family × workers {1, 2, 4, 8} × {one tenant, two sharing one
// capacity, two with one each}, three minutes of work at the model's
// capacity (10, 20 or 40/s per scope, in turn), and the capacity-change
// scenario (one tenant, 2 workers, 40/s dropping to 16/s at 2 min and back
// at 4 min), printed for the tuning half and then for the held-out half.
// Goodput is whole-run (first request to last answer) over the available
// capacity; lost addresses are those given up after 20 throttles.
// ROBUST_SPLIT=tuning runs the tuning half alone (as while tuning),
// ROBUST_MODELS=substring a subset of the models, ROBUST_WORKERS=1,8 of the
// worker counts, ROBUST_PARALLEL=n the runs at once.
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
