package runstore

import "github.com/redis/go-redis/v9"

const prefix = "msaudit:"

// runsKey is a sorted set of run IDs scored by creation time (unix ms).
const runsKey = prefix + "runs"

// OpenRunsKey is a sorted set of the runs not yet completed or cancelled,
// scored by creation time (unix ms). Its cardinality is what an autoscaler
// reads to keep one worker up while any run is open: asynq moves retrying
// batches back to pending only inside a running worker.
const OpenRunsKey = prefix + "runs:open"

// Address states as stored in the status hash.
const (
	statePending = "p"
	StatePresent = "present"
	StateAbsent  = "absent"
	StateDead    = "dead"
)

// keys are the Redis keys of one run.
type keys struct {
	run      string // hash: the run record and its counters
	status   string // hash: address -> state
	attempts string // hash: address -> requests made
	detail   string // hash: address -> JSON Detail of the last attempt
	owners   string // hash: address US user_id -> upn (the report's pairs)
	dead     string // set: dead-lettered addresses
	unsent   string // hash: batch number -> payload not yet enqueued
	lock     string // string: holder of the submit lock
}

// runKeyPrefix starts the key of every run hash; the rest is the run ID.
const runKeyPrefix = prefix + "run:"

func runKeys(id string) keys {
	b := runKeyPrefix + id
	return keys{
		run: b, status: b + ":status", attempts: b + ":attempts", detail: b + ":detail",
		owners: b + ":owners", dead: b + ":dead", unsent: b + ":unsent", lock: b + ":lock",
	}
}

// data lists the keys that hold run data, in the order scripts expect them.
func (k keys) data() []string {
	return []string{k.run, k.status, k.attempts, k.detail, k.owners, k.dead, k.unsent}
}

// scripted is data() and then the open-runs index: the KEYS of the scripts
// that can complete a run or reopen it.
func (k keys) scripted() []string { return append(k.data(), OpenRunsKey) }

// Store is the run store over one Redis connection.
type Store struct {
	rdb redis.UniversalClient
}

// New returns a Store using rdb.
func New(rdb redis.UniversalClient) *Store { return &Store{rdb: rdb} }
