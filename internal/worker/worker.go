// Package worker assembles the queue consumer: an asynq server on the audit
// queue whose handler (package checker) checks addresses with the realm
// service under the Redis-held rate limits. cmd/worker and the local mode
// both run it. It never links Graph or identity code: workers hold no tenant
// credentials.
package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/autoscale"
	"github.com/msaudit/msaudit/internal/checker"
	"github.com/msaudit/msaudit/internal/failover"
	"github.com/msaudit/msaudit/internal/logging"
	"github.com/msaudit/msaudit/internal/ratelimit"
	"github.com/msaudit/msaudit/internal/realm"
	"github.com/msaudit/msaudit/internal/runevents"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/tasks"
)

// Config is everything a worker needs besides Redis.
type Config struct {
	Concurrency     int
	RealmURL        string
	RealmTimeout    time.Duration
	RealmClient     *http.Client // nil: realm.NewTransport (system CA pool)
	Limits          ratelimit.Config
	Checker         checker.Config
	ShutdownTimeout time.Duration
	// ReconcileEvery is how often the workers repair the open runs after a
	// Redis failure (one of them each time); 0 turns it off.
	ReconcileEvery time.Duration
	// Events says where run events go and when a run is stalled.
	Events runevents.Config

	// settle is how long after a Redis failover the open runs are
	// reconciled; 0: failover.Settle. Tests shorten it.
	settle time.Duration
}

// Procs is the GOMAXPROCS cmd/worker runs with when the environment does
// not set GOMAXPROCS. A worker mostly waits: for its rate-limit slots, for
// the realm service and for Redis; paced at a few hundred requests a second
// it uses a tenth of a core. A second thread running Go code buys it nothing
// and costs a hand-off for nearly every wake-up, as the runtime readies a
// goroutine and wakes another thread to look for more work. Measured with
// make bench-overhead at 200 requests/s: about 0.57 ms of CPU per address
// on two threads, 0.45 ms on one.
const Procs = 1

// DefaultConfig is the configuration of a worker nobody tuned: the flags of
// 'worker' and 'enqueue local' start from it.
func DefaultConfig() Config {
	return Config{
		// Two tenants at 100 requests/s each keep 16 batches busy (eight
		// each, their fair parts; checker.SlotsFor asks nine).
		Concurrency:  16,
		RealmURL:     realm.DefaultURL,
		RealmTimeout: 10 * time.Second,
		Limits: ratelimit.Config{
			TenantRate: 5,
			Initial:    5,
			Adaptive:   true,
			MaxWait:    2 * time.Second,
		},
		Checker: checker.Config{
			MaxAttempts: 8,
			BackoffBase: 30 * time.Second,
			BackoffMax:  15 * time.Minute,
		},
		ShutdownTimeout: 20 * time.Second,
		ReconcileEvery:  5 * time.Minute,
		// Long enough for a throttled tenant's longest wait between
		// answers (a batch deferred for its backoff, at most 15
		// minutes), short enough to page someone the same hour.
		Events: runevents.Config{StallAfter: 30 * time.Minute},
	}
}

// Validate checks cfg.
func (c Config) Validate() error {
	if c.Concurrency < 1 {
		return fmt.Errorf("concurrency must be >= 1, got %d", c.Concurrency)
	}
	if c.RealmURL == "" {
		return fmt.Errorf("realm URL is empty")
	}
	if c.RealmTimeout <= 0 {
		return fmt.Errorf("realm timeout must be > 0, got %s", c.RealmTimeout)
	}
	if c.ReconcileEvery < 0 {
		return fmt.Errorf("reconcile interval must be >= 0, got %s", c.ReconcileEvery)
	}
	if c.Events.StallAfter < 0 {
		return fmt.Errorf("stall time must be >= 0, got %s", c.Events.StallAfter)
	}
	if c.ShutdownTimeout <= 0 {
		return fmt.Errorf("shutdown timeout must be > 0, got %s", c.ShutdownTimeout)
	}
	if err := c.Limits.Validate(); err != nil {
		return err
	}
	return c.Checker.Validate()
}

// forwardEvery is how often asynq moves the batches whose deferral is over
// from the retry set back to the queue.
const forwardEvery = 2 * time.Second

// Worker is a running queue consumer.
type Worker struct {
	stop     context.CancelFunc // ends the background loops
	srv      *asynq.Server
	handler  *checker.Handler
	scale    autoscale.Source
	watch    *failover.Watch
	health   *healthChecker
	log      *zap.Logger
	stopping atomic.Bool
}

