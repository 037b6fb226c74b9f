package autoscale

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exports a Result at every scrape, so a Prometheus-based scaler
// sees what /scaler serves.
type collector struct {
	compute                       func(context.Context) (Result, error)
	desired, slots, open, batches *prometheus.Desc
}

// NewCollector returns a Prometheus collector of compute's figures:
// msaudit_scaler_desired_workers, msaudit_scaler_usable_slots,
// msaudit_open_runs and msaudit_outstanding_batches. A scrape during which
// Redis fails exports none of them rather than zeros.
func NewCollector(compute func(context.Context) (Result, error)) prometheus.Collector {
	return &collector{
		compute: compute,
		desired: prometheus.NewDesc("msaudit_scaler_desired_workers", "Worker processes the open runs' rate limits can keep busy (>= 1 while a run is open).", nil, nil),
		slots:   prometheus.NewDesc("msaudit_scaler_usable_slots", "Batches the open runs can have checked at once.", nil, nil),
		open:    prometheus.NewDesc("msaudit_open_runs", "Runs not completed or cancelled.", nil, nil),
		batches: prometheus.NewDesc("msaudit_outstanding_batches", "Upper bound of the batches that still hold a pending address.", nil, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desired
	ch <- c.slots
	ch <- c.open
	ch <- c.batches
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r, err := c.compute(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.desired, prometheus.GaugeValue, float64(r.DesiredWorkers))
	ch <- prometheus.MustNewConstMetric(c.slots, prometheus.GaugeValue, float64(r.UsableSlots))
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(r.OpenRuns))
	ch <- prometheus.MustNewConstMetric(c.batches, prometheus.GaugeValue, float64(r.OutstandingBatches))
}
