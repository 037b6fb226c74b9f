package ratelimit

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Constants of the adaptive algorithm (see the package comment).
const (
	// doublingTime is how fast slow start doubles the rate when the
	// workers use it.
	doublingTime = time.Second
	// slowStartMargin: at the first throttle, which ends the doubling, the
	// estimate is this fraction of the rate that throttled. A rate
	// doubling every doublingTime from capacity C takes y doubling times
	// to empty a burst allowance of burstGuess, where (2^y - 1)/ln 2 - y =
	// burstGuess / doublingTime, and is then 2^y·C: for both 1 s, y = 1.42
	// and the margin 2^-y = 0.373
	// (TestSlowStartMarginFollowsTheBurstGuess). The feedback latency does
	// not matter: the rate is the one the throttled request was paced at.
	slowStartMargin = 0.373
	// After a pause the rate restarts at the estimate. A rate away from it
	// (after an idle spell, a pause that proved too short, or a freed share
	// that raised the estimate) returns to it with the time constant
	// recovery. It then creeps above it by probe (a fraction per second)
	// and, after probeQuiet without a throttle, accelerates
	// (probeAcceleration, per second squared), and probeLate later faster
	// still (lateAcceleration, which the probe's promise sets): gently
	// first, so that a steady capacity is met with a small overshoot.
	recovery          = 3 * time.Second
	probe             = 0.001
	probeQuiet        = 40 * time.Second
	probeAcceleration = 0.002
	probeLate         = 8 * time.Second
	// The probe's promise (the package comment's invariant): probeWithin
	// after a scope's pause ended, with no throttle signal since and
	// workers taking its slots, its rate is at least probeReach times its
	// estimate, so that no scope sits below its capacity for good and a
	// capacity back from a drop to 1/probeReach of itself is found within
	// probeWithin (TestProbeInvariant). lateAcceleration follows from it.
	probeWithin = 60 * time.Second
	probeReach  = 2.5
	// useHeadroom: past slow start a rate runs at most this far ahead of
	// the slots taken over the last window (never below the estimate), so
	// that a probe grows with use, not time.
	useHeadroom = 1.25
	// After a shared cut a tenant waits sharedQuiet times probeQuiet, less
	// a random part of up to quietSpread, before it probes: tenants paused
	// together do not probe together. The longest such wait bounds the
	// probe's promise (probeAcceleration), so it stays well under
	// probeWithin.
	sharedQuiet = 1.1
	quietSpread = 0.2
	// freed: when all tenants together take less than this fraction of the
	// shared estimate, a tenant cut by a shared event takes up what they
	// leave unused at once (a run sharing the capacity has ended).
	freed = 0.6
	// A throttle sets a new estimate from the rate r that throttled, by how
	// long the rate held since the last pause. Within probeQuiet the
	// plateau was over the capacity, the more so the shorter it held: a rate
	// x times the capacity empties a burst allowance of b seconds in
	// b/(x-1) seconds, so the estimate becomes r·held/(held+burstGuess),
	// between deepestCut·r (a capacity that dropped) and plateauCut·r.
	// Later, the accelerating probe found the capacity: margin·r, but never
	// below the plateau that held.
	deepestCut = 0.5
	plateauCut = 0.95
	burstGuess = time.Second
	margin     = 0.85
	// firstPause is the first pause; a throttle of a request sent within
	// pauseTooShort of a pause's end, when nothing sent after that pause
	// was answered, grows it by pauseGrowth (up to
	// maxPause); otherwise it decays by pauseDecay, but never below
	// shortPauseMargin times the longest pause that proved too short.
	firstPause       = 2 * time.Second
	pauseTooShort    = 500 * time.Millisecond
	pauseGrowth      = 1.5
	pauseDecay       = 0.95
	maxPause         = time.Minute
	shortPauseMargin = 1.1
	// Unchecked: a caller may use a slot without asking Stale this soon
	// after a round trip found its epochs current, so requests may still
	// go out this long after a reaction. A pause starts pauseGuard after
	// the reaction: Unchecked, and a margin for requests that overtake
	// each other on the way. Without it the first request after a pause
	// could find the penalty these stragglers prolonged, and the pause
	// would grow for good (shortPauseMargin).
	Unchecked  = 20 * time.Millisecond
	pauseGuard = Unchecked + 80*time.Millisecond
	// coincidence: throttles of two tenants this close together mean they
	// share one capacity (the service limits the source address).
	coincidence = 750 * time.Millisecond
	// independent: a tenant answered for a request sent this long after
	// another tenant's throttled one does not share its capacity (the
	// margin covers requests overtaking each other on the way).
	independent = 300 * time.Millisecond
	minRate     = 0.05
	// A scope idle for idleRestart starts again from resumeRate times
	// resumeEstimate times its estimate (resumeStale once the estimate is
	// older than fresh). What was learned is kept for learnedTTL.
	idleRestart    = 5 * time.Minute
	fresh          = 7 * 24 * time.Hour
	resumeEstimate = 0.9
	resumeStale    = 0.6
	resumeRate     = 0.6
	learnedTTL     = 90 * 24 * time.Hour
	// scheduleLag is the credit, in slots, a schedule keeps behind the
	// slot it gave when the other schedule held that slot back.
	scheduleLag = 2
	// window is the span of the sliding count of all tenants' slots.
	window = 4 * time.Second
	// maxRate stands for "no limit" in the scripts.
	maxRate = 1e6
)

