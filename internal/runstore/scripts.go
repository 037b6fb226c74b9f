package runstore

import (
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Outcomes of an attempt, as Record passes them to recordScript; an answer
// is passed as StatePresent or StateAbsent, which are also the names of
// their counters in the run hash.
const (
	outcomeFail     = "fail"
	outcomeThrottle = "throttle"
)

// luaNames spells, in the scripts' source, the values Go defines: {pending},
// {present}, {absent} and {dead} are the address states as the state
// buckets store them, {unknown} the state of an address the run does not
// hold, {fail} and {throttle} the failed outcomes, {s}, {o} and {u} the
// bucket families, so that a script cannot drift from the constants.
var luaNames = strings.NewReplacer(
	"{pending}", luaQuote(storedPending), "{present}", luaQuote(storedPresent),
	"{absent}", luaQuote(storedAbsent), "{dead}", luaQuote(storedDead),
	"{unknown}", luaQuote(string(StateUnknown)),
	"{fail}", luaQuote(outcomeFail), "{throttle}", luaQuote(outcomeThrottle),
	"{s}", luaQuote(famState), "{o}", luaQuote(famOwners), "{u}", luaQuote(famUsers),
)

func luaQuote(s string) string { return "'" + s + "'" }

// script builds a script from Lua source in which luaNames are replaced.
func script(src string) *redis.Script { return redis.NewScript(luaNames.Replace(src)) }

// runIDLua recovers the run ID from KEYS[1], the run hash.
var runIDLua = `
local function run_id() return string.sub(KEYS[1], ` + strconv.Itoa(len(runKeyPrefix)+1) + `) end
`

// stateLua defines parse(v), which splits an address's value (see
// encodeState) into its state, attempts and encoded detail; the state is
// nil for an address the run does not hold.
var stateLua = `
local function parse(v)
  if not v then return nil, 0, '' end
  local c = string.find(v, ':', 2, true)
  if not c then return string.sub(v, 1, 1), tonumber(string.sub(v, 2)) or 0, '' end
  return string.sub(v, 1, 1), tonumber(string.sub(v, 2, c - 1)) or 0, string.sub(v, c + 1)
end
`

// bucketsLua defines each_key(fn), which calls fn with every key of the
// run's data: KEYS[1] to KEYS[4] (keys.data) and every bucket of every
// family. The bucket keys are named from KEYS[1] and the run's bucket
// count rather than passed in, since a run has thousands of them: like
// every script of the store, the scripts that use it run on one Redis, not
// a cluster.
var bucketsLua = `
local function each_key(fn)
  for i = 1, 4 do fn(KEYS[i]) end
  local n = tonumber(redis.call('HGET', KEYS[1], 'buckets') or 0)
  for _, f in ipairs({{s}, {o}, {u}}) do
    local p = KEYS[1] .. ':' .. f .. ':'
    for i = 0, n - 1 do fn(p .. i) end
  end
end
`

// completeLua is shared by the scripts that can finish a run, whose KEYS
// start with keys.scripted: once the enumeration is over and every address
// is final, it stamps completed_at, takes the run out of the open-runs
// index (KEYS[5]), records run.completed and starts the retention clock on
// every key of the run.
var completeLua = runIDLua + bucketsLua + eventLua + `
local function maybe_complete(now)
  local h = redis.call('HMGET', KEYS[1], 'enumerated', 'addresses_total', 'checked', 'dead', 'completed_at', 'retention_s')
  if h[1] == '1' and not h[5] and (tonumber(h[3] or 0) + tonumber(h[4] or 0)) >= tonumber(h[2] or 0) then
    redis.call('HSET', KEYS[1], 'completed_at', now)
    add_event('` + string(EventCompleted) + `', now)
    redis.call('ZREM', KEYS[5], run_id())
    local ttl = tonumber(h[6] or 0)
    if ttl > 0 then
      each_key(function(k) redis.call('EXPIRE', k, ttl) end)
    end
  end
end
`

// recordScript applies the outcomes of one group of answers. An address
// moves only out of pending, so outcomes recorded again (a re-delivered
// batch) change nothing; a run that was purged is not written to. An answer
// (present or absent: a dead letter is final but no answer) ends a stall
// (run.recovered).
//
// Input: KEYS: keys.scripted (KEYS[1] run, KEYS[2] errors, KEYS[3] dead,
// KEYS[5] the open-runs index), then the state buckets of the addresses.
// ARGV[1] -> max attempts, ARGV[2] -> now (unix ms), ARGV[3] -> the tenant's
// rate (0: unknown), then for each outcome ARGV[i] -> the index in KEYS of
// its address's state bucket, ARGV[i+1] -> address, ARGV[i+2] -> present,
// absent, fail or throttle, ARGV[i+3] -> the encoded detail (encodeDetail),
// ARGV[i+4] -> the error of a failed attempt.
// Output: for each outcome, the address's state after it and its attempts.
var recordScript = script(completeLua + timelineLua + stateLua + `
local maxa, now = tonumber(ARGV[1]), ARGV[2]
local out = {}
if redis.call('EXISTS', KEYS[1]) == 0 then
  -- purged: write nothing, or the run hash would come back
  for i = 4, #ARGV, 5 do out[#out+1] = {unknown}; out[#out+1] = 0 end
  return out
end
local done, answered, reqs, thr = 0, 0, 0, 0
for i = 4, #ARGV, 5 do
  local key, a, o, d, e = KEYS[tonumber(ARGV[i])], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4]
  local cur, n = parse(redis.call('HGET', key, a))
  if cur == {pending} then
    reqs = reqs + 1
    if o == {throttle} then thr = thr + 1 end
    n = n + 1
    if o == 'present' or o == 'absent' then
      cur = (o == 'present') and {present} or {absent}
      redis.call('HINCRBY', KEYS[1], o, 1)
      redis.call('HINCRBY', KEYS[1], 'checked', 1)
      if n > 1 then redis.call('HINCRBY', KEYS[1], 'failed_pending', -1) end
      redis.call('HDEL', KEYS[2], a)
      done = done + 1
      answered = answered + 1
    else
      redis.call('HSET', KEYS[2], a, e)
      if n == 1 then redis.call('HINCRBY', KEYS[1], 'failed_pending', 1) end
      if n >= maxa then
        redis.call('SADD', KEYS[3], a)
        redis.call('HINCRBY', KEYS[1], 'dead', 1)
        redis.call('HINCRBY', KEYS[1], 'failed_pending', -1)
        done = done + 1
        cur = {dead}
      end
    end
    redis.call('HSET', key, a, cur .. n .. ':' .. d)
  end
  out[#out+1] = cur or {unknown}
  out[#out+1] = n
end
-- A cancelled run's keys expire already; errors and dead may be new.
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  for i = 2, 3 do
    if redis.call('PTTL', KEYS[i]) == -1 then redis.call('PEXPIRE', KEYS[i], ttl) end
  end
end
redis.call('HSETNX', KEYS[1], 'first_check_at', now)
redis.call('HSET', KEYS[1], 'updated_at', now)
if answered > 0 then
  redis.call('HSET', KEYS[1], '` + fieldAnsweredAt + `', now)
  if redis.call('HDEL', KEYS[1], '` + fieldStalledAt + `') == 1 then add_event('` + string(EventRecovered) + `', now) end
end
if tonumber(ARGV[3]) > 0 then redis.call('HSET', KEYS[1], 'tenant_rate', ARGV[3], 'tenant_rate_at', now) end
tick(tonumber(now), done, reqs, thr)
maybe_complete(now)
return out
`)

// finishScript marks the enumeration of a run complete, recording
// run.submitted the first time, which completes it if every address is final
// already.
//
// Input: KEYS: keys.scripted. ARGV[1] -> now (unix ms), ARGV[2] -> users
// read. Output: 1.
var finishScript = script(completeLua + `
if redis.call('HGET', KEYS[1], 'enumerated') ~= '1' then add_event('` + string(EventSubmitted) + `', ARGV[1]) end
redis.call('HSET', KEYS[1], 'enumerated', 1, 'enumeration_finished_at', ARGV[1], 'updated_at', ARGV[1], 'users_total', ARGV[2])
redis.call('HDEL', KEYS[1], 'last_error')
maybe_complete(ARGV[1])
return 1
`)

// requeueScript moves dead addresses back to pending with fresh attempts
// (their last detail and error stay until the next attempt) and, in the
// same step, stores the batches that will carry them, so that a crash
// between this and the enqueue loses nothing. The run is open again and its
// keys no longer expire.
//
// Input: KEYS: keys.scripted (KEYS[3] dead, KEYS[4] unsent, KEYS[5] the
// open-runs index), then the state buckets of the addresses. ARGV[1] -> now
// (unix ms), ARGV[2] -> n, then n pairs of ARGV[i] -> the index in KEYS of
// the address's state bucket, ARGV[i+1] -> address, then pairs of ARGV[j]
// -> batch number, ARGV[j+1] -> payload. Output: how many addresses it
// moved.
var requeueScript = script(runIDLua + bucketsLua + stateLua + `
local now, n = ARGV[1], tonumber(ARGV[2])
local moved = 0
for i = 3, 2 + 2 * n, 2 do
  local key, a = KEYS[tonumber(ARGV[i])], ARGV[i+1]
  local st, _, d = parse(redis.call('HGET', key, a))
  if st == {dead} then
    redis.call('HSET', key, a, {pending} .. '0:' .. d)
    redis.call('SREM', KEYS[3], a)
    moved = moved + 1
  end
end
if moved == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'dead', -moved)
for i = 3 + 2 * n, #ARGV, 2 do
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i+1])
end
redis.call('HDEL', KEYS[1], 'completed_at')
redis.call('HSET', KEYS[1], 'updated_at', now)
if not redis.call('HGET', KEYS[1], 'cancelled') then
  redis.call('ZADD', KEYS[5], redis.call('HGET', KEYS[1], 'created_at') or now, run_id())
end
each_key(function(k) redis.call('PERSIST', k) end)
return moved
`)