// New builds a worker on rdb. reg may be nil (no metrics registered).
func New(rdb redis.UniversalClient, cfg Config, log *zap.Logger, reg prometheus.Registerer) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	health := newHealthChecker(rdb, log)
	// What fails command by command while Redis is down is said once, by
	// the health checker.
	log = gateLogger(log, health)
	rc, err := realm.NewClient(cfg.RealmURL, cfg.RealmClient, cfg.RealmTimeout)
	if err != nil {
		return nil, err
	}
	lim, err := ratelimit.New(rdb, cfg.Limits)
	if err != nil {
		return nil, err
	}
	ccfg := cfg.Checker
	ccfg.Concurrency = cfg.Concurrency
	ccfg.WaitInPlace = forwardEvery
	watch := failover.NewWatch(rdb, log)
	ccfg.Failovers = watch.Failovers
	h, err := checker.NewHandler(runstore.New(rdb), lim, rc, ccfg, log, checker.NewMetrics(reg))
	if err != nil {
		return nil, err
	}
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:     cfg.Concurrency,
		Queues:          tasks.Queues(),
		RetryDelayFunc:  checker.RetryDelay,
		IsFailure:       checker.IsFailure,
		ShutdownTimeout: cfg.ShutdownTimeout,
		// Every look costs a round trip per lane (8), and forwarding
		// two (retry and scheduled sets): an idle worker made about 65
		// a second at 250 ms and 500 ms. A batch deferred for the
		// limiter for less than forwardEvery waits in its slot instead
		// (checker.Config.WaitInPlace), so a tenant resumes a short
		// pause without the queue; what waits longer, a paused run or a
		// long throttle, loses at most forwardEvery to it.
		DelayedTaskCheckInterval: forwardEvery,
		TaskCheckInterval:        time.Second,
		Logger:                   logging.NewAsynq(log),
		LogLevel:                 logging.AsynqLevel(log),
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			if errors.Is(err, asynq.SkipRetry) {
				log.Warn("batch archived", zap.Error(err))
				return
			}
			log.Debug("batch deferred", zap.Error(err))
		}),
	})
	mux := asynq.NewServeMux()
	mux.Handle(tasks.TypeCheckBatch, h)
	if err := srv.Start(mux); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	w := &Worker{srv: srv, handler: h, watch: watch, health: health, log: log, scale: autoscale.Source{
		Store: runstore.New(rdb), Rate: lim.Rate, Latency: h.Latency,
		SlotsPerWorker: cfg.Concurrency, GlobalRate: cfg.Limits.GlobalRate,
	}}
	if reg != nil {
		reg.MustRegister(autoscale.NewCollector(w.Scale), redisUp(health))
	}
	var bg context.Context
	bg, w.stop = context.WithCancel(context.Background())
	go health.run(bg)
	if cfg.ReconcileEvery > 0 {
		go w.reconcileLoop(bg, rdb, cfg.ReconcileEvery)
	}
	settle := cfg.settle
	if settle == 0 {
		settle = failover.Settle
	}
	go w.failoverLoop(bg, rdb, settle)
	go runevents.New(rdb, cfg.Events, log, reg).Run(bg)
	return w, nil
}

// redisUp is a gauge of whether this worker's last Redis check, made in
// the background every second, got an answer (a refused write is one).
func redisUp(h *healthChecker) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "msaudit_redis_up", Help: "1 if this worker's last Redis check (every second) got an answer, else 0.",
	}, func() float64 {
		if h.unreachable() {
			return 0
		}
		return 1
	})
}

// scaleTimeout bounds the Redis reads of one Scale: a probe or a scrape
// must not wait on a dead connection.
const scaleTimeout = time.Second

// errUnreachable is Scale's answer while the health check finds Redis
// unreachable: it does not wait for a read that cannot succeed.
var errUnreachable = errors.New(string(faultUnreachable))

// Scale is how many workers like this one the open runs can use (see
// package autoscale).
func (w *Worker) Scale(ctx context.Context) (autoscale.Result, error) {
	if w.health.unreachable() {
		return autoscale.Result{}, errUnreachable
	}
	ctx, cancel := context.WithTimeout(ctx, scaleTimeout)
	defer cancel()
	return w.scale.Compute(ctx)
}

// ErrStopping is Ready's answer once Shutdown has begun.
var ErrStopping = errors.New("the worker is shutting down")

// Ready reports whether the worker should be given work: it is not shutting
// down, and its last Redis check (see healthEvery) found Redis answering
// and taking writes; else a *RedisFault says what is wrong. It makes no
// Redis call: it answers at once whatever Redis does.
func (w *Worker) Ready() error {
	if w.stopping.Load() {
		return ErrStopping
	}
	return w.health.err()
}

// Shutdown stops the worker gracefully: it turns not ready, takes no new
// batch, and every running batch stops at its next address, records the
// answers it has and goes back to the queue. It returns when the requests
// in flight are done, or after the shutdown timeout, when asynq puts what is
// still running back as pending.
func (w *Worker) Shutdown() {
	w.stopping.Store(true)
	w.stop()
	w.srv.Stop()
	w.handler.Drain()
	w.srv.Shutdown()
}
