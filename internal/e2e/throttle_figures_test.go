package e2e

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/msaudit/msaudit/internal/throttlemodel"
)

// throttleReport is what one finished configuration prints: text at once,
// and row (sweep) or summary (the others) again in the final table.
type throttleReport struct {
	text, summary string
	row           sweepRow
	metrics       map[string]float64
}

func report(cfg throttleConfig, out runOutcome) throttleReport {
	switch cfg.kind {
	case "change":
		return changeReport(cfg, out)
	case "accuracy":
		return accuracyReport(cfg, out)
	}
	r := sweepFigures(cfg, out)
	return throttleReport{text: r.String() + "\n", row: r}
}

// sweepRow is one sweep configuration's figures, goodputs as fractions of
// the available capacity.
type sweepRow struct {
	cfg           throttleConfig
	whole, steady float64
	// tenants are each tenant's whole-run goodput against its fair share
	// (half the available capacity), with two tenants.
	tenants   []float64
	throttled float64 // throttled / requests
	lost      int64
	wall      time.Duration
	// startUp is when a 5 s window of answers first reached 0.9 of the
	// available capacity (its end, from the first request); -1: never.
	startUp time.Duration
}

// sweepHeader heads the sweep's rows, whose configuration column is
// nameWidth wide.
func sweepHeader(nameWidth int) string {
	return fmt.Sprintf("%-*s goodput whole  steady  throttled  lost   wall  0.9 at  per tenant (of fair share)", nameWidth, "configuration")
}

// nameWidth is the configuration column's width: wider when a throttle
// model's name leads it.
func nameWidth(withModel bool) int {
	if withModel {
		return 44
	}
	return 24
}

func (r sweepRow) String() string {
	var ten []string
	for i, g := range r.tenants {
		ten = append(ten, fmt.Sprintf("t%d %.3f", i+1, g))
	}
	startUp := "never"
	if r.startUp >= 0 {
		startUp = r.startUp.String()
	}
	return strings.TrimSpace(fmt.Sprintf("%-*s %13.3f %7.3f %9.2f%% %5d %6s %7s  %s", nameWidth(r.cfg.model != nil), r.cfg.name(), r.whole, r.steady,
		100*r.throttled, r.lost, r.wall.Round(time.Second), startUp, strings.Join(ten, " ")))
}

func sweepFigures(cfg throttleConfig, out runOutcome) sweepRow {
	ss, last := out.samples, out.samples.last()
	avail := cfg.available()
	r := sweepRow{cfg: cfg, lost: out.lost, wall: out.wall, startUp: ss.startUp(0.9 * avail)}
	if d := ss.lastAnswer("").Seconds(); d > 0 {
		r.whole = float64(last.answered) / d / avail
	}
	r.steady = ss.rate("", ss.reached(0.2, cfg.n), ss.reached(0.9, cfg.n)) / avail
	if last.requests > 0 {
		r.throttled = float64(last.throttled) / float64(last.requests)
	}
	if len(out.keys) > 1 {
		fair := avail / float64(len(out.keys))
		for _, k := range out.keys {
			g := 0.0
			if d := ss.lastAnswer(k).Seconds(); d > 0 {
				g = float64(last.tenants[k]) / d / fair
			}
			r.tenants = append(r.tenants, g)
		}
	}
	return r
}

// printSweepTable prints the rows by setup, capacity and workers: with
// parallel runs they finished in no useful order.
func printSweepTable(rows []sweepRow) {
	if len(rows) == 0 {
		return
	}
	order := map[string]int{setupOne: 0, setupShared: 1, setupPerTenant: 2}
	slices.SortFunc(rows, func(a, b sweepRow) int {
		return cmp.Or(cmp.Compare(modelOrder(a.cfg), modelOrder(b.cfg)), cmp.Compare(order[a.cfg.setup], order[b.cfg.setup]),
			cmp.Compare(a.cfg.capacity, b.cfg.capacity), cmp.Compare(a.cfg.workers, b.cfg.workers))
	})
	fmt.Println("\nsweep (goodput as a fraction of the available capacity: C, or 2C for pertenant; bar >= 0.9, throttled <= 2 %, lost 0)")
	half := ""
	for _, r := range rows {
		if h := modelHalf(r.cfg); h != half {
			fmt.Printf("%s:\n%s\n", h, sweepHeader(nameWidth(r.cfg.model != nil)))
			half = h
		}
		fmt.Println(r.String())
	}
}

