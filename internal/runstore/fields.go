package runstore

// The fields of a run's hash (keys.run), spelled here once: Go uses the
// constants, and a script names fieldX as {fieldX} (luaConsts), so that
// no script writes a field under another name than Go reads it by.

// What the run is, written when it is created and never changed.
// fieldTenantID is written first (HSETNX), so a run hash holds it whenever
// it exists: it is what tells an existing run from a purged one.
const (
	fieldTenantID  = "tenant_id"
	fieldBuckets   = "buckets"     // the bucket count n (see keys)
	fieldSource    = "source"      // "graph", "file" or "recheck"
	fieldOptions   = "options"     // JSON of the first submit's options
	fieldLane      = "lane"        // the queue lane of the run's batches
	fieldRetention = "retention_s" // seconds the data is kept once the run ends
	fieldRecheckOf = "recheck_of"  // the run this one checks again, if any
	fieldSince     = "since"       // the run whose absent answers this one reuses, if any
)

// The counters. Scripts keep the address counters exact (see recordScript);
// users_seen is the progress of the submit under way.
const (
	fieldAddressesTotal = "addresses_total"
	fieldChecked        = "checked" // present + absent
	fieldPresent        = "present"
	fieldAbsent         = "absent"
	fieldDead           = "dead"
	fieldFailedPending  = "failed_pending" // pending addresses whose last attempt failed
	fieldBatches        = "batches"        // batch numbers reserved
	fieldRequests       = "requests"       // realm requests recorded
	fieldThrottles      = "throttles"      // of which the service throttled
	fieldUsersTotal     = "users_total"
	fieldUsersSeen      = "users_seen"
	fieldReused         = "reused" // answers taken from the baseline (since), counted in checked and absent
)

// The flags: "1" when set. A completed run that a submit extends gets
// enumerated "0" back; a resumed run loses paused.
const (
	fieldEnumerated = "enumerated"
	fieldCancelled  = "cancelled"
	fieldPaused     = "paused"
)

// The times, unix ms.
const (
	fieldCreatedAt             = "created_at"
	fieldUpdatedAt             = "updated_at"
	fieldEnumerationStartedAt  = "enumeration_started_at"
	fieldEnumerationFinishedAt = "enumeration_finished_at"
	fieldFirstCheckAt          = "first_check_at"
	fieldCompletedAt           = "completed_at"
	fieldPausedAt              = "paused_at"
	fieldTenantRateAt          = "tenant_rate_at"
)

// What status shows of the last answers and the last submit.
const (
	fieldTenantRate = "tenant_rate" // requests/s when an outcome was last recorded
	fieldLastError  = "last_error"  // why the last submit stopped
)

// The chart and the recent minutes (see timelineLua): tl_base and tl_width,
// and fields named by a prefix and a number, tl:<i> and rm:<slot>.
const (
	fieldChartBase    = "tl_base"
	fieldChartWidth   = "tl_width"
	fieldChartPrefix  = "tl:"
	fieldRecentPrefix = "rm:"
)

// The run's outbox (events.go) is part of its hash, so that it expires and
// is purged with the run and leaves nothing behind:
const (
	fieldEvents          = "events"           // how many events were recorded
	fieldEventPrefix     = "event:"           // event:<n> -> "<type> <unix ms>", n from 1
	fieldDelivered       = "events_delivered" // how many were delivered, in order
	fieldDeliveredPrefix = "delivered:"       // delivered:<n> -> unix ms of its delivery
	fieldEventAttempts   = "event_attempts"   // failed deliveries of the next event
	fieldEventNextAt     = "event_next_at"    // unix ms before which it is not tried again
	fieldEventError      = "event_error"      // why its last delivery failed
)

// What stall detection (MarkStalled) reads, besides created_at and paused:
const (
	fieldAnsweredAt = "answered_at" // unix ms of the last final answer
	fieldResumedAt  = "resumed_at"  // unix ms of the last resume
	fieldStalledAt  = "stalled_at"  // set while the run is stalled
)
