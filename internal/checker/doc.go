// Package checker is the worker's task handler: it takes a batch of a run,
// checks the addresses still pending with the realm service under the
// tenant's rate limit, and records each outcome in the run store.
//
// Attempts are counted per address in the run store, not per task: a batch
// is retried (after a randomized exponential backoff) only for its addresses
// that got no answer, and an address that reaches its attempt limit is
// dead-lettered there. Waiting for the rate limiter is never an attempt: a
// task whose next slot is far off (more than Config.WaitInPlace) is handed
// back to the queue as "not a failure", and on asynq's last retry the
// handler waits in place instead, so a rate-limited task is never archived.
//
// A batch keeps up to InFlightPerBatch requests in flight, each sent at its
// own rate-limit slot (flight.go), so a few batches carry a tenant's rate
// whatever the service's latency. A batch with dead-lettered addresses
// ends archived (SkipRetry) so the standard asynq tooling shows it.
//
// Fairness between tenants has two parts: runs sit in different queue lanes
// (package tasks), and one tenant may hold only the worker slots its rate can
// use (share.go), so a tenant's batches sleeping on its rate limit do not
// keep another tenant's batches from starting. A batch over the share waits
// briefly in its slot to take over when one of the tenant's batches
// finishes, so the tenant's rate does not dip at every batch change, and
// then goes back to the queue.
//
// Answers are written to the run store as they arrive, grouped over at most
// recordEvery (recorder.go): a worker killed mid-batch costs the requests in
// flight and the last group, and status moves while batches run. On a
// drain (Handler.Drain, at SIGTERM) a batch sends no further request, lets
// those in flight finish, writes what it has and goes back to the queue.
//
// It holds no tenant credentials and does not import Graph code.
package checker
