package runstore

import (
	"strconv"

	"github.com/redis/go-redis/v9"
)

// runIDLua recovers the run ID from KEYS[1], the run hash.
var runIDLua = `
local function run_id() return string.sub(KEYS[1], ` + strconv.Itoa(len(runKeyPrefix)+1) + `) end
`

// completeLua is shared by the scripts that can finish a run: once the
// enumeration is over and every address is final, stamp completed_at, take
// the run out of the open-runs index (KEYS[8]) and start the retention clock
// on all of the run's keys.
var completeLua = runIDLua + `
local function maybe_complete(now)
  local h = redis.call('HMGET', KEYS[1], 'enumerated', 'addresses_total', 'checked', 'dead', 'completed_at', 'retention_s')
  if h[1] == '1' and not h[5] and (tonumber(h[3] or 0) + tonumber(h[4] or 0)) >= tonumber(h[2] or 0) then
    redis.call('HSET', KEYS[1], 'completed_at', now)
    redis.call('ZREM', KEYS[8], run_id())
    local ttl = tonumber(h[6] or 0)
    if ttl > 0 then
      for i = 1, 7 do redis.call('EXPIRE', KEYS[i], ttl) end
    end
  end
end
`

// recordScript applies the outcomes of one batch. KEYS: the run's data keys
// and the open-runs index (see keys.scripted). ARGV: max attempts, now (unix ms), the tenant's
// rate (0: unknown), then triples of address, outcome (present|absent|fail|throttle), detail JSON. An address moves only
// out of pending, so a re-delivered batch changes nothing. Returns the
// resulting state of each address, and its attempt count.
var recordScript = redis.NewScript(completeLua + timelineLua + `
local maxa, now = tonumber(ARGV[1]), ARGV[2]
local out = {}
if redis.call('EXISTS', KEYS[1]) == 0 then
  -- purged: write nothing, or the run hash would come back
  for i = 4, #ARGV, 3 do out[#out+1] = 'unknown'; out[#out+1] = 0 end
  return out
end
local done, reqs, thr = 0, 0, 0
for i = 4, #ARGV, 3 do
  local a, o, d = ARGV[i], ARGV[i+1], ARGV[i+2]
  local cur = redis.call('HGET', KEYS[2], a)
  if cur == 'p' then
    reqs = reqs + 1
    if o == 'throttle' then thr = thr + 1 end
    local n = redis.call('HINCRBY', KEYS[3], a, 1)
    redis.call('HSET', KEYS[4], a, d)
    if o == 'present' or o == 'absent' then
      redis.call('HSET', KEYS[2], a, o)
      redis.call('HINCRBY', KEYS[1], o, 1)
      redis.call('HINCRBY', KEYS[1], 'checked', 1)
      if n > 1 then redis.call('HINCRBY', KEYS[1], 'failed_pending', -1) end
      done = done + 1
      cur = o
    else
      if n == 1 then redis.call('HINCRBY', KEYS[1], 'failed_pending', 1) end
      if n >= maxa then
        redis.call('HSET', KEYS[2], a, 'dead')
        redis.call('SADD', KEYS[6], a)
        redis.call('HINCRBY', KEYS[1], 'dead', 1)
        redis.call('HINCRBY', KEYS[1], 'failed_pending', -1)
        done = done + 1
        cur = 'dead'
      end
    end
    out[#out+1] = cur
    out[#out+1] = n
  else
    out[#out+1] = cur or 'unknown'
    out[#out+1] = tonumber(redis.call('HGET', KEYS[3], a) or 0)
  end
end
redis.call('HSETNX', KEYS[1], 'first_check_at', now)
redis.call('HSET', KEYS[1], 'updated_at', now)
if tonumber(ARGV[3]) > 0 then redis.call('HSET', KEYS[1], 'tenant_rate', ARGV[3], 'tenant_rate_at', now) end
tick(tonumber(now), done, reqs, thr)
maybe_complete(now)
return out
`)

// finishScript marks the enumeration of a run complete. KEYS: keys.scripted.
// ARGV: now, users total.
var finishScript = redis.NewScript(completeLua + `
redis.call('HSET', KEYS[1], 'enumerated', 1, 'enumeration_finished_at', ARGV[1], 'updated_at', ARGV[1], 'users_total', ARGV[2])
redis.call('HDEL', KEYS[1], 'last_error')
maybe_complete(ARGV[1])
return 1
`)

// requeueScript moves dead addresses back to pending with fresh attempts and,
// in the same step, stores the batches that will carry them, so that a crash
// between this and the enqueue loses nothing. KEYS: data keys. ARGV: now,
// number of addresses n, the n addresses, then pairs of batch number and
// payload. KEYS: keys.scripted (the run is open again). Returns how many
// addresses it moved.
var requeueScript = redis.NewScript(runIDLua + `
local now, n = ARGV[1], tonumber(ARGV[2])
local moved = 0
for i = 3, 2 + n do
  local a = ARGV[i]
  if redis.call('HGET', KEYS[2], a) == 'dead' then
    redis.call('HSET', KEYS[2], a, 'p')
    redis.call('HDEL', KEYS[3], a)
    redis.call('SREM', KEYS[6], a)
    moved = moved + 1
  end
end
if moved == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'dead', -moved)
for i = 3 + n, #ARGV, 2 do
  redis.call('HSET', KEYS[7], ARGV[i], ARGV[i+1])
end
redis.call('HDEL', KEYS[1], 'completed_at')
redis.call('HSET', KEYS[1], 'updated_at', now)
if not redis.call('HGET', KEYS[1], 'cancelled') then
  redis.call('ZADD', KEYS[8], redis.call('HGET', KEYS[1], 'created_at') or now, run_id())
end
for i = 1, 7 do redis.call('PERSIST', KEYS[i]) end
return moved
`)
