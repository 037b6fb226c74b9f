package runqueue

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// This file is the only place that reads asynq's Redis keys, which are
// internal to asynq (v0.26) rather than an API. It does so where asynq's
// Inspector cannot help: to see every state of a queue in one atomic step,
// and to give a leaseless active task the expired lease that lets asynq's
// recoverer find it.

// The asynq task states, as they name their keys.
const (
	statePending   = "pending"   // list of task IDs
	stateActive    = "active"    // list of task IDs
	stateScheduled = "scheduled" // zset: task ID by time to run
	stateRetry     = "retry"     // zset: task ID by time to run
	stateArchived  = "archived"  // zset: task ID by archive time
	stateCompleted = "completed" // zset: task ID by expiry
	leases         = "lease"     // zset: active task ID by lease expiry (unix s)
)

// asynqKey is the key of one of a queue's state lists or sets.
func asynqKey(queue, name string) string { return "asynq:{" + queue + "}:" + name }

// stateKeys are the keys of the states listed, in listScript's order:
// the two lists, then the sorted sets.
func stateKeys(queue string, lists, zsets []string) []string {
	keys := make([]string, 0, len(lists)+len(zsets))
	for _, s := range append(append([]string{}, lists...), zsets...) {
		keys = append(keys, asynqKey(queue, s))
	}
	return keys
}

// listScript lists, in one atomic step, the IDs of a queue's tasks whose
// ID starts with a prefix, in the states named by KEYS. Listing the states
// one after the other would miss a task that moves between them meanwhile:
// a rate-limited batch cycles from pending to active to retry and back
// every second or so, and a finishing one leaves active for a resting
// state.
//
// Input:
//
//	KEYS[1..ARGV[2]]   -> list keys of states (pending, active)
//	KEYS[ARGV[2]+1..]  -> sorted-set keys of states (scheduled, retry, ...)
//	ARGV[1]            -> the task ID prefix ("RUN:")
//	ARGV[2]            -> how many of KEYS are lists
//
// Output: a flat array of task ID, index in KEYS of its state.
var listScript = redis.NewScript(`
local prefix, lists = ARGV[1], tonumber(ARGV[2])
local out = {}
for i, key in ipairs(KEYS) do
  local ids
  if i <= lists then ids = redis.call('LRANGE', key, 0, -1) else ids = redis.call('ZRANGE', key, 0, -1) end
  for _, id in ipairs(ids) do
    if string.sub(id, 1, #prefix) == prefix then
      out[#out+1] = id
      out[#out+1] = i
    end
  end
end
return out
`)

// taskState is one task found by list.
type taskState struct {
	id    string
	state string
}

// list returns the tasks of queue whose ID starts with prefix, in the
// given states (lists first: pending and active are lists, the other
// states sorted sets), as one atomic snapshot.
func list(ctx context.Context, rdb redis.UniversalClient, queue, prefix string, lists, zsets []string) ([]taskState, error) {
	names := append(append([]string{}, lists...), zsets...)
	v, err := listScript.Run(ctx, rdb, stateKeys(queue, lists, zsets), prefix, len(lists)).Slice()
	if err != nil {
		return nil, fmt.Errorf("list tasks of %s: %w", queue, err)
	}
	out := make([]taskState, 0, len(v)/2)
	for i := 0; i+1 < len(v); i += 2 {
		id, _ := v[i].(string)
		n, _ := v[i+1].(int64)
		if id == "" || n < 1 || int(n) > len(names) {
			return nil, fmt.Errorf("list tasks of %s: unexpected answer %v", queue, v[i:i+2])
		}
		out = append(out, taskState{id: id, state: names[n-1]})
	}
	return out, nil
}

// expireLeaselessScript gives every active task whose ID starts with a
// prefix and that has no lease an expired one, in one step, so that a task
// finishing meanwhile is left alone.
//
// Input:
//
//	KEYS[1] -> asynq:{q}:active (list of task IDs)
//	KEYS[2] -> asynq:{q}:lease (zset: task ID by lease expiry, unix s)
//	ARGV[1] -> the task ID prefix ("RUN:")
//	ARGV[2] -> an expired lease time (unix s)
//
// Output: how many tasks it gave a lease.
var expireLeaselessScript = redis.NewScript(`
local n = 0
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if string.sub(id, 1, #ARGV[1]) == ARGV[1] and not redis.call('ZSCORE', KEYS[2], id) then
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    n = n + 1
  end
end
return n
`)

// releaseLeaseless finds the run's active tasks in queue that have no
// lease — left so by a Redis failover or restore, they would never run
// again — and gives each an expired one: asynq's recoverer then moves it
// back to the retry set, as it does for the task of a worker that died. An
// active task with a lease belongs to a live worker (or one whose lease
// will expire by itself) and is left alone. It returns how many it
// released.
func releaseLeaseless(ctx context.Context, rdb redis.UniversalClient, queue, runID string) (int, error) {
	keys := []string{asynqKey(queue, stateActive), asynqKey(queue, leases)}
	n, err := expireLeaselessScript.Run(ctx, rdb, keys, runID+":", time.Now().Add(-time.Hour).Unix()).Int()
	if err != nil {
		return 0, fmt.Errorf("release leaseless tasks of %s: %w", queue, err)
	}
	return n, nil
}
