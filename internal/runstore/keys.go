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

// AddressStatus is where an address stands in a run.
type AddressStatus string

// The address states. Only StatePending moves: to present or absent with an
// answer, to dead after the attempts run out (and back to pending on a
// requeue).
const (
	StatePending AddressStatus = "pending"
	StatePresent AddressStatus = "present"
	StateAbsent  AddressStatus = "absent"
	StateDead    AddressStatus = "dead"
	// StateUnknown is the state of an address the run does not hold (or of
	// a run that was purged).
	StateUnknown AddressStatus = "unknown"
)

// storedPending is how the status hash spells StatePending: one byte for
// every address still to check of a run of hundreds of thousands.
const storedPending = "p"

// statusOf reads a state as the status hash stores it. It returns the
// constants themselves, so that results of a large run hold no copy of the
// state per address.
func statusOf(stored string) AddressStatus {
	switch AddressStatus(stored) {
	case storedPending:
		return StatePending
	case StatePresent:
		return StatePresent
	case StateAbsent:
		return StateAbsent
	case StateDead:
		return StateDead
	}
	return StateUnknown
}

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
