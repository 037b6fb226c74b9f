package e2e

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/msaudit/msaudit/internal/throttlemodel"
)

// Tenant setups of the sweep (THROTTLE_SETUPS).
const (
	setupOne       = "one"       // one tenant
	setupShared    = "shared"    // two tenants, one realm throttle for both (capacity C shared)
	setupPerTenant = "pertenant" // two tenants, a throttle each (capacity 2C)
)

// The simulator's answer latency in the sweep and the change scenario: a
// limiter that only works against instant answers is no use against the
// real service, whose answers take a few hundred milliseconds and sometimes
// seconds.
const (
	benchLatency     = "100ms-400ms"
	benchLatencyTail = "0.02:1s-2s"
)

// The capacity-change scenario: C drops at changeDrop and recovers at
// changeBack; changeN addresses are six minutes of work at that capacity.
const (
	changeC, changeLow     = 40.0, 15.0
	changeDrop, changeBack = 2 * time.Minute, 4 * time.Minute
	changeN                = 11400 // 120 s·40 + 120 s·15 + 120 s·40
)

// The limiter-accuracy run: 8 processes at a fixed ceiling against an
// unthrottled simulator.
const accuracyRate, accuracyWorkers = 100.0, 8

// throttleConfig is one run of the benchmark.
type throttleConfig struct {
	kind     string  // sweep, change or accuracy
	capacity float64 // C, the simulator's rate per throttle (accuracy: the workers' fixed ceiling)
	workers  int
	setup    string
	n        int // addresses, split evenly between the tenants
	// model is the simulator's throttle model (THROTTLE_MODELS); nil: the
	// token bucket of burst C with a 2 s penalty window.
	model *throttlemodel.Spec
}

func (c throttleConfig) name() string {
	m := ""
	if c.model != nil {
		m = c.model.Name() + " "
	}
	if c.kind == "sweep" {
		return fmt.Sprintf("%sC=%g w=%d %s", m, c.capacity, c.workers, c.setup)
	}
	return fmt.Sprintf("%s%s C=%g w=%d", m, c.kind, c.capacity, c.workers)
}

// cost is how many THROTTLE_PARALLEL slots the configuration takes: at
// 100 requests/s or more all its processes use about a third of a core, so
// on a two-core machine shared with others only two such run at once.
func (c throttleConfig) cost() int {
	if c.available() >= 100 {
		return 2
	}
	return 1
}

func (c throttleConfig) tenantCount() int {
	if c.setup == setupShared || c.setup == setupPerTenant {
		return 2
	}
	return 1
}

// available is the capacity the workers can use in all: C, or 2C with a
// throttle per tenant (a model's available rate at C, which for the window
// kinds is a whole number of requests per window).
func (c throttleConfig) available() float64 {
	if c.setup == setupPerTenant {
		return 2 * c.availableAt(c.capacity)
	}
	return c.availableAt(c.capacity)
}

// availableAt is what one throttle sustains at capacity.
func (c throttleConfig) availableAt(capacity float64) float64 {
	if c.model != nil {
		return c.model.Available(capacity)
	}
	return capacity
}

func (c throttleConfig) simArgs() []string {
	args := []string{"--users", "1", "--seed", "5"}
	if c.kind == "accuracy" {
		return args // unthrottled and instant: the limiter alone sets the pace
	}
	scope := "per-source"
	if c.setup == setupPerTenant {
		scope = "per-tenant"
	}
	// The burst is left to follow the rate (= C), also through a schedule;
	// a model has its own.
	throttle := []string{"--realm-penalty", "2s"}
	if c.model != nil {
		throttle = []string{"--realm-model", c.model.Name()}
	}
	args = append(args, "--realm-rate", fmt.Sprint(c.capacity), "--realm-scope", scope,
		"--realm-latency", benchLatency, "--realm-latency-tail", benchLatencyTail)
	args = append(args, throttle...)
	if c.kind == "change" {
		args = append(args, "--realm-schedule", fmt.Sprintf("%s:%g,%s:%g", changeDrop, changeLow, changeBack, changeC))
	}
	return args
}

