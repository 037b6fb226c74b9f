package checker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/ratelimit"
	"github.com/msaudit/msaudit/internal/realm"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/tasks"
)

// Config tunes the handler.
type Config struct {
	Concurrency int           // the worker's slots; 0: one tenant may use all
	MaxAttempts int           // per address, before dead-lettering
	BackoffBase time.Duration // first retry delay ceiling
	BackoffMax  time.Duration // cap of the retry delay
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.MaxAttempts < 1:
		return fmt.Errorf("max attempts must be >= 1, got %d", c.MaxAttempts)
	case c.BackoffBase <= 0:
		return fmt.Errorf("backoff base must be > 0, got %s", c.BackoffBase)
	case c.BackoffMax < c.BackoffBase:
		return fmt.Errorf("backoff max (%s) must be >= backoff base (%s)", c.BackoffMax, c.BackoffBase)
	}
	return nil
}

// Realm checks one address; *realm.Client implements it.
type Realm interface {
	Check(ctx context.Context, addr string) (realm.Result, error)
}

// Handler processes tasks.TypeCheckBatch.
type Handler struct {
	store   *runstore.Store
	limiter *ratelimit.Limiter
	realm   Realm
	cfg     Config
	log     *zap.Logger
	metrics *Metrics
	share   *share
	gate    *gate
	now     func() time.Time
	rnd     func(int64) int64

	// drained is cancelled by Drain: waits end, requests in flight do not.
	drained context.Context
	drain   context.CancelFunc
}

// drainDelay is how long a batch handed back by a draining worker waits in
// the retry set: none, another worker takes it at its next forward.
const drainDelay = 0

// errDraining hands a batch back to the queue when the worker stops. It is
// not a failure: the batch keeps its retry budget.
var errDraining = &deferError{delay: drainDelay, rateLimited: true, reason: "the worker is shutting down"}

// NewHandler wires a handler. metrics may be nil.
func NewHandler(store *runstore.Store, limiter *ratelimit.Limiter, r Realm, cfg Config, log *zap.Logger, m *Metrics) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	h := &Handler{store: store, limiter: limiter, realm: r, cfg: cfg, log: log, metrics: m,
		share: newShare(cfg.Concurrency), now: time.Now, rnd: randInt64N}
	h.gate = newGate(store, func() time.Time { return h.now() })
	h.drained, h.drain = context.WithCancel(context.Background())
	return h, nil
}

// Latency is the measured request latency of tenant's realm checks in this
// process, 0 if it has sent none.
func (h *Handler) Latency(tenant string) time.Duration { return h.share.latency(tenant) }

// Drain makes every batch stop at its next address, for a graceful stop: a
// request in flight finishes and its answer is recorded with the others the
// batch got, then the batch goes back to the queue for another worker (none
// of its answered addresses is asked again); a batch that starts after Drain
// goes back at once. It cannot be undone.
func (h *Handler) Drain() { h.drain() }

// waits returns a context for the handler's waits (slots, the rate limiter,
// backoff in place): cancelled with ctx, or when the handler drains.
func (h *Handler) waits(ctx context.Context) (context.Context, context.CancelFunc) {
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(h.drained, cancel)
	return wctx, func() { stop(); cancel() }
}

// handBack is what a draining handler returns. On asynq's last retry any
// error would archive the batch, so it keeps the slot until asynq's
// shutdown timeout, when asynq puts the task back as pending itself.
func (h *Handler) handBack(ctx context.Context, lastChance bool) error {
	if !lastChance {
		return errDraining
	}
	<-ctx.Done()
	return ctx.Err()
}

