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
// and to put back in the queue an active task no worker runs any more.

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

// orphanAfter is how long after its lease expired an active task is
// taken for one no worker runs any more. A worker renews its leases every
// few seconds to 30 s ahead, and acknowledges nothing once one has run out;
// the allowance is for the clocks of the hosts, which set and read them.
const orphanAfter = 10 * time.Second

// requeueOrphansScript puts back in the pending list, in one step, every
// active task whose ID starts with a prefix and that has no lease or one
// that expired before a time, as asynq's own requeue does (it counts no
// retry). A task whose data is gone is only taken out of the active list:
// asynq could not run it, and reconcile queues its addresses again.
//
// Input:
//
//	KEYS[1] -> asynq:{q}:active (list of task IDs)
//	KEYS[2] -> asynq:{q}:lease (zset: task ID by lease expiry, unix s)
//	KEYS[3] -> asynq:{q}:pending (list of task IDs)
//	ARGV[1] -> the task ID prefix ("RUN:")
//	ARGV[2] -> the expiry before which a lease is taken for dead (unix s)
//	ARGV[3] -> the prefix of a task's key ("asynq:{q}:t:")
//
// Output: how many tasks it put back.
var requeueOrphansScript = redis.NewScript(`
local n = 0
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if string.sub(id, 1, #ARGV[1]) == ARGV[1] then
    local lease = redis.call('ZSCORE', KEYS[2], id)
    if not lease or tonumber(lease) < tonumber(ARGV[2]) then
      redis.call('LREM', KEYS[1], 0, id)
      redis.call('ZREM', KEYS[2], id)
      if redis.call('EXISTS', ARGV[3] .. id) == 1 then
        redis.call('RPUSH', KEYS[3], id)
        redis.call('HSET', ARGV[3] .. id, 'state', 'pending')
        n = n + 1
      end
    end
  end
end
return n
`)

// requeueOrphans finds the run's active tasks in queue that no worker
// runs any more — left so by a Redis failover or restore, whose copy holds
// the leases of work finished since, or with no lease at all; asynq's
// recoverer would take a minute and more for the first and never find the
// second — and puts them back in the pending list. An active task with a
// live lease belongs to a live worker and is left alone. It returns how
// many it put back.
func requeueOrphans(ctx context.Context, rdb redis.UniversalClient, queue, runID string, now time.Time) (int, error) {
	keys := []string{asynqKey(queue, stateActive), asynqKey(queue, leases), asynqKey(queue, statePending)}
	n, err := requeueOrphansScript.Run(ctx, rdb, keys, runID+":", now.Add(-orphanAfter).Unix(), asynqKey(queue, "t:")).Int()
	if err != nil {
		return 0, fmt.Errorf("requeue orphaned tasks of %s: %w", queue, err)
	}
	return n, nil
}
