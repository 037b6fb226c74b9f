package checker

import (
	"context"
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
	// WaitInPlace is the longest wait for the rate limiter a batch sleeps
	// in its worker slot; a longer one hands the batch back to the queue.
	// Through the queue a wait lasts at least until asynq next forwards
	// waiting tasks, so the worker sets it to that interval.
	WaitInPlace time.Duration
	// Failovers, if set, counts the Redis failovers the worker noticed. A
	// pass that began before one may have recorded answers the failover
	// erased: its batch is checked again, from the states Redis holds
	// now, before it is acknowledged, since acknowledging it removes the
	// task that carries those addresses.
	Failovers func() uint64
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
	case c.WaitInPlace < 0:
		return fmt.Errorf("wait in place must be >= 0, got %s", c.WaitInPlace)
	}
	return nil
}

// Realm checks one address; *realm.Client implements it.
type Realm interface {
	Check(ctx context.Context, addr string) (realm.Result, error)
}

// Handler processes tasks.TypeCheckBatch.
type Handler struct {
	store    *runstore.Store
	limiter  *ratelimit.Limiter
	realm    Realm
	cfg      Config
	log      *zap.Logger
	metrics  *Metrics
	share    *share
	gate     *gate
	slots    *slotPools
	sleepers *sleepers
	now      func() time.Time
	rnd      func(int64) int64
	// roomWait, if set, is called with the number of requests in flight
	// when a pass's sending loop is about to wait for one of them to end:
	// until then it sends nothing, which a test cannot tell by waiting.
	roomWait func(inFlight int)

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
		share: newShare(cfg.Concurrency), slots: newSlotPools(), sleepers: newSleepers(cfg.Concurrency), now: time.Now, rnd: randInt64N}
	h.gate = newGate(store, func() time.Time { return h.now() })
	h.drained, h.drain = context.WithCancel(context.Background())
	return h, nil
}

// failovers is how many Redis failovers the worker noticed (Config.Failovers).
func (h *Handler) failovers() uint64 {
	if h.cfg.Failovers == nil {
		return 0
	}
	return h.cfg.Failovers()
}

// Latency is the measured request latency of tenant's realm checks in this
// process, 0 if it has sent none.
func (h *Handler) Latency(tenant string) time.Duration { return h.share.latency(tenant) }

