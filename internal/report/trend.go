package report

import (
	"fmt"
	"time"
)

// TrendPoint is one kept run of the tenant: when it was made and what it
// found.
type TrendPoint struct {
	RunID     string
	At        time.Time
	Addresses int64
	Present   int64
}

// trend is the SVG geometry of a tenant's consumer accounts found run after
// run: a bar per run, the report's own run marked.
type trend struct {
	W, H   int
	Bars   []trendBar
	Grid   []gridLine
	Points int
}

type trendBar struct {
	X, Y, W, H float64
	LX, LY     float64
	Label      string // the run's date
	Title      string
	Current    bool
}

const trendW, trendH = 960, 200

// newTrend lays out points, oldest first; nil below two runs.
func newTrend(points []TrendPoint, current string) *trend {
	if len(points) < 2 {
		return nil
	}
	tr := &trend{W: trendW, H: trendH, Points: len(points)}
	peak := int64(1)
	for _, p := range points {
		peak = max(peak, p.Present)
	}
	top := niceCeil(peak)
	plotW, plotH := trendW-padLeft-padRight, trendH-padTop-padBottom
	y := func(v int64) float64 { return padTop + plotH*(1-float64(v)/float64(top)) }
	for _, v := range []int64{0, top / 2, top} {
		tr.Grid = append(tr.Grid, gridLine{X1: padLeft, X2: trendW - padRight, Y: y(v), TY: y(v) + 4, Label: fmt.Sprint(v)})
	}
	step := plotW / float64(len(points))
	w := min(step*0.6, 80)
	for i, p := range points {
		x := padLeft + step*float64(i) + (step-w)/2
		tr.Bars = append(tr.Bars, trendBar{
			X: x, Y: y(p.Present), W: w, H: y(0) - y(p.Present),
			LX: x + w/2, LY: trendH - 8, Label: p.At.UTC().Format("2006-01-02"),
			Title:   fmt.Sprintf("run %s, %s: %d of %d addresses with a consumer account", p.RunID, p.At.UTC().Format("2006-01-02 15:04 UTC"), p.Present, p.Addresses),
			Current: p.RunID == current,
		})
	}
	return tr
}
