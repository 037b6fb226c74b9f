// Package runevents tells people what their runs are doing. The run store
// records each transition that matters (submitted, completed, cancelled,
// paused, resumed, stalled, recovered) as an event in a per-run outbox, in
// the same atomic step as the transition; this package finds stalled runs and
// delivers the outbox to a webhook, one worker at a time under a lease, in
// order per run, at least once, retrying with backoff until the run expires.
//
// No event carries an address, a name or any directory value: a body holds
// the event's type and time, the run's counters and a one-line summary.
package runevents
