package runevents

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mathrand "math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/runview"
)

// Config says where events go and when a run is stalled.
type Config struct {
	// Webhook receives the events; nil keeps them in the outbox, for
	// enqueue events, until the run expires.
	Webhook *Webhook
	// StallAfter is how long an open, unpaused run may go without an
	// answer before it is stalled; 0 turns stall detection off.
	StallAfter time.Duration
}

// Timing of the notifier; tests shorten them.
type timing struct {
	every      time.Duration // between two looks at the outboxes
	stallEvery time.Duration // between two looks for stalled runs
	lease      time.Duration // how long a holder keeps the lease without renewing it
	backoff    time.Duration // the first wait after a failed delivery, doubled each time
	maxBackoff time.Duration
}

var defaultTiming = timing{every: 2 * time.Second, stallEvery: 30 * time.Second, lease: 15 * time.Second,
	backoff: 5 * time.Second, maxBackoff: 15 * time.Minute}

// leaseKey is held by the one worker that delivers events and looks for
// stalled runs.
const leaseKey = "msaudit:events:lease"

// Notifier delivers the run events and finds stalled runs. Every worker runs
// one; the one holding the lease does the work, so that events go out in
// order and a stall is found once.
type Notifier struct {
	rdb     redis.UniversalClient
	store   *runstore.Store
	cfg     Config
	log     *zap.Logger
	timing  timing
	token   string
	now     func() time.Time
	metrics *metrics
}

// New returns a notifier over rdb. reg may be nil (no metrics registered).
func New(rdb redis.UniversalClient, cfg Config, log *zap.Logger, reg prometheus.Registerer) *Notifier {
	var b [8]byte
	cryptorand(b[:])
	n := &Notifier{rdb: rdb, store: runstore.New(rdb), cfg: cfg, log: log, timing: defaultTiming,
		token: hex.EncodeToString(b[:]), now: time.Now}
	n.metrics = newMetrics(reg, n.store)
	return n
}

func cryptorand(b []byte) {
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
}

// Run works until ctx ends, then gives the lease up.
func (n *Notifier) Run(ctx context.Context) {
	defer n.rdb.Eval(context.WithoutCancel(ctx), releaseLua, []string{leaseKey}, n.token)
	var lastStallLook time.Time
	// A stall is found at most a quarter of the stall time late.
	stallEvery := min(n.timing.stallEvery, n.cfg.StallAfter/4)
	for {
		// Jitter, so that workers started together do not all try at once.
		d := n.timing.every/2 + time.Duration(mathrand.Int64N(int64(n.timing.every)))
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		if !n.hold(ctx) {
			continue
		}
		if n.cfg.StallAfter > 0 && n.now().Sub(lastStallLook) >= stallEvery {
			lastStallLook = n.now()
			n.findStalls(ctx)
		}
		if n.cfg.Webhook != nil {
			n.deliver(ctx)
		}
	}
}

// holdLua takes the lease, or renews it for its holder.
const holdLua = `
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`

