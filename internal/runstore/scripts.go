package runstore

import (
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Outcomes of an attempt, as Record passes them to recordScript; an answer
// is passed as StatePresent or StateAbsent.
const (
	outcomeFail     = "fail"
	outcomeThrottle = "throttle"
)

// luaConsts are the Go constants the scripts' source names: {name} in a
// script stands for the constant name's value, quoted, so that a script
// cannot drift from Go. Each entry is the name of a package-level constant
// and its value; TestLuaConsts checks that, and that the scripts name
// every entry and no other.
var luaConsts = []struct{ name, value string }{
	// The address states as the state buckets store them, and the state
	// of an address the run does not hold.
	{"storedPending", storedPending},
	{"storedPresent", storedPresent},
	{"storedAbsent", storedAbsent},
	{"storedDead", storedDead},
	{"StateUnknown", string(StateUnknown)},
	// The outcomes recordScript is given.
	{"StatePresent", string(StatePresent)},
	{"StateAbsent", string(StateAbsent)},
	{"outcomeThrottle", outcomeThrottle},
	// The bucket families.
	{"famState", famState},
	{"famOwners", famOwners},
	{"famUsers", famUsers},
	// The run hash's fields (fields.go).
	{"fieldTenantID", fieldTenantID},
	{"fieldBuckets", fieldBuckets},
	{"fieldRetention", fieldRetention},
	{"fieldAddressesTotal", fieldAddressesTotal},
	{"fieldChecked", fieldChecked},
	{"fieldPresent", fieldPresent},
	{"fieldAbsent", fieldAbsent},
	{"fieldDead", fieldDead},
	{"fieldFailedPending", fieldFailedPending},
	{"fieldRequests", fieldRequests},
	{"fieldThrottles", fieldThrottles},
	{"fieldUsersTotal", fieldUsersTotal},
	{"fieldReused", fieldReused},
	{"fieldEnumerated", fieldEnumerated},
	{"fieldCancelled", fieldCancelled},
	{"fieldPaused", fieldPaused},
	{"fieldCreatedAt", fieldCreatedAt},
	{"fieldUpdatedAt", fieldUpdatedAt},
	{"fieldEnumerationStartedAt", fieldEnumerationStartedAt},
	{"fieldEnumerationFinishedAt", fieldEnumerationFinishedAt},
	{"fieldFirstCheckAt", fieldFirstCheckAt},
	{"fieldCompletedAt", fieldCompletedAt},
	{"fieldPausedAt", fieldPausedAt},
	{"fieldTenantRateAt", fieldTenantRateAt},
	{"fieldTenantRate", fieldTenantRate},
	{"fieldLastError", fieldLastError},
	{"fieldChartBase", fieldChartBase},
	{"fieldChartWidth", fieldChartWidth},
	{"fieldChartPrefix", fieldChartPrefix},
	{"fieldRecentPrefix", fieldRecentPrefix},
	{"fieldEvents", fieldEvents},
	{"fieldEventPrefix", fieldEventPrefix},
	{"fieldDelivered", fieldDelivered},
	{"fieldDeliveredPrefix", fieldDeliveredPrefix},
	{"fieldEventAttempts", fieldEventAttempts},
	{"fieldEventNextAt", fieldEventNextAt},
	{"fieldEventError", fieldEventError},
	{"fieldAnsweredAt", fieldAnsweredAt},
	{"fieldResumedAt", fieldResumedAt},
	{"fieldStalledAt", fieldStalledAt},
	// The run events (events.go).
	{"EventSubmitted", string(EventSubmitted)},
	{"EventCompleted", string(EventCompleted)},
	{"EventCancelled", string(EventCancelled)},
	{"EventPaused", string(EventPaused)},
	{"EventResumed", string(EventResumed)},
	{"EventStalled", string(EventStalled)},
	{"EventRecovered", string(EventRecovered)},
}

// luaNames replaces the placeholders of luaConsts in a script's source.
var luaNames = func() *strings.Replacer {
	oldnew := make([]string, 0, 2*len(luaConsts))
	for _, c := range luaConsts {
		oldnew = append(oldnew, "{"+c.name+"}", luaQuote(c.value))
	}
	return strings.NewReplacer(oldnew...)
}()

func luaQuote(s string) string { return "'" + s + "'" }

// scriptSources is the source of every script built by script, as Redis
// runs it.
var scriptSources []string

// script builds a script from Lua source in which the placeholders of
// luaConsts are replaced. Every script of the store is built here.
func script(src string) *redis.Script {
	src = luaNames.Replace(src)
	scriptSources = append(scriptSources, src)
	return redis.NewScript(src)
}

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
  local n = tonumber(redis.call('HGET', KEYS[1], {fieldBuckets}) or 0)
  for _, f in ipairs({{famState}, {famOwners}, {famUsers}}) do
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
  local h = redis.call('HMGET', KEYS[1], {fieldEnumerated}, {fieldAddressesTotal}, {fieldChecked}, {fieldDead}, {fieldCompletedAt}, {fieldRetention})
  if h[1] == '1' and not h[5] and (tonumber(h[3] or 0) + tonumber(h[4] or 0)) >= tonumber(h[2] or 0) then
    redis.call('HSET', KEYS[1], {fieldCompletedAt}, now)
    add_event({EventCompleted}, now)
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
// Its KEYS are keys.scripted, then the state buckets it writes.
//
// Input:
// KEYS[1] -> msaudit:run:<id>
// KEYS[2] -> msaudit:run:<id>:errors
// KEYS[3] -> msaudit:run:<id>:dead
// KEYS[4] -> msaudit:run:<id>:unsent
// KEYS[5] -> msaudit:runs:open
// KEYS[6..] -> msaudit:run:<id>:s:<i>, the state buckets of the addresses
// ARGV[1] -> max attempts
// ARGV[2] -> now (unix ms)
// ARGV[3] -> the tenant's rate, requests/s (0: unknown)
// then for each outcome, five from i = 4:
// ARGV[i] -> the index in KEYS of its address's state bucket
// ARGV[i+1] -> address
// ARGV[i+2] -> StatePresent, StateAbsent, outcomeFail or outcomeThrottle
// ARGV[i+3] -> the encoded detail (encodeDetail)
// ARGV[i+4] -> the error of a failed attempt
//
// Output:
// for each outcome, the address's state after it (one of the stored
// states, or StateUnknown for an address the run does not hold), then its
// attempts
var recordScript = script(completeLua + timelineLua + stateLua + `
local maxa, now = tonumber(ARGV[1]), ARGV[2]
local out = {}
if redis.call('EXISTS', KEYS[1]) == 0 then
  -- purged: write nothing, or the run hash would come back
  for i = 4, #ARGV, 5 do out[#out+1] = {StateUnknown}; out[#out+1] = 0 end
  return out
end
local done, answered, reqs, thr = 0, 0, 0, 0
for i = 4, #ARGV, 5 do
  local key, a, o, d, e = KEYS[tonumber(ARGV[i])], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4]
  local cur, n = parse(redis.call('HGET', key, a))
  if cur == {storedPending} then
    reqs = reqs + 1
    if o == {outcomeThrottle} then thr = thr + 1 end
    n = n + 1
    if o == {StatePresent} or o == {StateAbsent} then
      local counter = {fieldAbsent}
      cur = {storedAbsent}
      if o == {StatePresent} then cur, counter = {storedPresent}, {fieldPresent} end
      redis.call('HINCRBY', KEYS[1], counter, 1)
      redis.call('HINCRBY', KEYS[1], {fieldChecked}, 1)
      if n > 1 then redis.call('HINCRBY', KEYS[1], {fieldFailedPending}, -1) end
      redis.call('HDEL', KEYS[2], a)
      done = done + 1
      answered = answered + 1
    else
      redis.call('HSET', KEYS[2], a, e)
      if n == 1 then redis.call('HINCRBY', KEYS[1], {fieldFailedPending}, 1) end
      if n >= maxa then
        redis.call('SADD', KEYS[3], a)
        redis.call('HINCRBY', KEYS[1], {fieldDead}, 1)
        redis.call('HINCRBY', KEYS[1], {fieldFailedPending}, -1)
        done = done + 1
        cur = {storedDead}
      end
    end
    redis.call('HSET', key, a, cur .. n .. ':' .. d)
  end
  out[#out+1] = cur or {StateUnknown}
  out[#out+1] = n
end
-- A cancelled run's keys expire already; errors and dead may be new.
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  for i = 2, 3 do
    if redis.call('PTTL', KEYS[i]) == -1 then redis.call('PEXPIRE', KEYS[i], ttl) end
  end
end
redis.call('HSETNX', KEYS[1], {fieldFirstCheckAt}, now)
redis.call('HSET', KEYS[1], {fieldUpdatedAt}, now)
if answered > 0 then
  redis.call('HSET', KEYS[1], {fieldAnsweredAt}, now)
  if redis.call('HDEL', KEYS[1], {fieldStalledAt}) == 1 then add_event({EventRecovered}, now) end
end
if tonumber(ARGV[3]) > 0 then redis.call('HSET', KEYS[1], {fieldTenantRate}, ARGV[3], {fieldTenantRateAt}, now) end
tick(tonumber(now), done, reqs, thr)
maybe_complete(now)
return out
`)

// finishScript marks the enumeration of a run complete, recording
// run.submitted the first time, which completes it if every address is final
// already.
//
// Its KEYS are keys.scripted.
//
// Input:
// KEYS[1] -> msaudit:run:<id>
// KEYS[2] -> msaudit:run:<id>:errors
// KEYS[3] -> msaudit:run:<id>:dead
// KEYS[4] -> msaudit:run:<id>:unsent
// KEYS[5] -> msaudit:runs:open
// ARGV[1] -> now (unix ms)
// ARGV[2] -> users read
//
// Output:
// 1
var finishScript = script(completeLua + `
if redis.call('HGET', KEYS[1], {fieldEnumerated}) ~= '1' then add_event({EventSubmitted}, ARGV[1]) end
redis.call('HSET', KEYS[1], {fieldEnumerated}, 1, {fieldEnumerationFinishedAt}, ARGV[1], {fieldUpdatedAt}, ARGV[1], {fieldUsersTotal}, ARGV[2])
redis.call('HDEL', KEYS[1], {fieldLastError})
maybe_complete(ARGV[1])
return 1
`)

// requeueScript moves dead addresses back to pending with fresh attempts
// (their last detail and error stay until the next attempt) and, in the
// same step, stores the batches that will carry them, so that a crash
// between this and the enqueue loses nothing. The run is open again and its
// keys no longer expire.
//
// Its KEYS are keys.scripted, then the state buckets it writes.
//
// Input:
// KEYS[1] -> msaudit:run:<id>
// KEYS[2] -> msaudit:run:<id>:errors
// KEYS[3] -> msaudit:run:<id>:dead
// KEYS[4] -> msaudit:run:<id>:unsent
// KEYS[5] -> msaudit:runs:open
// KEYS[6..] -> msaudit:run:<id>:s:<i>, the state buckets of the addresses
// ARGV[1] -> now (unix ms)
// ARGV[2] -> n, the number of addresses
// then n pairs, from i = 3:
// ARGV[i] -> the index in KEYS of the address's state bucket
// ARGV[i+1] -> address
// then pairs to the end, from j = 3 + 2*n:
// ARGV[j] -> a batch number
// ARGV[j+1] -> its payload
//
// Output:
// how many addresses it moved
var requeueScript = script(runIDLua + bucketsLua + stateLua + `
local now, n = ARGV[1], tonumber(ARGV[2])
local moved = 0
for i = 3, 2 + 2 * n, 2 do
  local key, a = KEYS[tonumber(ARGV[i])], ARGV[i+1]
  local st, _, d = parse(redis.call('HGET', key, a))
  if st == {storedDead} then
    redis.call('HSET', key, a, {storedPending} .. '0:' .. d)
    redis.call('SREM', KEYS[3], a)
    moved = moved + 1
  end
end
if moved == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], {fieldDead}, -moved)
for i = 3 + 2 * n, #ARGV, 2 do
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i+1])
end
redis.call('HDEL', KEYS[1], {fieldCompletedAt})
redis.call('HSET', KEYS[1], {fieldUpdatedAt}, now)
if not redis.call('HGET', KEYS[1], {fieldCancelled}) then
  redis.call('ZADD', KEYS[5], redis.call('HGET', KEYS[1], {fieldCreatedAt}) or now, run_id())
end
each_key(function(k) redis.call('PERSIST', k) end)
return moved
`)
