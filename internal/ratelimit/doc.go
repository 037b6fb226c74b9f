// Package ratelimit paces realm requests across every worker process, with
// state held in Redis and time read from the Redis server's clock (so worker
// clocks do not matter). Each operation is one Lua script (scripts.go).
//
// # Pacing
//
// Each request reserves a slot on a GCRA ("generic cell rate") schedule:
// the tenant's theoretical arrival time (tat) advances by 1/rate per slot,
// and a caller whose slot is at most MaxWait ahead takes it and sleeps until
// then. A caller whose slot is further ahead takes nothing and is told how
// long to wait, so a task can give its worker slot to another tenant instead
// of sleeping. Requests are thus spaced evenly, never bursty, and the
// aggregate rate of any number of processes stays at or below the rate.
//
// A second schedule, the source's, spans all tenants when the operator
// sets a global rate (one egress address). Each schedule advances from its
// own last slot, so a tenant held back by the global schedule keeps its
// place in its own.
//
// # Two scopes
//
// Whether the realm service limits each audited tenant or the source
// address is not documented, and it may be either. The limiter keeps an
// adaptive state per tenant and one for the source, and decides per
// throttle which one the service meant:
//
//   - A throttle that follows another tenant's within coincidence means the
//     tenants share one capacity: the source reacts. Every tenant pauses
//     together (a tenant resuming while another still sends would only
//     prolong the service's penalty for both), the shared estimate is cut
//     from what all tenants sent, and each tenant cuts its own estimate by
//     the same factor, so that together they keep to the shared one. What a
//     tenant sent is first taken halfway to the mean of the tenants
//     throttled together, so that shares converge to fair ones.
//   - Unless one of the two was answered for a request sent at least
//     independent after the other's throttled one: a shared capacity, once
//     exceeded, throttles every tenant's requests, so that tenant has its
//     own. Workers note answers locally (Answered) and pass the latest with
//     their next call, so this costs no round trip.
//   - Otherwise the tenant reacts alone: it pauses at once, and its cut
//     waits coincidence for the decision (a pause is needed in either case;
//     which cut applies depends on whether another tenant was throttled
//     with it).
//
// Tenants are paced by their own estimates only, whatever the scope: with
// one tenant, or tenants throttled each on their own capacity, each finds
// its own; with one shared capacity, every overshoot throttles all tenants
// at once and their estimates are cut together. After a shared cut a
// tenant waits a random part longer or shorter before it probes
// (sharedQuiet, quietSpread), so that tenants paused together do not probe
// together, which would look like one capacity again. When the tenants together take less than freed of the
// shared estimate (a run sharing the capacity ended), a tenant cut by a
// shared event takes up the unused part at once, up to the shared
// estimate, instead of waiting out that quiet time.
//
// # Adapting a rate
//
// The same rules drive a tenant's rate and the shared estimate:
//
//   - Slow start: from Initial, the rate doubles for every doublingTime of
//     slots taken at it. It grows with use, not time, so a rate the workers
//     cannot fill does not run away from what they send.
//   - A throttle (MicrosoftAccount 2, HTTP 429) pauses the scope for the
//     learned pause (or the service's Retry-After, if longer): no slot is
//     handed out during it, since requests sent into a penalty window only
//     lengthen it. The pause counts from pauseGuard after the reaction:
//     callers may still send a slot for Unchecked without asking, and
//     requests overtake each other on the way. Each reaction starts a new
//     epoch, and every slot carries the epochs it was given in: a report
//     from a slot of an older epoch came from a request sent before the
//     reaction and is ignored, and a sleeping slot of an older epoch is not
//     used (Stale).
//   - Which throttle it is decides the new estimate, from the rate r the
//     throttled request was paced at and how long the rate held since the
//     last pause ended:
//     the first (leaving slow start): slowStartMargin·r, the capacity at
//     which a rate doubling every doublingTime empties a burst allowance of
//     burstGuess when it has reached r;
//     a request sent within pauseTooShort of the pause's end, when no
//     request sent after the pause was answered: the pause was shorter than
//     the service's penalty, not the rate too high — the pause grows by
//     pauseGrowth and the estimate stays (an answered one means the penalty
//     was over and the rate emptied a small burst allowance at once);
//     within the quiet time (probeQuiet, or a shared cut's): the plateau was over the capacity, and a rate x
//     times the capacity empties a burst allowance of b seconds in b/(x-1)
//     seconds, so r·held/(held+burstGuess), between deepestCut·r (a capacity
//     that dropped: a few events settle on it) and plateauCut·r;
//     later: the accelerating probe found it, margin·r but never below the
//     plateau that held.
//   - After the pause the rate restarts at the estimate (a rate away from
//     it returns to it with time constant recovery), creeps above it by
//     probe per second, and after probeQuiet without a throttle
//     accelerates (see the probe invariant below). Like
//     slow start, the probe grows with use: a tenant's rate runs at most
//     useHeadroom above the slots it took over the last few seconds (never
//     below its estimate), so a tenant short of workers does not probe a
//     rate it never sends and then burst into it when workers free up.
//   - Otherwise the pause decays by pauseDecay per throttle, never below
//     shortPauseMargin times the longest pause that proved too short.
//
// # The probe invariant
//
// Nobody outside the service knows its throttle's shape, and a limiter
// tuned on one shape may settle below the capacity of another without ever
// being throttled there. So, whatever the shape: a scope that has seen no
// throttle signal since its last pause ended keeps raising its rate. t
// seconds after that pause, with the workers taking its slots, it is paced
// at no less than
//
//	est · (1 + probe·t) · e^(probeAcceleration·u²/2 + lateAcceleration·max(0, u−probeLate)²/2)
//
// where est is its estimate and u = max(0, t−q), q being its quiet time
// (probeQuiet; at most sharedQuiet·probeQuiet after a shared cut). That
// grows without bound: the limiter only stays below a capacity that
// throttles it. The first acceleration is gentle, so that a steady capacity
// is met with a small overshoot; the late one follows from the promise that
// probeWithin (60 s) after the pause the rate is at least probeReach (2.5)
// times the estimate even after the longest quiet time, so a capacity back
// from a drop to 40 % is found within 60 s of the last throttle. Only the
// operator's ceiling and the workers hold the rate lower (it runs at most
// useHeadroom above the slots taken); neither leaves capacity unused by the
// limiter's choice. TestProbeInvariant checks the promise on a controlled
// clock after each kind of reaction.
//
// # What is kept
//
// A scope's state is kept for learnedTTL (90 days) after its last use. A
// scope idle for idleRestart starts again from a safe fraction of what it
// learned (resumeRate·resumeEstimate of the estimate, resumeStale less once
// it is older than fresh), so a monthly re-audit does not begin blind.
// The rate never exceeds the operator's ceiling and never drops below
// minRate.
//
// BenchmarkLimiterModel runs these scripts against a simulated service in
// virtual time (minutes in seconds), and BenchmarkLimiterRobust against
// every throttle shape of internal/throttlemodel's family: the constants
// were chosen on its tuning half and are judged on its held-out half. make
// bench-throttle measures the whole system against the tenant simulator.
//
// This package does not make requests and does not know about batches.
package ratelimit