// lateAcceleration keeps the probe's promise after the longest quiet time
// (a shared cut's), with a tenth to spare: over the t = probeWithin − that
// quiet time left, the creep gives 1+probe·probeWithin, the first
// acceleration e^(probeAcceleration·t²/2) and the late one the rest,
// e^(lateAcceleration·(t−probeLate)²/2).
var lateAcceleration = func() float64 {
	t := probeWithin.Seconds() - sharedQuiet*probeQuiet.Seconds()
	need := 1.1*math.Log(probeReach/(1+probe*probeWithin.Seconds())) - probeAcceleration*t*t/2
	l := t - probeLate.Seconds()
	return 2 * need / (l * l)
}()

// Config sets the limits.
type Config struct {
	// TenantRate is the ceiling per tenant, requests/s, across all workers.
	TenantRate float64
	// GlobalRate, if > 0, is a ceiling over all tenants together.
	GlobalRate float64
	// Initial is the starting rate of a tenant with no learned rate.
	Initial float64
	// Adaptive enables throttle-seeking; when false the rate is TenantRate.
	Adaptive bool
	// MaxWait is the longest a caller is asked to sleep for a slot.
	MaxWait time.Duration
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.TenantRate <= 0:
		return fmt.Errorf("tenant rate must be > 0 requests/s, got %g", c.TenantRate)
	case c.GlobalRate < 0:
		return fmt.Errorf("global rate must be >= 0 requests/s, got %g", c.GlobalRate)
	case c.Adaptive && c.Initial <= 0:
		return fmt.Errorf("initial rate must be > 0 requests/s, got %g", c.Initial)
	case c.MaxWait <= 0:
		return fmt.Errorf("max wait must be > 0")
	}
	return nil
}

// Limiter hands out request slots.
type Limiter struct {
	rdb redis.UniversalClient
	cfg Config
	now func() time.Time

	// paused is this process's copy of each tenant's pause (and of the
	// source's, under ""), so that a request that took its slot before a
	// throttle and is sleeping until it does not fire into the pause. Other
	// processes learn of the pause at their next Reserve or Stale.
	mu     sync.Mutex
	paused map[string]time.Time
	// answered is the slot (Redis clock, us) of each tenant's latest
	// answered request in this process, passed along with the next
	// Reserve or Throttled (no round trip of its own).
	answered map[string]int64
}

// New returns a limiter over rdb.
func New(rdb redis.UniversalClient, cfg Config) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Limiter{rdb: rdb, cfg: cfg, now: time.Now, paused: make(map[string]time.Time), answered: make(map[string]int64)}, nil
}

