package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Constants of the adaptive algorithm (see the package comment).
const (
	DoublingTime = 2 * time.Second
	Backoff      = 0.9
	Margin       = 0.85
	// SlowStartMargin and SlowStartBackoff replace Margin and Backoff at the
	// first throttle, which ends the doubling: the rate that throttled is up
	// to twice the capacity.
	SlowStartMargin  = 0.7
	SlowStartBackoff = 0.6
	// ShortPauseMargin: a pause never decays below this much more than the
	// longest pause that proved shorter than the service's penalty.
	ShortPauseMargin = 1.25
	Recovery         = 3 * time.Second
	Probe            = 0.005
	Pause            = time.Second
	MaxPause         = time.Minute
	MinRate          = 0.05
	// stateTTL forgets a tenant's learned rate after an idle hour.
	stateTTL = time.Hour
)

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

	// paused is this process's copy of each tenant's pause, so that a
	// request that took its slot before a throttle and is sleeping until it
	// does not fire into the pause. Other processes learn of the pause at
	// their next Reserve.
	mu     sync.Mutex
	paused map[string]time.Time
}

// New returns a limiter over rdb.
func New(rdb redis.UniversalClient, cfg Config) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Limiter{rdb: rdb, cfg: cfg, paused: make(map[string]time.Time)}, nil
}

// Reservation is the answer to Reserve.
type Reservation struct {
	// OK means a slot was taken: the caller sends after Wait.
	OK bool
	// Wait is how long until the slot (OK) or until one could be had (!OK).
	Wait time.Duration
	// Rate is the tenant's current rate, requests/s.
	Rate float64
	// Epoch identifies the limiter's state the slot was given under; pass
	// it to Throttled.
	Epoch int64
}

const stateKeyPrefix = "msaudit:rl:"

func stateKey(tenant string) string { return stateKeyPrefix + "tenant:" + tenant }

const globalKey = stateKeyPrefix + "global"

// Reserve takes a slot for one request of tenant, if one is within MaxWait.
func (l *Limiter) Reserve(ctx context.Context, tenant string) (Reservation, error) {
	if until := l.pausedUntil(tenant); !until.IsZero() {
		if w := time.Until(until); w > 0 {
			return Reservation{Wait: w}, nil
		}
	}
	c := l.cfg
	adaptive := 0
	if c.Adaptive {
		adaptive = 1
	}
	res, err := reserveScript.Run(ctx, l.rdb, []string{stateKey(tenant), globalKey},
		c.TenantRate, c.GlobalRate, c.MaxWait.Microseconds(), c.Initial, adaptive,
		DoublingTime.Seconds(), Recovery.Seconds(), Probe, MinRate, stateTTL.Milliseconds()).Int64Slice()
	if err != nil {
		return Reservation{}, fmt.Errorf("rate limit: %w", err)
	}
	return Reservation{
		OK:    res[0] == 1,
		Wait:  time.Duration(res[1]) * time.Microsecond,
		Rate:  float64(res[2]) / 1000,
		Epoch: res[3],
	}, nil
}

// Paused reports whether a throttle seen by this process pauses tenant now;
// call it after sleeping for a slot, before sending.
func (l *Limiter) Paused(tenant string) bool {
	return time.Now().Before(l.pausedUntil(tenant))
}

// Stale reports whether any worker reacted to a throttle of tenant since the
// slot r was given, and for how much longer the tenant is paused. A slot
// taken before a reaction must not be used: a request sent into the
// service's penalty window lengthens it. One round trip; callers skip it for
// slots so near that no reaction can have happened in between.
func (l *Limiter) Stale(ctx context.Context, tenant string, r Reservation) (bool, time.Duration, error) {
	if !l.cfg.Adaptive {
		return false, 0, nil
	}
	us, err := staleScript.Run(ctx, l.rdb, []string{stateKey(tenant)}, r.Epoch).Int64()
	if err != nil {
		return false, 0, fmt.Errorf("rate limit: %w", err)
	}
	if us < 0 {
		return false, 0, nil
	}
	return true, time.Duration(us) * time.Microsecond, nil
}

func (l *Limiter) pausedUntil(tenant string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.paused[tenant]
}

// Throttled reports a throttle signal for tenant on a request sent in the
// slot of epoch; retryAfter is the service's Retry-After (0 if none). It
// returns the pause now in force.
func (l *Limiter) Throttled(ctx context.Context, tenant string, retryAfter time.Duration, epoch int64) (time.Duration, error) {
	if !l.cfg.Adaptive {
		return 0, nil
	}
	c := l.cfg
	pause, err := throttleScript.Run(ctx, l.rdb, []string{stateKey(tenant)},
		c.TenantRate, c.Initial, retryAfter.Microseconds(), Backoff, Pause.Microseconds(), MaxPause.Microseconds(),
		DoublingTime.Seconds(), Recovery.Seconds(), Probe, MinRate, stateTTL.Milliseconds(), epoch, Margin, SlowStartMargin, SlowStartBackoff,
		ShortPauseMargin).Int64()
	if err != nil {
		return 0, fmt.Errorf("report throttle: %w", err)
	}
	d := time.Duration(pause) * time.Microsecond
	l.mu.Lock()
	if until := time.Now().Add(d); until.After(l.paused[tenant]) {
		l.paused[tenant] = until
	}
	l.mu.Unlock()
	return d, nil
}

// Rate is tenant's current rate in requests/s, as the next Reserve would
// pace it: the ceiling when the rate is not adaptive, the initial rate for a
// tenant not seen yet. It takes no slot.
func (l *Limiter) Rate(ctx context.Context, tenant string) (float64, error) {
	c := l.cfg
	if !c.Adaptive {
		return c.TenantRate, nil
	}
	r, err := rateScript.Run(ctx, l.rdb, []string{stateKey(tenant)},
		c.TenantRate, c.Initial, DoublingTime.Seconds(), Recovery.Seconds(), Probe, MinRate).Int64()
	if err != nil {
		return 0, fmt.Errorf("rate limit: %w", err)
	}
	return float64(r) / 1000, nil
}

// Reset forgets what was learned about tenant (tests and operators).
func (l *Limiter) Reset(ctx context.Context, tenant string) error {
	return l.rdb.Del(ctx, stateKey(tenant)).Err()
}