// Drain makes every batch stop at its next address, for a graceful stop: the
// requests in flight finish and their answers are recorded with the others
// the batch got, then the batch goes back to the queue for another worker (none
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
		failovers := h.failovers()
		res, err := h.pass(ctx, wctx, p, log)
		h.share.release(p.TenantID)
		if err != nil {
			return err
		}
		if res.pending == 0 && h.failovers() != failovers {
			log.Debug("Redis failed over during the batch: checking it again before it is acknowledged")
			continue
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
// records what it learned. Up to InFlightPerBatch requests are in flight at
// once, each sent at its own slot. Requests use ctx, so a drain lets them
// finish; a throttle lets those in flight finish and sends no more.
func (h *Handler) pass(ctx, wctx context.Context, p tasks.CheckBatchPayload, log *zap.Logger) (passResult, error) {
	addrs, bs, err := h.loadBatch(ctx, p)
	if err != nil {
		return passResult{}, err
	}
	if !bs.RunExists || bs.Cancelled {
		log.Info("dropping batch of a cancelled or purged run")
		return passResult{}, nil
	}
	// Selected here, not in a function that returns them: the list stays
	// in this frame, where a short one costs no allocation.
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

	tfd := h.sleepers.get()
	defer h.sleepers.put(tfd)
	rec := h.newRecorder(p.RunID)
	fl := h.newFlight(ctx, p, rec, maxAttempts, log)
	end := h.sendAll(ctx, wctx, p, todo, fl, tfd)
	return h.finish(ctx, fl, rec, end, len(todo), maxAttempts, log)
}

// loadBatch returns the batch's addresses and their states.
func (h *Handler) loadBatch(ctx context.Context, p tasks.CheckBatchPayload) ([]string, runstore.BatchState, error) {
	addrs := make([]string, len(p.Entries))
	for i, e := range p.Entries {
		addrs[i] = e.Address
	}
	bs, err := h.store.LoadBatch(ctx, p.RunID, addrs)
	return addrs, bs, err
}

// passEnd is what ended a pass's sending early, if anything did: a
// deferral, or an error that ends the task.
type passEnd struct {
	deferral *deferError
	err      error
}

func (e passEnd) ended() bool { return e.deferral != nil || e.err != nil }

// drainedOr is what ends the pass when a wait failed with err: a drain, or
// err itself.
func drainedOr(ctx, wctx context.Context, err error) passEnd {
	if wctx.Err() != nil && ctx.Err() == nil {
		return passEnd{deferral: errDraining}
	}
	return passEnd{err: err}
}

// sendAll sends todo, each address once the flight has room for it and at
// its rate-limit slot, until every one is sent or the pass ends early.
func (h *Handler) sendAll(ctx, wctx context.Context, p tasks.CheckBatchPayload, todo []string, fl *flight, tfd *timerFD) passEnd {
	for i := 0; i < len(todo); {
		if fl.rec.failing.Load() {
			// An answer got now could not be written either: it would
			// wait in memory for Redis, and be asked again if the task's
			// lease expires meanwhile.
			return passEnd{deferral: &deferError{delay: Backoff(1, taskRetryBase, taskRetryMax, h.rnd), reason: "the run store refuses the answers"}}
		}
		if err := fl.take(wctx); err != nil {
			return drainedOr(ctx, wctx, err)
		}
		slot, d, err := h.slot(ctx, wctx, p, fl, tfd, len(todo)-i)
		if err != nil || d != nil || !slot.OK {
			fl.give()
		}
		switch {
		case err != nil:
			return drainedOr(ctx, wctx, err)
		case d != nil:
			return passEnd{deferral: d}
		case !slot.OK:
			if end := h.waitInPlace(ctx, wctx, slot.Wait); end.ended() {
				return end
			}
		default:
			fl.send(todo[i], slot)
			i++
		}
	}
	return passEnd{}
}

// waitInPlace waits for a slot the limiter refused, wait from now. A short
// wait is slept here: through the queue it would take at least asynq's
// forwarding interval. A longer one, or a drain, ends the pass.
func (h *Handler) waitInPlace(ctx, wctx context.Context, wait time.Duration) passEnd {
	d := wait + time.Duration(h.rnd(int64(wait/4)+1))
	if d > h.cfg.WaitInPlace {
		return passEnd{deferral: &deferError{delay: d, rateLimited: true, reason: "waiting for the tenant's rate limit"}}
	}
	if err := sleep(wctx, d); err != nil {
		return drainedOr(ctx, wctx, err)
	}
	return passEnd{}
}

// finish waits for the pass's requests in flight, records every answer and
// sums up the pass. end is what ended its sending early; toSend is how
// many addresses it had to send.
func (h *Handler) finish(ctx context.Context, fl *flight, rec *recorder, end passEnd, toSend, maxAttempts int, log *zap.Logger) (passResult, error) {
	answered, throttle, err := fl.wait()
	if throttle != nil {
		end.deferral = throttle
	}
	if err != nil && end.err == nil {
		end.err = err
	}

	// Record even when stopping early, so no answer is thrown away.
	outs, states, err := rec.close(ctx)
	if err != nil {
		return passResult{}, err
	}
	if end.err != nil {
		return passResult{}, end.err
	}
	// With no error, every request sent came back: those not answered
	// were not sent.
	return h.summarize(outs, states, toSend-answered, maxAttempts, end.deferral, log), nil
}

// summarize counts the addresses the pass dead-lettered and those still
// pending: the recorded failures and the unsent. Pending ones defer the
// batch, for what ended the pass or else for a backoff from the most
// attempts one of them has had.
func (h *Handler) summarize(outs []runstore.Outcome, states []runstore.AddressState, unsent, maxAttempts int, deferral *deferError, log *zap.Logger) passResult {
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
	res.pending = failed + unsent
	if res.pending == 0 {
		return res
	}
	if deferral == nil {
		deferral = &deferError{delay: h.backoff(maxAttempts), reason: fmt.Sprintf("%d addresses got no answer", failed)}
	}
	if !deferral.rateLimited {
		h.metrics.retries.Inc()
	}
	res.deferral = deferral
	log.Debug("batch deferred", zap.Int("pending", res.pending), zap.Duration("delay", deferral.delay), zap.String("reason", deferral.reason))
	return res
}

// errAnswerStops ends a pass's sending when an answer in flight ended it;
// the pass then ends with what that answer said (flight.wait).
var errAnswerStops = &deferError{reason: "an answer in flight ended the pass"}

// slot gets the rate-limit slot of the pass's next request, unless the run
// or an answer in flight says to send no more (d). The run's flags and the
// flight are looked at again after the slot, which may have been a long
// sleep.
func (h *Handler) slot(ctx, wctx context.Context, p tasks.CheckBatchPayload, fl *flight, tfd *timerFD, want int) (ratelimit.Reservation, *deferError, error) {
	if wctx.Err() != nil {
		return ratelimit.Reservation{}, nil, wctx.Err()
	}
	if d := h.gate.stop(ctx, p.RunID); d != nil {
		return ratelimit.Reservation{}, d, nil
	}
	if fl.stopped() {
		return ratelimit.Reservation{}, errAnswerStops, nil
	}
	slot, err := h.reserve(wctx, p.TenantID, tfd, want)
	if err != nil || !slot.OK {
		return slot, nil, err
	}
	if d := h.gate.stop(ctx, p.RunID); d != nil {
		return ratelimit.Reservation{}, d, nil
	}
	if fl.stopped() {
		return ratelimit.Reservation{}, errAnswerStops, nil
	}
	return slot, nil, nil
}

// staleCheckAfter is the shortest wait for a slot after which a throttle
// reaction by another worker may have happened meanwhile: about the time a
// realm request and its report take. A slot used later than this after
// the last round trip that found its epochs current is checked (Stale).
// The limiter's pauses allow for the requests sent unchecked meanwhile.
const staleCheckAfter = ratelimit.Unchecked

// reserve gets a rate-limit slot and sleeps until it, on tfd (sleeper.go).
// The slot comes from the tenant's pool in this process, which reserves the
// next few of the tenant's schedule when it is empty, for a pass with want
// addresses left to send. The slot is not OK when it is further than the
// limiter's MaxWait (Wait then says how long until one could be had), or
// when a throttle seen meanwhile paused the tenant; the pool's slots as old
// as it are then dropped too.
func (h *Handler) reserve(ctx context.Context, tenant string, tfd *timerFD, want int) (ratelimit.Reservation, error) {
	pool := h.slots.pool(tenant)
	r, err := pool.take(ctx, h, tenant, want)
	if err != nil || !r.OK {
		return r, err
	}
	h.metrics.limiterWait.Observe(r.Wait.Seconds())
	if err := sleepOn(ctx, tfd, r.Wait); err != nil {
		return r, err
	}
	if left := h.limiter.PausedFor(tenant); left > 0 {
		pool.dropUpTo(r)
		return ratelimit.Reservation{Wait: left}, nil
	}
	if sent := time.Now(); !h.slots.fresh(tenant, r, sent) {
		stale, left, err := h.limiter.Stale(ctx, tenant, r)
		if err != nil {
			return r, err
		}
		if stale {
			pool.dropUpTo(r)
			return ratelimit.Reservation{Wait: max(left, 100*time.Millisecond)}, nil
		}
		h.slots.saw(tenant, r, sent)
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