// Reservation is the answer to Reserve.
type Reservation struct {
	// OK means a slot was taken: the caller sends after Wait.
	OK bool
	// Wait is how long until the slot (OK) or until one could be had (!OK).
	Wait time.Duration
	// Rate is the tenant's current rate, requests/s (the shared rate when
	// that is lower).
	Rate float64
	// Epoch and SourceEpoch identify the tenant's and the source's state
	// the slot was given under, and At is the slot's time on the Redis
	// clock (us): pass the reservation to Throttled and Stale.
	Epoch, SourceEpoch int64
	At                 int64
}

const stateKeyPrefix = "msaudit:rl:"

func stateKey(tenant string) string { return stateKeyPrefix + "tenant:" + tenant }

// sourceKey is the state every tenant shares: the operator's global rate
// and the shared capacity the limiter learned.
const sourceKey = stateKeyPrefix + "source"

// sourcePause is the key of the source's pause in Limiter.paused.
const sourcePause = ""

// Reserve takes a slot for one request of tenant, if one is within MaxWait.
func (l *Limiter) Reserve(ctx context.Context, tenant string) (Reservation, error) {
	if until := l.pausedUntil(tenant); !until.IsZero() {
		if w := until.Sub(l.now()); w > 0 {
			return Reservation{Wait: w}, nil
		}
	}
	res, err := reserveScript.Run(ctx, l.rdb, []string{stateKey(tenant), sourceKey}, l.reserveArgs(tenant)...).Int64Slice()
	if err != nil {
		return Reservation{}, fmt.Errorf("rate limit: %w", err)
	}
	return reservation(res), nil
}

// reserveArgs are the reserve script's arguments for a slot of tenant.
func (l *Limiter) reserveArgs(tenant string) []any {
	c := l.cfg
	return []any{c.TenantRate, c.GlobalRate, c.MaxWait.Microseconds(), c.Initial, flag(c.Adaptive), l.lastAnswered(tenant)}
}

// reservation reads the reserve script's answer.
func reservation(res []int64) Reservation {
	return Reservation{
		OK:          res[0] == 1,
		Wait:        time.Duration(res[1]) * time.Microsecond,
		Rate:        float64(res[2]) / 1000,
		Epoch:       res[3],
		SourceEpoch: res[4],
		At:          res[5],
	}
}

func flag(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Answered notes that the request sent in slot r was answered (not
// throttled). It costs no round trip: the next Reserve or Throttled of the
// tenant carries it. It tells a capacity of the tenant's own from one shared
// with another tenant throttled at the same time.
func (l *Limiter) Answered(tenant string, r Reservation) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.At > l.answered[tenant] {
		l.answered[tenant] = r.At
	}
}

func (l *Limiter) lastAnswered(tenant string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.answered[tenant]
}

// PausedFor is how much longer a throttle seen by this process pauses
// tenant (0: not paused); call it after sleeping for a slot, before sending.
func (l *Limiter) PausedFor(tenant string) time.Duration {
	return max(0, l.pausedUntil(tenant).Sub(l.now()))
}

// Stale reports whether any worker reacted to a throttle of tenant, or of
// all tenants, since the slot r was given, and for how much longer the
// pause lasts. A slot taken before a reaction must not be used: a request
// sent into the service's penalty window lengthens it. One round trip;
// callers skip it for slots so near that no reaction can have happened in
// between.
func (l *Limiter) Stale(ctx context.Context, tenant string, r Reservation) (bool, time.Duration, error) {
	if !l.cfg.Adaptive {
		return false, 0, nil
	}
	us, err := staleScript.Run(ctx, l.rdb, []string{stateKey(tenant), sourceKey}, r.Epoch, r.SourceEpoch).Int64()
	if err != nil {
		return false, 0, fmt.Errorf("rate limit: %w", err)
	}
	if us < 0 {
		return false, 0, nil
	}
	return true, time.Duration(us) * time.Microsecond, nil
}

// pausedUntil is the later of tenant's and the source's pause as this
// process knows them.
func (l *Limiter) pausedUntil(tenant string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, s := l.paused[tenant], l.paused[sourcePause]
	if s.After(t) {
		return s
	}
	return t
}

// Throttled reports a throttle signal for tenant on a request sent in the
// slot r; retryAfter is the service's Retry-After (0 if none). It returns
// the pause now in force.
func (l *Limiter) Throttled(ctx context.Context, tenant string, retryAfter time.Duration, r Reservation) (time.Duration, error) {
	if !l.cfg.Adaptive {
		return 0, nil
	}
	c := l.cfg
	res, err := throttleScript.Run(ctx, l.rdb, []string{stateKey(tenant), sourceKey},
		c.TenantRate, c.Initial, retryAfter.Microseconds(), r.Epoch, r.SourceEpoch, r.At, tenant, max(r.Rate, minRate),
		l.lastAnswered(tenant)).Int64Slice()
	if err != nil {
		return 0, fmt.Errorf("report throttle: %w", err)
	}
	d := time.Duration(res[0]) * time.Microsecond
	who := tenant
	if res[1] == 1 {
		who = sourcePause
	}
	l.mu.Lock()
	if until := l.now().Add(d); until.After(l.paused[who]) {
		l.paused[who] = until
	}
	l.mu.Unlock()
	return d, nil
}

// Rate is tenant's current rate in requests/s, as the next Reserve would
// pace it: the ceiling when the rate is not adaptive, the initial rate for a
// tenant not seen yet. Shared is the capacity the tenants were found to
// share (0: none learned). It takes no slot.
func (l *Limiter) Rate(ctx context.Context, tenant string) (rate, shared float64, err error) {
	c := l.cfg
	if !c.Adaptive {
		return c.TenantRate, 0, nil
	}
	r, err := rateScript.Run(ctx, l.rdb, []string{stateKey(tenant), sourceKey}, c.TenantRate, c.Initial).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("rate limit: %w", err)
	}
	return float64(r[0]) / 1000, float64(r[1]) / 1000, nil
}

