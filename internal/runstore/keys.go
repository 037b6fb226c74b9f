package runstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/redis/go-redis/v9"
)

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

// The address states as the state buckets spell them: one byte, the first
// of an address's value (see encodeState).
const (
	storedPending = "p"
	storedPresent = "y"
	storedAbsent  = "n"
	storedDead    = "d"
)

// statusOf reads a state as the state buckets store it. It returns the
// constants themselves, so that results of a large run hold no copy of the
// state per address.
func statusOf(stored string) AddressStatus {
	switch stored {
	case storedPending:
		return StatePending
	case storedPresent:
		return StatePresent
	case storedAbsent:
		return StateAbsent
	case storedDead:
		return StateDead
	}
	return StateUnknown
}

// keys are the Redis keys of one run.
//
// What is kept per address and per user is spread over buckets: n keys per
// family, an address in bucket fnv(address) mod n of the state and owners
// families, a user in bucket fnv(user) mod n of the users family. Redis
// stores a hash of at most hash-max-listpack-entries fields (512 by
// default, lower if an operator set it so) whose fields and values are at most
// hash-max-listpack-value bytes (64) as one flat listpack, a few bytes per
// field, where one large hash costs some 60 bytes of pointers per field on
// top of the strings. A user's UPN, display name and mail are longer than
// 64 bytes more often than not, so the users buckets are lists, which
// have listpacks of 8 KB whatever the length of an element. n is chosen
// when the run is created and stored in the run hash (fieldBuckets), so that
// a run's layout never changes under it.
type keys struct {
	run     string // hash: the run record and its counters
	errors  string // hash: address -> last error, while its last attempt failed
	dead    string // set: dead-lettered addresses
	unsent  string // hash: batch number -> payload not yet enqueued
	lock    string // string: holder of the submit lock
	buckets int    // n; 0 when the run does not exist
}

// runKeyPrefix starts the key of every run hash; the rest is the run ID.
const runKeyPrefix = prefix + "run:"

// The bucket families, as the suffix of their keys: <run hash>:<family>:<i>.
// Scripts spell them {famState}, {famOwners} and {famUsers} (luaConsts).
const (
	famState  = "s" // address -> state value (encodeState)
	famOwners = "o" // address -> the users it was found on (encodeRef, concatenated)
	famUsers  = "u" // list of users: reference (encodeRef) then userValue
)

var families = []string{famState, famOwners, famUsers}

func runKeys(id string) keys {
	b := runKeyPrefix + id
	return keys{run: b, errors: b + ":errors", dead: b + ":dead", unsent: b + ":unsent", lock: b + ":lock"}
}

// bucket is the key of bucket i of family fam.
func (k keys) bucket(fam string, i int) string { return k.run + ":" + fam + ":" + strconv.Itoa(i) }

// bucketOf is the bucket of s (an address or an encoded user ID): FNV-1a.
func (k keys) bucketOf(s string) int {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return int(h % uint32(k.buckets))
}

// data lists the keys that hold run data other than the buckets, in the
// order scripts expect them.
func (k keys) data() []string { return []string{k.run, k.errors, k.dead, k.unsent} }

// scripted is data() and then the open-runs index: the first KEYS of the
// scripts that can complete a run or reopen it. The keys of the buckets a
// script touches follow.
func (k keys) scripted() []string { return append(k.data(), OpenRunsKey) }

// all lists every key of the run's data: data() and every bucket.
func (k keys) all() []string {
	out := k.data()
	for _, f := range families {
		for i := 0; i < k.buckets; i++ {
			out = append(out, k.bucket(f, i))
		}
	}
	return out
}

// keyList builds the KEYS of a script: fixed ones first, then each bucket
// key once, numbered as Lua sees them (from 1).
type keyList struct {
	keys []string
	idx  map[string]int
}

func newKeyList(fixed []string) *keyList {
	return &keyList{keys: fixed, idx: make(map[string]int)}
}

// add returns the Lua index of key, adding it if new.
func (l *keyList) add(key string) int {
	if i, ok := l.idx[key]; ok {
		return i
	}
	l.keys = append(l.keys, key)
	l.idx[key] = len(l.keys)
	return len(l.keys)
}

// Store is the run store over one Redis connection.
type Store struct {
	rdb redis.UniversalClient
	// buckets caches each run's bucket count (run ID -> int), which never
	// changes, so that recording an answer costs no extra round trip.
	buckets sync.Map
	// page is what the streaming readers take for PageAddresses (0: that).
	page int
}

// New returns a Store using rdb.
func New(rdb redis.UniversalClient) *Store { return &Store{rdb: rdb} }

// defaultBuckets is the bucket count of a new run: a 430,000-address run
// (a 200,000-user tenant) puts some 53 addresses in a bucket, well under
// 128 fields, and a run up to about 2 million addresses stays within the
// default listpack limit of 512. The keys cost some 200 bytes
// each, which only small runs notice.
const defaultBuckets = 8192

// ErrOldLayout is returned for the addresses of a run that an earlier
// version made, which kept them in a few large hashes rather than in
// buckets: finish it with that version, or purge it. Failing loudly keeps
// a worker from taking the run's addresses for unknown and dropping its
// batches.
var ErrOldLayout = errors.New("run made by an earlier version of msaudit (no address buckets): complete it with that version, or purge it")

// legacy lists the keys where a run of ErrOldLayout kept its addresses, so
// that cancel and purge still reach them.
func (k keys) legacy() []string {
	return []string{k.run + ":status", k.run + ":attempts", k.run + ":detail", k.run + ":owners"}
}

// keysOf returns the run's keys with its bucket count, reading it once per
// run. A run that does not exist has buckets 0.
func (s *Store) keysOf(ctx context.Context, id string) (keys, error) {
	k := runKeys(id)
	if n, ok := s.buckets.Load(id); ok {
		k.buckets = n.(int)
		return k, nil
	}
	h, err := s.rdb.HMGet(ctx, k.run, fieldBuckets, fieldTenantID).Result()
	if err != nil {
		return k, fmt.Errorf("load run %s: %w", id, err)
	}
	v, _ := h[0].(string)
	if v == "" {
		if h[1] != nil {
			return k, fmt.Errorf("run %s: %w", id, ErrOldLayout)
		}
		return k, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return k, fmt.Errorf("run %s: bucket count %q", id, v)
	}
	k.buckets = n
	s.buckets.Store(id, n)
	return k, nil
}
