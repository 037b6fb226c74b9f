package runevents

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msaudit/msaudit/internal/runstore"
)

type metrics struct {
	deliveries *prometheus.CounterVec
}

// newMetrics registers the notifier's metrics with reg, if not nil: its
// deliveries, and what every worker reads from Redis at a scrape, so that
// any of them tells: the events waiting and the runs stalled.
func newMetrics(reg prometheus.Registerer, store *runstore.Store) *metrics {
	m := &metrics{deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "msaudit_event_deliveries_total", Help: "Webhook deliveries of run events by result (delivered, failed).",
	}, []string{"result"})}
	for _, r := range []string{"delivered", "failed"} {
		m.deliveries.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.deliveries, &collector{store: store,
			undelivered: prometheus.NewDesc("msaudit_events_undelivered", "Run events waiting for their webhook delivery.", nil, nil),
			stalled:     prometheus.NewDesc("msaudit_runs_stalled", "Open runs with no answer for the stall time, paused ones aside.", nil, nil),
		})
	}
	return m
}

// scrapeTimeout bounds the Redis reads of a scrape: one must not wait on a
// dead connection.
const scrapeTimeout = time.Second

type collector struct {
	store                *runstore.Store
	undelivered, stalled *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.undelivered
	ch <- c.stalled
}

// Collect reads Redis; what it cannot read it leaves out of the scrape
// rather than report as 0.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if _, waiting, err := c.store.Undelivered(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(c.undelivered, prometheus.GaugeValue, float64(waiting))
	}
	if runs, err := c.store.OpenRuns(ctx); err == nil {
		n := 0
		for _, r := range runs {
			if !r.StalledAt.IsZero() && !r.Paused {
				n++
			}
		}
		ch <- prometheus.MustNewConstMetric(c.stalled, prometheus.GaugeValue, float64(n))
	}
}
