package checker

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the worker's Prometheus series.
type Metrics struct {
	checks      *prometheus.CounterVec
	throttles   *prometheus.CounterVec
	rate        *prometheus.GaugeVec
	limiterWait prometheus.Histogram
	retries     prometheus.Counter
	deadLetters prometheus.Counter
	inflight    prometheus.Gauge
}

// NewMetrics creates the series and registers them with reg (nil: not
// registered, for tests and local mode).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "msaudit_checks_total", Help: "Realm requests by outcome (present, absent, throttled, error).",
		}, []string{"outcome"}),
		throttles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "msaudit_throttle_signals_total", Help: "Throttle signals (MicrosoftAccount 2 or HTTP 429) by tenant.",
		}, []string{"tenant"}),
		rate: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "msaudit_tenant_rate", Help: "Current request rate of a tenant, requests/s, as last seen by this worker.",
		}, []string{"tenant"}),
		limiterWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "msaudit_limiter_wait_seconds", Help: "Time spent waiting for a rate-limit slot.",
			Buckets: []float64{0, .01, .05, .1, .25, .5, 1, 2},
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "msaudit_batch_retries_total", Help: "Batches handed back for a retry of their unanswered addresses.",
		}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "msaudit_dead_letters_total", Help: "Addresses dead-lettered after exhausting their attempts.",
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "msaudit_inflight_batches", Help: "Batches being processed now.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.checks, m.throttles, m.rate, m.limiterWait, m.retries, m.deadLetters, m.inflight)
	}
	return m
}