// releaseLua gives the lease up if its holder still has it.
const releaseLua = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`

// hold takes or renews the lease, reporting whether this notifier has it.
func (n *Notifier) hold(ctx context.Context) bool {
	ok, err := n.rdb.Eval(ctx, holdLua, []string{leaseKey}, n.token, n.timing.lease.Milliseconds()).Int()
	return err == nil && ok == 1
}

// findStalls marks the open runs that made no progress for StallAfter.
func (n *Notifier) findStalls(ctx context.Context) {
	runs, err := n.store.OpenRuns(ctx)
	if err != nil {
		n.log.Warn("stall detection: list open runs", zap.Error(err))
		return
	}
	for _, r := range runs {
		stalled, err := n.store.MarkStalled(ctx, r.ID, n.now(), n.cfg.StallAfter)
		switch {
		case err != nil:
			n.log.Warn("stall detection", zap.String("run_id", r.ID), zap.Error(err))
		case stalled:
			n.log.Warn("run stalled: no answer for the stall time", zap.String("run_id", r.ID), zap.Duration("stall_after", n.cfg.StallAfter))
		}
	}
}

// deliver sends what is due of every outbox, each run's events in order: a
// run whose next event fails waits for its backoff, the others go on.
func (n *Notifier) deliver(ctx context.Context) {
	boxes, _, err := n.store.Undelivered(ctx)
	if err != nil {
		n.log.Warn("event delivery: list outboxes", zap.Error(err))
		return
	}
	for _, o := range boxes {
		for ctx.Err() == nil && n.hold(ctx) {
			e, ok := o.Next()
			if !ok || n.now().Before(o.NextAt) {
				break
			}
			if err := n.deliverOne(ctx, o, e); err != nil {
				break
			}
			o.Delivered++
		}
	}
}

// deliverOne posts one event and records how it went.
func (n *Notifier) deliverOne(ctx context.Context, o runstore.Outbox, e runstore.Event) error {
	r, err := n.store.GetRun(ctx, o.RunID)
	if err != nil {
		return err // purged or expired since: nothing to deliver
	}
	id := runstore.EventID(o.RunID, e.Seq)
	body, err := json.Marshal(NewBody(id, e, r, n.now(), n.cfg.StallAfter))
	if err != nil {
		return err
	}
	if err := n.cfg.Webhook.Post(ctx, id, string(e.Type), body); err != nil {
		n.metrics.deliveries.WithLabelValues("failed").Inc()
		next := n.now().Add(n.backoff(o.Attempts + 1))
		n.log.Warn("event delivery failed", zap.String("run_id", o.RunID), zap.String("event", id),
			zap.Int("attempts", o.Attempts+1), zap.Time("next_attempt", next), zap.Error(err))
		if ferr := n.store.DeliveryFailed(ctx, o.RunID, e.Seq, next, err.Error()); ferr != nil {
			n.log.Warn("event delivery: note the failure", zap.Error(ferr))
		}
		return err
	}
	n.metrics.deliveries.WithLabelValues("delivered").Inc()
	n.log.Info("event delivered", zap.String("run_id", o.RunID), zap.String("event", id), zap.String("type", string(e.Type)))
	if err := n.store.MarkDelivered(ctx, o.RunID, e.Seq, n.now()); err != nil {
		// Delivered again next time: a receiver drops it by its ID.
		n.log.Warn("event delivery: note the delivery", zap.Error(err))
		return err
	}
	return nil
}

// backoff is the wait before the attempt after the n-th failed one: doubling
// from timing.backoff up to timing.maxBackoff, give or take a fifth.
func (n *Notifier) backoff(failed int) time.Duration {
	d := n.timing.maxBackoff
	if failed < 20 {
		d = min(d, n.timing.backoff<<(failed-1))
	}
	return d - d/5 + time.Duration(mathrand.Int64N(int64(2*d/5)+1))
}

// Body is what a webhook receives for an event.
type Body struct {
	ID         string             `json:"id"` // the same on every delivery of the event
	Type       runstore.EventType `json:"type"`
	OccurredAt time.Time          `json:"occurred_at"`
	// Run is the run's status when the event is delivered, as
	// status -o json prints it.
	Run  runview.Status `json:"run"`
	Text string         `json:"text"` // one line for people (a chat message)
}

// NewBody is the body of event e of run r, delivered at now.
func NewBody(id string, e runstore.Event, r *runstore.Run, now time.Time, stallAfter time.Duration) Body {
	v := runview.Of(r, now)
	// The submit's last error may quote the address list.
	v.LastError = ""
	return Body{ID: id, Type: e.Type, OccurredAt: e.At.UTC(), Run: v, Text: summary(e.Type, v, stallAfter)}
}

// summary is an event in one line, with nothing personal in it.
func summary(t runstore.EventType, v runview.Status, stallAfter time.Duration) string {
	th := runview.Thousands
	done := fmt.Sprintf("%s of %s addresses done", th(v.AskedDone()), th(v.ToAsk()))
	run := "msaudit run " + v.RunID
	switch t {
	case runstore.EventSubmitted:
		return fmt.Sprintf("%s of tenant %s submitted: %s addresses to check", run, v.TenantID, th(v.AddressesTotal))
	case runstore.EventCompleted:
		return fmt.Sprintf("%s completed: %s addresses, %s with a personal Microsoft account, %s without, %s dead-lettered",
			run, th(v.AddressesTotal), th(v.Present), th(v.Absent), th(v.DeadLettered))
	case runstore.EventCancelled:
		return fmt.Sprintf("%s cancelled with %s", run, done)
	case runstore.EventPaused:
		return fmt.Sprintf("%s paused with %s", run, done)
	case runstore.EventResumed:
		return fmt.Sprintf("%s resumed with %s", run, done)
	case runstore.EventStalled:
		return fmt.Sprintf("%s stalled: no answer for %s, %s", run, stallAfter, done)
	case runstore.EventRecovered:
		return fmt.Sprintf("%s recovered: answers come again, %s", run, done)
	}
	return fmt.Sprintf("%s: %s", run, t)
}
