package report

import (
	"fmt"
	"strings"
	"time"

	"github.com/msaudit/msaudit/internal/runstore"
)

// chart is the SVG geometry of the run's checks over time: a bar per
// bucket of addresses that became final, and a line of throttle signals on
// the same scale. Only numbers and formatted times reach the template.
type chart struct {
	W, H     int
	Unit     string
	Bars     []chartBar
	Throttle string // polyline points; empty without any throttle
	Grid     []gridLine
	XLabels  []xLabel
}

type chartBar struct {
	X, Y, W, H float64
	Title      string
}

type gridLine struct {
	X1, X2, Y, TY float64
	Label         string
}

type xLabel struct {
	X, Y          float64
	Anchor, Label string
}

const (
	chartW, chartH            = 960, 240
	padLeft, padRight, padTop = 48.0, 12.0, 10.0
	padBottom                 = 26.0
)

// newChart lays out c; nil when nothing was recorded.
func newChart(c runstore.Chart) *chart {
	if len(c.Buckets) == 0 {
		return nil
	}
	ch := &chart{W: chartW, H: chartH, Unit: unitName(c.Width)}
	peak := int64(1)
	for _, b := range c.Buckets {
		peak = max(peak, b.Done, b.Throttles)
	}
	top := niceCeil(peak)
	plotW, plotH := chartW-padLeft-padRight, chartH-padTop-padBottom
	y := func(v int64) float64 { return padTop + plotH*(1-float64(v)/float64(top)) }
	step := plotW / float64(len(c.Buckets))
	gap := min(step*0.15, 2)
	var pts []string
	anyThrottle := false
	for i, b := range c.Buckets {
		x := padLeft + float64(i)*step
		ch.Bars = append(ch.Bars, chartBar{X: x + gap/2, Y: y(b.Done), W: max(step-gap, 0.5), H: padTop + plotH - y(b.Done),
			Title: fmt.Sprintf("%s: %d checked, %d requests, %d throttled", b.Start.UTC().Format("Jan 2 15:04"), b.Done, b.Requests, b.Throttles)})
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x+step/2, y(b.Throttles)))
		anyThrottle = anyThrottle || b.Throttles > 0
	}
	if anyThrottle {
		ch.Throttle = strings.Join(pts, " ")
	}
	for k := int64(0); k <= 4; k++ {
		v := top * k / 4
		ch.Grid = append(ch.Grid, gridLine{X1: padLeft, X2: chartW - padRight, Y: y(v), TY: y(v) + 4, Label: fmt.Sprint(v)})
	}
	n := len(c.Buckets)
	label := func(i int) string {
		t := c.Buckets[i].Start.UTC()
		if c.Buckets[n-1].Start.Sub(c.Buckets[0].Start) >= 24*time.Hour {
			return t.Format("Jan 2 15:04")
		}
		return t.Format("15:04")
	}
	base := float64(chartH) - 8
	ch.XLabels = append(ch.XLabels, xLabel{X: padLeft, Y: base, Anchor: "start", Label: label(0)})
	if n > 2 {
		ch.XLabels = append(ch.XLabels, xLabel{X: padLeft + plotW/2, Y: base, Anchor: "middle", Label: label(n / 2)})
	}
	if n > 1 {
		ch.XLabels = append(ch.XLabels, xLabel{X: chartW - padRight, Y: base, Anchor: "end", Label: label(n-1) + " UTC"})
	}
	return ch
}

func unitName(w time.Duration) string {
	switch m := int(w / time.Minute); {
	case m <= 1:
		return "minute"
	case m%60 == 0:
		return fmt.Sprintf("%d hours", m/60)
	default:
		return fmt.Sprintf("%d minutes", m)
	}
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, so the grid's
// labels are round numbers.
func niceCeil(v int64) int64 {
	p := int64(1)
	for {
		for _, m := range []int64{1, 2, 5} {
			if m*p >= v {
				// four grid steps of top/4 must be whole numbers
				return max(m*p, 4)
			}
		}
		p *= 10
	}
}
