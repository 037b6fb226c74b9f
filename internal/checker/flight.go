package checker

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/ratelimit"
	"github.com/msaudit/msaudit/internal/realm"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/tasks"
)

// InFlightPerBatch is how many requests of one batch may be in flight at
// once. A batch that sent its next address only after the previous answer
// could not go faster than 1/L requests a second (4/s at 250 ms): a tenant
// at rate R then needed R·L batches, each holding a worker slot, and a
// worker of ten slots topped out at 40/s. The limiter paces the requests
// whatever their number in flight. Not many more, though: a batch ends only
// with its slowest answer (the service has a tail of seconds), and the
// share and the autoscaler size a tenant's batches by this figure.
const InFlightPerBatch = 8

// flight sends one pass's requests in the background, at most
// InFlightPerBatch at once, records their outcomes and keeps what ends the
// pass early: a throttle, or the task's context ending.
type flight struct {
	h           *Handler
	ctx         context.Context // the requests': a drain lets them finish
	p           tasks.CheckBatchPayload
	rec         *recorder
	log         *zap.Logger
	maxAttempts int // of the pass's pending addresses, for a throttle's backoff

	room chan struct{} // one token per request in flight
	wg   sync.WaitGroup

	mu        sync.Mutex
	answered  int
	throttled bool        // a throttle answer arrived: send no more
	deferral  *deferError // the throttle's, once reported to the limiter
	err       error       // the task's context ended
}

func (h *Handler) newFlight(ctx context.Context, p tasks.CheckBatchPayload, rec *recorder, maxAttempts int, log *zap.Logger) *flight {
	return &flight{h: h, ctx: ctx, p: p, rec: rec, log: log, maxAttempts: maxAttempts,
		room: make(chan struct{}, InFlightPerBatch)}
}

// take waits until one more request may be in flight, before its slot is
// reserved so that the slot is not left unused. It fails when wctx ends.
func (f *flight) take(wctx context.Context) error {
	if f.h.roomWait != nil {
		select {
		case f.room <- struct{}{}:
			return nil
		default:
			f.h.roomWait(len(f.room))
		}
	}
	select {
	case f.room <- struct{}{}:
		return nil
	case <-wctx.Done():
		return wctx.Err()
	}
}

// give returns what take got, for a request not sent after all.
func (f *flight) give() { <-f.room }

// stopped reports whether an answer ended the pass: send no more.
func (f *flight) stopped() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.throttled || f.err != nil
}

// send checks addr in slot, in the background.
func (f *flight) send(addr string, slot ratelimit.Reservation) {
	f.wg.Add(1)
	go func() {
		defer func() { <-f.room; f.wg.Done() }()
		f.check(addr, slot)
	}()
}

func (f *flight) check(addr string, slot ratelimit.Reservation) {
	h, tenant := f.h, f.p.TenantID
	sent := time.Now()
	res, err := h.realm.Check(f.ctx, addr)
	h.share.observe(tenant, time.Since(sent), slot.Rate)
	if f.ctx.Err() != nil {
		f.mu.Lock()
		f.err = f.ctx.Err()
		f.mu.Unlock()
		return
	}
	o := runstore.Outcome{Address: addr, Rate: slot.Rate, Detail: runstore.Detail{RequestID: res.RequestID, CheckedAt: res.CheckedAt}}
	f.mu.Lock()
	f.answered++
	f.mu.Unlock()
	if err == nil {
		h.limiter.Answered(tenant, slot)
		o.Status = runstore.AddressStatus(res.Status)
		h.metrics.checks.WithLabelValues(string(res.Status)).Inc()
		f.rec.add(o)
		return
	}
	o.Detail.Error = err.Error()
	var te *realm.ThrottleError
	o.Throttled = errors.As(err, &te)
	f.rec.add(o)
	if !o.Throttled {
		h.metrics.checks.WithLabelValues("error").Inc()
		return
	}
	// Stop the sending first: the report below is a round trip.
	f.mu.Lock()
	f.throttled = true
	f.mu.Unlock()
	h.metrics.checks.WithLabelValues("throttled").Inc()
	h.metrics.throttles.WithLabelValues(tenant).Inc()
	pause, terr := h.limiter.Throttled(f.ctx, tenant, te.RetryAfter, slot)
	if terr != nil {
		f.log.Warn("report throttle", zap.Error(terr))
	}
	d := &deferError{delay: max(h.backoff(f.maxAttempts+1), pause, te.RetryAfter), reason: "throttled: " + te.Reason}
	f.mu.Lock()
	if f.deferral == nil || d.delay > f.deferral.delay {
		f.deferral = d
	}
	f.mu.Unlock()
}

// wait waits for the requests in flight and returns how many were answered
// and what ended the pass early, if anything did.
func (f *flight) wait() (answered int, throttle *deferError, err error) {
	f.wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.answered, f.deferral, f.err
}