// ProcessTask implements asynq.Handler.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.DecodeCheckBatch(t.Payload())
	if err != nil {
		return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
	}
	h.metrics.inflight.Inc()
	defer h.metrics.inflight.Dec()
	retried, ok1 := asynq.GetRetryCount(ctx)
	maxRetry, ok2 := asynq.GetMaxRetry(ctx)
	lastChance := ok1 && ok2 && retried >= maxRetry
	log := h.log.With(zap.String("run_id", p.RunID), zap.Int("batch", p.Batch))
	wctx, done := h.waits(ctx)
	defer done()
	for {
		if wctx.Err() != nil && ctx.Err() == nil {
			return h.handBack(ctx, lastChance)
		}
		ok, wait, err := h.share.acquire(wctx, p.TenantID, len(p.Entries))
		if err != nil {
			if ctx.Err() == nil {
				return h.handBack(ctx, lastChance)
			}
			return err
		}
		if !ok {
			d := &deferError{delay: wait + time.Duration(h.rnd(int64(wait/4)+1)), rateLimited: true,
				reason: "the tenant holds its share of this worker's slots"}
			if !lastChance {
				return d
			}
			if err := sleep(wctx, d.delay); err != nil && ctx.Err() != nil {
				return err
			}
			continue
		}
		res, err := h.pass(ctx, wctx, p, log)
		h.share.release(p.TenantID)
		if err != nil {
			return err
		}
		if res.pending == 0 {
			if res.dead > 0 {
				return fmt.Errorf("%d of %d addresses dead-lettered: %w", res.dead, len(p.Entries), asynq.SkipRetry)
			}
			return nil
		}
		if !lastChance {
			return res.deferral
		}
		// asynq would archive the task on any error now, with addresses
		// still pending: keep the worker slot and wait here instead.
		log.Info("last task retry: waiting in place", zap.Duration("delay", res.deferral.delay))
		if err := sleep(wctx, res.deferral.delay); err != nil && ctx.Err() != nil {
			return err
		}
	}
}

// passResult summarizes one pass over a batch.
type passResult struct {
	pending  int // addresses still pending after the pass
	dead     int // addresses dead-lettered by this pass
	deferral *deferError
}