// workerArgs hide C from the workers behind a ceiling of 10·C and otherwise
// keep the defaults (concurrency included), but for retries patient enough
// that throttling does not dead-letter addresses.
func (c throttleConfig) workerArgs() []string {
	args := []string{"--max-attempts", "20", "--backoff-base", "200ms", "--backoff-max", "5s"}
	if c.kind == "accuracy" {
		return append(args, "--tenant-rate", fmt.Sprint(c.capacity), "--adaptive=false")
	}
	return append(args, "--tenant-rate", fmt.Sprint(10*c.capacity))
}

// BenchmarkThrottle is `make bench-throttle`, in three scenarios
// (THROTTLE_SCENARIOS, comma list, default all):
//
//   - sweep: the throttle-seeking bar, goodput >= 0.9 of the available
//     capacity with <= 2 % of requests throttled and nothing lost, for
//     C in THROTTLE_CAPACITIES (5,20,100), THROTTLE_WORKERS worker processes
//     (1,2,4,8) and THROTTLE_SETUPS (one,shared,pertenant: one tenant; two
//     tenants sharing one throttle of C; two tenants with a throttle of C
//     each). Each run is 180·capacity addresses, three minutes of work,
//     against answers taking 100-400 ms (2 % 1-2 s). The headline is
//     whole-run goodput, from the first realm request to the last answer:
//     slow start counts, as it does for an operator. Steady goodput is
//     measured between 20 % and 90 % answered. With two tenants each one's
//     goodput against its fair share shows fairness.
//   - change: one tenant, 2 workers, C = 40/s dropping to 15/s at 2 min and
//     back at 4 min: answers per 5 s, and how close the rate comes to the
//     capacity 15 s after the drop and 60 s after the recovery.
//   - accuracy: 8 processes at a fixed ceiling R against an unthrottled
//     simulator: aggregate <= 1.05·R.
//
// THROTTLE_MODELS (comma list) runs the sweep and the change scenario
// against members of the throttle model family instead of the simulator's
// token bucket with its 2 s penalty window: names such as queue-ra-4
// (docs/throttle-models.md), or held-out or tuning for a whole half. Each
// model's line at the start says which half it is in, and its rows carry
// its name; goodput is then a fraction of the model's available capacity.
//
// C is hidden from the workers: their ceiling is 10·C. THROTTLE_PARALLEL=n
// runs up to n configurations at once, each with its own Redis, simulator
// and workers: the capacity, not the CPU, paces a run, and a configuration
// of 100/s or more counts as two (see cost). With n = 4 the whole benchmark
// takes about an hour instead of three. Each configuration's row is
// printed as it ends, and all of them sorted at the end. THROTTLE_TRACE=1
// prints every second of every run, each line led by its configuration.
func BenchmarkThrottle(b *testing.B) {
	caps := envInts(b, "THROTTLE_CAPACITIES", []int{5, 20, 100})
	workers := envInts(b, "THROTTLE_WORKERS", []int{1, 2, 4, 8})
	allSetups, allScenarios := []string{setupOne, setupShared, setupPerTenant}, []string{"sweep", "change", "accuracy"}
	setups := envWords(b, "THROTTLE_SETUPS", allSetups, allSetups)
	scenarios := envWords(b, "THROTTLE_SCENARIOS", allScenarios, allScenarios)
	parallel := envInts(b, "THROTTLE_PARALLEL", []int{1})[0]
	models := envModels(b)

	// The longest run goes first so that a parallel pool ends together.
	var jobs []throttleConfig
	if slices.Contains(scenarios, "change") {
		for _, m := range models {
			jobs = append(jobs, throttleConfig{kind: "change", capacity: changeC, workers: 2, setup: setupOne, n: changeN, model: m})
		}
	}
	if slices.Contains(scenarios, "sweep") {
		for _, m := range models {
			for _, setup := range setups {
				for _, c := range caps {
					for _, w := range workers {
						cfg := throttleConfig{kind: "sweep", capacity: float64(c), workers: w, setup: setup, model: m}
						cfg.n = int(180 * cfg.available())
						jobs = append(jobs, cfg)
					}
				}
			}
		}
	}
	if slices.Contains(scenarios, "accuracy") {
		jobs = append(jobs, throttleConfig{kind: "accuracy", capacity: accuracyRate, workers: accuracyWorkers, setup: setupOne,
			n: int(30 * accuracyRate)})
	}
	for b.Loop() {
		fmt.Printf("\n%d configurations, %d at a time; realm latency %s, tail %s\n", len(jobs), max(1, parallel),
			benchLatency, benchLatencyTail)
		for _, m := range models {
			if m == nil {
				fmt.Println("throttle: the simulator's token bucket, burst = rate, 2 s penalty window")
			} else {
				fmt.Println("throttle model " + m.String())
			}
		}
		fmt.Println(sweepHeader(nameWidth(models[0] != nil)))
		var rows []sweepRow
		var others, failures []string
		metrics := map[string]float64{}
		runPool(b, parallel, jobs, throttleConfig.name, throttleConfig.cost, func(t testing.TB, cfg throttleConfig) throttleReport {
			return report(cfg, runThrottle(t, cfg))
		}, func(cfg throttleConfig, r throttleReport, errs []string) {
			if len(errs) > 0 {
				failures = append(failures, cfg.name()+": "+strings.Join(errs, "; "))
				fmt.Println(failures[len(failures)-1])
				return
			}
			fmt.Print(r.text)
			if cfg.kind == "sweep" {
				rows = append(rows, r.row)
			} else {
				others = append(others, r.summary)
			}
			maps.Copy(metrics, r.metrics)
		})
		printSweepTable(rows)
		for _, o := range others {
			fmt.Println(o)
		}
		if len(rows) > 0 {
			worst := slices.MinFunc(rows, func(a, b sweepRow) int { return cmp.Compare(a.whole, b.whole) })
			metrics["worst-goodput/capacity"] = worst.whole
		}
		for unit, v := range metrics {
			b.ReportMetric(v, unit)
		}
		for _, f := range failures {
			b.Error(f)
		}
	}
}

