// Package throttlemodel is a family of models of how a throttling service
// might limit its callers, for the simulator and the limiter's benchmarks:
// nobody outside the service knows its window, its burst allowance, whether
// overshoot opens a penalty box or whether that box grows with every request
// sent into it, so a limiter is measured against many plausible shapes rather
// than one.
//
// Each member of the family is a Spec: a Kind (token bucket with a small or a
// large burst, fixed one-second windows, a sliding window, a penalty box of
// fixed length or extended by every request sent into it, a soft limit above
// which a rising share of answers is throttled, a concurrency limit, a queue
// whose latency grows as the rate nears capacity), whether a throttled answer
// carries Retry-After, and parameters drawn from a seed within plausible
// ranges. Family splits the members into a tuning half, on which a limiter's
// constants may be chosen, and a held-out half, on which it is judged.
//
// A Model is deterministic and clock-injected: every call carries the time,
// which never goes backwards for a model, and the only randomness (the soft
// limit's dice) comes from the seed. It keeps one state per key; the caller
// chooses the key, which is the scope of the throttle: one key for every
// request (the service counts per source address) or one per tenant. Every
// key gets the whole capacity. A model does no I/O and is not safe for
// concurrent use.
//
// Capacity is what a model is built for (requests/s), and Spec.Available
// says which rate it sustains indefinitely without throttling a single
// request sent evenly spaced: goodput ratios divide by it.
package throttlemodel
