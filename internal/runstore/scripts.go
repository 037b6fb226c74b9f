package runstore

import (
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Outcomes of an attempt, as Record passes them to recordScript.
const (
	outcomeFail     = "fail"
	outcomeThrottle = "throttle"
)

// luaNames spells, in the scripts' source, the values Go defines: {pending},
// {present}, {absent}, {dead} and {unknown} are the address states as the
// status hash stores them, {fail} and {throttle} the failed outcomes, so
// that a script cannot drift from the constants.
var luaNames = strings.NewReplacer(
	"{pending}", luaQuote(storedPending), "{present}", luaQuote(string(StatePresent)),
	"{absent}", luaQuote(string(StateAbsent)), "{dead}", luaQuote(string(StateDead)),
	"{unknown}", luaQuote(string(StateUnknown)),
	"{fail}", luaQuote(outcomeFail), "{throttle}", luaQuote(outcomeThrottle),
)

func luaQuote(s string) string { return "'" + s + "'" }

// script builds a script from Lua source in which luaNames are replaced.
func script(src string) *redis.Script { return redis.NewScript(luaNames.Replace(src)) }

// runIDLua recovers the run ID from KEYS[1], the run hash.
var runIDLua = `
local function run_id() return string.sub(KEYS[1], ` + strconv.Itoa(len(runKeyPrefix)+1) + `) end
`

// completeLua is shared by the scripts that can finish a run, whose KEYS are
// keys.scripted: once the enumeration is over and every address is final,
// it stamps completed_at, takes the run out of the open-runs index (the last
// key) and starts the retention clock on every other key.
var completeLua = runIDLua + `
local function maybe_complete(now)
  local h = redis.call('HMGET', KEYS[1], 'enumerated', 'addresses_total', 'checked', 'dead', 'completed_at', 'retention_s')
  if h[1] == '1' and not h[5] and (tonumber(h[3] or 0) + tonumber(h[4] or 0)) >= tonumber(h[2] or 0) then
    redis.call('HSET', KEYS[1], 'completed_at', now)
    redis.call('ZREM', KEYS[#KEYS], run_id())
    local ttl = tonumber(h[6] or 0)
    if ttl > 0 then
      for i = 1, #KEYS - 1 do redis.call('EXPIRE', KEYS[i], ttl) end
    end
  end
end
`

// recordScript applies the outcomes of one group of answers. An address
// moves only out of pending, so outcomes recorded again (a re-delivered
// batch) change nothing; a run that was purged is not written to.
//
// Input: KEYS: keys.scripted (KEYS[1] run, KEYS[2] status, KEYS[3]
// attempts, KEYS[4] detail, KEYS[6] dead, last the open-runs index).
// ARGV[1] -> max attempts, ARGV[2] -> now (unix ms), ARGV[3] -> the tenant's
// rate (0: unknown), then for each outcome ARGV[i] -> address, ARGV[i+1] ->
// present, absent, fail or throttle, ARGV[i+2] -> detail JSON.
// Output: for each outcome, the address's state after it and its attempts.
var recordScript = script(completeLua + timelineLua + `
local maxa, now = tonumber(ARGV[1]), ARGV[2]
local out = {}
if redis.call('EXISTS', KEYS[1]) == 0 then
  -- purged: write nothing, or the run hash would come back
  for i = 4, #ARGV, 3 do out[#out+1] = {unknown}; out[#out+1] = 0 end
  return out
end
local done, reqs, thr = 0, 0, 0
for i = 4, #ARGV, 3 do
  local a, o, d = ARGV[i], ARGV[i+1], ARGV[i+2]
  local cur = redis.call('HGET', KEYS[2], a)
  if cur == {pending} then
    reqs = reqs + 1
    if o == {throttle} then thr = thr + 1 end
    local n = redis.call('HINCRBY', KEYS[3], a, 1)
    redis.call('HSET', KEYS[4], a, d)
    if o == {present} or o == {absent} then
      redis.call('HSET', KEYS[2], a, o)
      redis.call('HINCRBY', KEYS[1], o, 1)
      redis.call('HINCRBY', KEYS[1], 'checked', 1)
      if n > 1 then redis.call('HINCRBY', KEYS[1], 'failed_pending', -1) end
      done = done + 1
      cur = o
    else
      if n == 1 then redis.call('HINCRBY', KEYS[1], 'failed_pending', 1) end
      if n >= maxa then
        redis.call('HSET', KEYS[2], a, {dead})
        redis.call('SADD', KEYS[6], a)
        redis.call('HINCRBY', KEYS[1], 'dead', 1)
        redis.call('HINCRBY', KEYS[1], 'failed_pending', -1)
        done = done + 1
        cur = {dead}
      end
    end
    out[#out+1] = cur
    out[#out+1] = n
  else
    out[#out+1] = cur or {unknown}
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

// finishScript marks the enumeration of a run complete, which completes it
// if every address is final already.
//
// Input: KEYS: keys.scripted. ARGV[1] -> now (unix ms), ARGV[2] -> users
// read. Output: 1.
var finishScript = script(completeLua + `
redis.call('HSET', KEYS[1], 'enumerated', 1, 'enumeration_finished_at', ARGV[1], 'updated_at', ARGV[1], 'users_total', ARGV[2])
redis.call('HDEL', KEYS[1], 'last_error')
maybe_complete(ARGV[1])
return 1
`)

// requeueScript moves dead addresses back to pending with fresh attempts and,
// in the same step, stores the batches that will carry them, so that a crash
// between this and the enqueue loses nothing. The run is open again and its
// keys no longer expire.
//
// Input: KEYS: keys.scripted (KEYS[2] status, KEYS[3] attempts, KEYS[6]
// dead, KEYS[7] unsent, last the open-runs index). ARGV[1] -> now (unix ms),
// ARGV[2] -> n, ARGV[3..2+n] -> the addresses, then pairs of ARGV[i] ->
// batch number, ARGV[i+1] -> payload. Output: how many addresses it moved.
var requeueScript = script(runIDLua + `
local now, n = ARGV[1], tonumber(ARGV[2])
local moved = 0
for i = 3, 2 + n do
  local a = ARGV[i]
  if redis.call('HGET', KEYS[2], a) == {dead} then
    redis.call('HSET', KEYS[2], a, {pending})
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
  redis.call('ZADD', KEYS[#KEYS], redis.call('HGET', KEYS[1], 'created_at') or now, run_id())
end
for i = 1, #KEYS - 1 do redis.call('PERSIST', KEYS[i]) end
return moved
`)