// envModels reads THROTTLE_MODELS: model names, or held-out or tuning for a
// whole half of the family. Unset: the simulator's own token bucket (nil).
func envModels(b *testing.B) []*throttlemodel.Spec {
	var out []*throttlemodel.Spec
	add := func(specs ...throttlemodel.Spec) {
		for _, s := range specs {
			out = append(out, &s)
		}
	}
	for _, w := range envWords(b, "THROTTLE_MODELS", nil, nil) {
		switch w {
		case "held-out":
			add(throttlemodel.HeldOut()...)
		case "tuning":
			add(throttlemodel.Tuning()...)
		default:
			s, err := throttlemodel.Parse(w)
			if err != nil {
				b.Fatalf("THROTTLE_MODELS: %v", err)
			}
			add(s)
		}
	}
	if out == nil {
		return []*throttlemodel.Spec{nil}
	}
	return out
}

func envInts(b *testing.B, name string, def []int) []int {
	var out []int
	for _, f := range envWords(b, name, nil, nil) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			b.Fatalf("%s: %q is not a positive integer", name, f)
		}
		out = append(out, n)
	}
	if out == nil {
		return def
	}
	return out
}

// envWords reads a comma list; known, when not nil, are the words allowed.
func envWords(b *testing.B, name string, def, known []string) []string {
	v := strings.TrimSpace(os.Getenv(name))
	if v == "" {
		return def
	}
	var out []string
	for f := range strings.SplitSeq(v, ",") {
		f = strings.TrimSpace(f)
		if known != nil && !slices.Contains(known, f) {
			b.Fatalf("%s: %q is none of %s", name, f, strings.Join(known, ","))
		}
		out = append(out, f)
	}
	return out
}
