// Package ratelimit paces realm requests per tenant across every worker
// process, with state held in Redis and time read from the Redis server's
// clock (so worker clocks do not matter).
//
// # Pacing
//
// Each request reserves a slot with a GCRA ("generic cell rate") schedule:
// the tenant's theoretical arrival time (tat) advances by 1/rate per request,
// and a caller whose slot is at most MaxWait ahead takes it and sleeps until
// then. A caller whose slot is further ahead takes nothing and is told how
// long to wait, so a task can give its worker slot to another tenant instead
// of sleeping. Requests are thus spaced evenly, never bursty, and the
// aggregate rate of any number of processes stays at or below the rate. An
// optional global schedule applies the same way across all tenants (a shared
// egress IP).
//
// # Adapting the rate
//
// The rate of a tenant is not fixed: the service's sustainable rate is
// unknown and changes. It is a function of time since the last change:
//
//   - Before any throttle is seen, it doubles every DoublingTime from
//     Initial (slow start).
//   - A throttle signal (MicrosoftAccount 2, HTTP 429) from any worker
//     records Margin (0.85) times the current rate as the estimated
//     capacity (the service let the rate get there only by spending its
//     burst allowance), restarts the rate from Backoff (0.9) times its
//     value, and pauses the tenant for the learned pause (or the service's
//     Retry-After, if longer): no slot is handed out during the pause, since
//     requests sent into a penalty window only lengthen it. The first signal
//     ends slow start: the rate has just doubled, so the estimate is
//     SlowStartMargin (0.7) and the restart SlowStartBackoff (0.6) of the
//     rate that throttled.
//   - Each reaction starts a new epoch, and every slot carries the epoch it
//     was given in: a signal from a slot of an older epoch comes from a
//     request sent before the reaction and is ignored. A slot given before a
//     reaction is not used either: after waiting for its slot, a request
//     checks the epoch (Stale) unless the wait was too short for a reaction
//     to have happened, and a worker process also keeps the pause locally.
//   - The pause starts at Pause (1 s). A signal within Pause of the end of a
//     pause means the pause was shorter than the service's penalty, not that
//     the rate was too high: the pause doubles (up to MaxPause) and the
//     estimate stays. Otherwise the pause decays by 10 % per event, but never
//     below ShortPauseMargin (1.25) times the longest pause that proved too
//     short.
//   - When the pause ends, the rate moves towards the estimate exponentially
//     (time constant Recovery, 3 s), plus a linear probe of Probe (0.5 %) of
//     the estimate per second, so a capacity that grew is found again and one
//     that shrank is re-measured by the next throttle. Against a steady
//     capacity C with a burst allowance this settles into one throttle event
//     every 30 to 40 s, the rate rising from just under C to a little above
//     it between events.
//
// The rate never exceeds the operator's ceiling and never drops below MinRate.
// What was learned of a tenant (estimate, pause) is forgotten after it has
// been idle for an hour.
// make bench-throttle measures it against a simulated service of hidden
// capacity; the bar is goodput >= 0.9·C with <= 2 % throttled.
//
// This package does not make requests and does not know about batches.
package ratelimit