// pass checks the batch's pending addresses once, until done, throttled, out
// of rate-limit slots or drained (wctx, the context of its waits, ends), and
// records what it learned. Requests use ctx, so a drain lets them finish.
func (h *Handler) pass(ctx, wctx context.Context, p tasks.CheckBatchPayload, log *zap.Logger) (passResult, error) {
	addrs := make([]string, len(p.Entries))
	for i, e := range p.Entries {
		addrs[i] = e.Address
	}
	bs, err := h.store.LoadBatch(ctx, p.RunID, addrs)
	if err != nil {
		return passResult{}, err
	}
	if !bs.RunExists || bs.Cancelled {
		log.Info("dropping batch of a cancelled or purged run")
		return passResult{}, nil
	}
	var todo []string
	maxAttempts := 0
	for i, st := range bs.Addresses {
		if st.Pending() {
			todo = append(todo, addrs[i])
			maxAttempts = max(maxAttempts, st.Attempts)
		}
	}
	if len(todo) == 0 {
		return passResult{}, nil
	}
	if bs.Paused {
		return passResult{pending: len(todo), deferral: errPaused}, nil
	}

	var (
		rec      = h.newRecorder(p.RunID)
		answered int
		deferral *deferError
		stopErr  error
	)
	for _, addr := range todo {
		if wctx.Err() != nil && ctx.Err() == nil {
			deferral = errDraining
			break
		}
		if deferral = h.gate.stop(ctx, p.RunID); deferral != nil {
			break
		}
		slot, err := h.reserve(wctx, p.TenantID)
		if err != nil {
			if wctx.Err() != nil && ctx.Err() == nil {
				deferral = errDraining
				break
			}
			stopErr = err
			break
		}
		if !slot.OK {
			deferral = &deferError{delay: slot.Wait + time.Duration(h.rnd(int64(slot.Wait/4)+1)), rateLimited: true, reason: "waiting for the tenant's rate limit"}
			break
		}
		// The slot may have been a long sleep: look again before sending.
		if deferral = h.gate.stop(ctx, p.RunID); deferral != nil {
			break
		}
		sent := time.Now()
		res, err := h.realm.Check(ctx, addr)
		h.share.observe(p.TenantID, time.Since(sent), slot.Rate)
		if ctx.Err() != nil {
			stopErr = ctx.Err()
			break
		}
		o := runstore.Outcome{Address: addr, Rate: slot.Rate, Detail: runstore.Detail{RequestID: res.RequestID, CheckedAt: res.CheckedAt}}
		answered++
		if err == nil {
			o.Status = runstore.AddressStatus(res.Status)
			h.metrics.checks.WithLabelValues(string(res.Status)).Inc()
			rec.add(o)
			continue
		}
		o.Detail.Error = err.Error()
		var te *realm.ThrottleError
		o.Throttled = errors.As(err, &te)
		rec.add(o)
		if o.Throttled {
			h.metrics.checks.WithLabelValues("throttled").Inc()
			h.metrics.throttles.WithLabelValues(p.TenantID).Inc()
			pause, terr := h.limiter.Throttled(ctx, p.TenantID, te.RetryAfter, slot)
			if terr != nil {
				log.Warn("report throttle", zap.Error(terr))
			}
			delay := max(h.backoff(maxAttempts+1), pause, te.RetryAfter)
			deferral = &deferError{delay: delay, reason: "throttled: " + te.Reason}
			break
		}
		h.metrics.checks.WithLabelValues("error").Inc()
	}

	// Record even when stopping early, so no answer is thrown away.
	outs, states, err := rec.close(ctx)
	if err != nil {
		return passResult{}, err
	}
	if stopErr != nil {
		return passResult{}, stopErr
	}
	res := passResult{}
	failed := 0
	for i, st := range states {
		switch {
		case st.State == runstore.StateDead:
			if outs[i].Status == "" && st.Attempts >= h.cfg.MaxAttempts {
				res.dead++
				h.metrics.deadLetters.Inc()
			}
		case st.Pending():
			failed++
			maxAttempts = max(maxAttempts, st.Attempts)
		}
	}
	res.pending = failed + len(todo) - answered
	if res.pending == 0 {
		return res, nil
	}
	if deferral == nil {
		deferral = &deferError{delay: h.backoff(maxAttempts), reason: fmt.Sprintf("%d addresses got no answer", failed)}
	}
	if !deferral.rateLimited {
		h.metrics.retries.Inc()
	}
	res.deferral = deferral
	log.Debug("batch deferred", zap.Int("pending", res.pending), zap.Duration("delay", deferral.delay), zap.String("reason", deferral.reason))
	return res, nil
}

// staleCheckAfter is the shortest wait for a slot after which a throttle
// reaction by another worker may have happened meanwhile: about the time a
// realm request and its report take.
const staleCheckAfter = 20 * time.Millisecond

// reserve gets a rate-limit slot and sleeps until it. The slot is not OK
// when it is further than the limiter's MaxWait (Wait then says how long
// until one could be had), or when a throttle seen meanwhile paused the
// tenant.
func (h *Handler) reserve(ctx context.Context, tenant string) (ratelimit.Reservation, error) {
	r, err := h.limiter.Reserve(ctx, tenant)
	if err != nil {
		return r, err
	}
	if r.Rate > 0 {
		h.metrics.rate.WithLabelValues(tenant).Set(r.Rate)
	}
	if !r.OK {
		return r, nil
	}
	h.metrics.limiterWait.Observe(r.Wait.Seconds())
	if err := sleep(ctx, r.Wait); err != nil {
		return r, err
	}
	if h.limiter.Paused(tenant) {
		return ratelimit.Reservation{Wait: ratelimit.Pause}, nil
	}
	if r.Wait >= staleCheckAfter {
		stale, left, err := h.limiter.Stale(ctx, tenant, r)
		if err != nil {
			return r, err
		}
		if stale {
			return ratelimit.Reservation{Wait: max(left, 100*time.Millisecond)}, nil
		}
	}
	return r, nil
}

func (h *Handler) backoff(attempt int) time.Duration {
	return Backoff(attempt, h.cfg.BackoffBase, h.cfg.BackoffMax, h.rnd)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
