// Package runstore keeps the durable record of audit runs in Redis: the run
// itself (tenant, options, counters, phase timestamps), every address's state
// (pending, present, absent or dead, with attempts and the last error or the
// realm request ID), the user-address pairs the report lists, the dead-letter
// set, and the batches written but not yet handed to the queue.
//
// It is the system of record: asynq's archive is capped and trimmed, so
// nothing here depends on it. Every state change of an address is one Lua
// script that moves it only out of "pending", which is what makes re-delivered
// tasks harmless and every counter exact. This package does not talk to the
// realm service or to asynq.
package runstore