// maxReserveN bounds how many slots ReserveN takes in one round trip.
const maxReserveN = 64

// ReserveN takes up to n slots for requests of tenant in one round trip:
// the slots n Reserve calls made one after another would give (the reserve
// script runs n times, pipelined), so they are paced like any others. It
// returns the slots taken, in time order, each with its own Wait; it stops
// at the first slot further than MaxWait, which it returns alone when it is
// the first (OK false, as Reserve). Every slot carries the epochs it was
// given in: a caller holding slots must check them like any other (Stale)
// before using one after a wait.
func (l *Limiter) ReserveN(ctx context.Context, tenant string, n int) ([]Reservation, error) {
	n = min(n, maxReserveN)
	if n <= 1 {
		r, err := l.Reserve(ctx, tenant)
		if err != nil {
			return nil, err
		}
		return []Reservation{r}, nil
	}
	if until := l.pausedUntil(tenant); !until.IsZero() {
		if w := until.Sub(l.now()); w > 0 {
			return []Reservation{{Wait: w}}, nil
		}
	}
	keys, args := []string{stateKey(tenant), sourceKey}, l.reserveArgs(tenant)
	cmds, err := l.reserveN(ctx, keys, args, n, false)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// None ran: the first sends the script itself this time.
		cmds, err = l.reserveN(ctx, keys, args, n, true)
	}
	var out []Reservation
	for _, cmd := range cmds {
		res, cerr := cmd.Int64Slice()
		if cerr != nil {
			break
		}
		r := reservation(res)
		if !r.OK {
			if len(out) == 0 {
				out = append(out, r)
			}
			break
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		if err == nil {
			err = fmt.Errorf("no answer")
		}
		return nil, fmt.Errorf("rate limit: %w", err)
	}
	// Slots taken before a failure are the caller's: they were given.
	return out, nil
}

// reserveN sends n reserve scripts in one pipeline; load sends the first
// with its source, for a server that does not have it cached.
func (l *Limiter) reserveN(ctx context.Context, keys []string, args []any, n int, load bool) ([]*redis.Cmd, error) {
	cmds := make([]*redis.Cmd, n)
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range cmds {
			if i == 0 && load {
				cmds[i] = reserveScript.Eval(ctx, p, keys, args...)
			} else {
				cmds[i] = reserveScript.EvalSha(ctx, p, keys, args...)
			}
		}
		return nil
	})
	return cmds, err
}