// modelHalf names the throttle a row ran against and its half of the
// family.
func modelHalf(cfg throttleConfig) string {
	if cfg.model == nil {
		return "the simulator's token bucket"
	}
	return cfg.model.Half() + " models"
}

// modelOrder puts the token bucket first, then the tuning models, then the
// held-out ones, each in family order.
func modelOrder(cfg throttleConfig) int {
	if cfg.model == nil {
		return -1
	}
	i := slices.IndexFunc(throttlemodel.Family(), func(s throttlemodel.Spec) bool { return s.Name() == cfg.model.Name() })
	if cfg.model.HeldOut {
		i += 1000
	}
	return i
}

// changeReport prints the answers per 5 s window, a minute a line, and how
// close the rate comes to the capacity after the drop and the recovery.
func changeReport(cfg throttleConfig, out runOutcome) throttleReport {
	ss, last := out.samples, out.samples.last()
	const window = 5 * time.Second
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s: C = %g/s, %g/s from %s, %g/s from %s; answered/s per 5 s window from the first request:\n",
		cfg.name(), changeC, changeLow, changeDrop, changeC, changeBack)
	end := ss.lastAnswer("")
	for t := time.Duration(0); t < end; t += window {
		if t%time.Minute == 0 {
			if t > 0 {
				b.WriteByte('\n')
			}
			fmt.Fprintf(&b, "  %4s ", t)
		}
		fmt.Fprintf(&b, " %5.1f", ss.rate("", t, t+window))
	}
	// The low phase is judged from 15 s after the drop, the recovered one
	// from 60 s after the recovery until six minutes or the last answer.
	lowAvail, backAvail := cfg.availableAt(changeLow), cfg.availableAt(changeC)
	low := ss.rate("", changeDrop+15*time.Second, changeBack) / lowAvail
	back := ss.rate("", changeBack+time.Minute, min(end, 6*time.Minute)) / backAvail
	throttled := 0.0
	if last.requests > 0 {
		throttled = float64(last.throttled) / float64(last.requests)
	}
	summary := fmt.Sprintf("%s: answered/s from drop+15 s to the recovery %.3f of %.4g/s; from recovery+60 s %.3f of %.4g/s; "+
		"throttled %.2f%%, lost %d, last answer at %s", cfg.name(), low, lowAvail, back, backAvail, 100*throttled, out.lost,
		end.Round(time.Second))
	fmt.Fprintf(&b, "\n%s\n", summary)
	return throttleReport{text: b.String(), summary: summary,
		metrics: map[string]float64{"change-low/capacity": low, "change-back/capacity": back}}
}

// accuracyReport compares the aggregate rate of the processes with their
// shared fixed ceiling.
func accuracyReport(cfg throttleConfig, out runOutcome) throttleReport {
	ss, last := out.samples, out.samples.last()
	whole := 0.0
	if d := ss.lastAnswer("").Seconds(); d > 0 {
		whole = float64(last.answered) / d
	}
	steady := ss.rate("", ss.reached(0.2, cfg.n), ss.reached(0.9, cfg.n))
	summary := fmt.Sprintf("accuracy: %d worker processes, fixed ceiling R = %g/s, unthrottled simulator: aggregate %.1f/s whole run, "+
		"%.1f/s steady: %.3f·R (bar <= 1.05), lost %d", cfg.workers, cfg.capacity, whole, steady, steady/cfg.capacity, out.lost)
	return throttleReport{text: "\n" + summary + "\n", summary: summary,
		metrics: map[string]float64{"aggregate/R": steady / cfg.capacity}}
}
