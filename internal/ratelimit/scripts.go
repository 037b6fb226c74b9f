package ratelimit

import "github.com/redis/go-redis/v9"

// rateLua computes a tenant's current rate from its state hash fields (see
// the package comment). All times are microseconds of the Redis clock.
const rateLua = `
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function current_rate(s, now, ceiling, initial, doubling, recovery, probe, minrate)
  local rate = tonumber(s.rate) or initial
  local changed = tonumber(s.changed) or now
  local est = tonumber(s.est) or 0
  local dt = math.max(0, now - changed) / 1000000
  local r
  if est <= 0 then
    r = rate * math.pow(2, dt / doubling)
  else
    r = est - (est - rate) * math.exp(-dt / recovery) + est * probe * dt
  end
  return math.max(minrate, math.min(r, ceiling))
end
local function load(key)
  local v = redis.call('HMGET', key, 'tat', 'rate', 'changed', 'est', 'pause', 'until', 'epoch', 'short')
  return {tat = v[1], rate = v[2], changed = v[3], est = v[4], pause = v[5], ['until'] = v[6],
    epoch = tonumber(v[7]) or 0, short = tonumber(v[8]) or 0}
end
`

// reserveScript takes the tenant's next request slot if it is within the
// max wait, on the GCRA schedule of the tenant (and of all tenants, with a
// global rate).
//
// Input: KEYS[1] -> the tenant's state hash, KEYS[2] -> the global
// theoretical arrival time. ARGV[1] -> ceiling (requests/s), ARGV[2] ->
// global rate (0: none), ARGV[3] -> max wait (us), ARGV[4] -> initial rate,
// ARGV[5] -> adaptive (0|1), ARGV[6] -> doubling time (s), ARGV[7] ->
// recovery time constant (s), ARGV[8] -> probe (fraction/s), ARGV[9] -> min
// rate, ARGV[10] -> state TTL (ms).
// Output: {1 if a slot was taken else 0, wait (us), rate*1000, epoch}.
var reserveScript = redis.NewScript(rateLua + `
local ceiling, grate, maxwait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local initial, adaptive = tonumber(ARGV[4]), ARGV[5] == '1'
local now = now_us()
local s = load(KEYS[1])
local r = ceiling
if adaptive then
  r = current_rate(s, now, ceiling, initial, tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]))
end
local start = math.max(tonumber(s.tat) or 0, now)
local gtat = 0
if grate > 0 then
  gtat = tonumber(redis.call('GET', KEYS[2]) or 0)
  start = math.max(start, gtat)
end
local wait = start - now
if wait > maxwait then
  return {0, math.floor(wait - maxwait), math.floor(r * 1000), s.epoch}
end
redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', start + 1000000 / r))
if adaptive and not s.rate then
  redis.call('HSET', KEYS[1], 'rate', initial, 'changed', string.format('%.0f', now))
end
redis.call('PEXPIRE', KEYS[1], ARGV[10])
if grate > 0 then
  redis.call('SET', KEYS[2], string.format('%.0f', start + 1000000 / grate), 'PX', ARGV[10])
end
return {1, math.floor(wait), math.floor(r * 1000), s.epoch}
`)

// throttleScript reacts to a throttle signal: it pauses the tenant, cuts its
// rate and re-estimates its capacity. Every reaction starts a new epoch; a
// report from a slot of an older epoch was sent before that reaction and is
// ignored, so requests in flight during a cut do not cut again or lengthen
// the pause.
//
// Input: KEYS[1] -> the tenant's state hash. ARGV[1] -> ceiling, ARGV[2] ->
// initial rate, ARGV[3] -> the service's Retry-After (us), ARGV[4] ->
// backoff factor, ARGV[5] -> base pause (us), ARGV[6] -> max pause (us),
// ARGV[7] -> doubling time (s), ARGV[8] -> recovery (s), ARGV[9] -> probe,
// ARGV[10] -> min rate, ARGV[11] -> state TTL (ms), ARGV[12] -> epoch of
// the throttled request's slot, ARGV[13] -> estimate margin, ARGV[14] and
// ARGV[15] -> estimate and cut factors on leaving slow start, ARGV[16] ->
// short-pause margin.
// Output: the pause still in force (us).
var throttleScript = redis.NewScript(rateLua + `
local ceiling, initial, retry = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local backoff, basepause, maxpause = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local minrate, margin = tonumber(ARGV[10]), tonumber(ARGV[13])
local now = now_us()
local s = load(KEYS[1])
local pause = tonumber(s.pause) or basepause
local untl = tonumber(s['until']) or 0
if tonumber(ARGV[12]) < s.epoch then
  return math.floor(math.max(0, untl - now))
end
local short = s.short
-- A signal right after a pause means the pause was shorter than the
-- service's penalty, not that the rate was too high.
local pausefail = untl > 0 and now < untl + basepause
if pausefail then
  short = math.max(short, pause)
  pause = math.min(pause * 2, maxpause)
else
  pause = math.max(basepause, pause * 0.9, short * tonumber(ARGV[16]))
end
local r = current_rate(s, now, ceiling, initial, tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]), minrate)
local p = math.max(pause, retry)
untl = now + p
local tat = math.max(tonumber(s.tat) or 0, untl)
local est, cut = tonumber(s.est) or 0, r
if est <= 0 then
  -- Leaving slow start: the rate has just doubled, and half of it was
  -- running clean a moment ago.
  est, cut = r * tonumber(ARGV[14]), r * tonumber(ARGV[15])
elseif not pausefail then
  est, cut = r * margin, r * backoff
end
redis.call('HSET', KEYS[1], 'est', string.format('%.4f', math.max(minrate, est)),
  'rate', string.format('%.4f', math.max(minrate, cut)), 'changed', string.format('%.0f', untl),
  'pause', string.format('%.0f', pause), 'until', string.format('%.0f', untl), 'short', string.format('%.0f', short),
  'tat', string.format('%.0f', tat), 'epoch', s.epoch + 1)
redis.call('PEXPIRE', KEYS[1], ARGV[11])
return math.floor(p)
`)

// staleScript tells whether a slot was given before a throttle reaction.
//
// Input: KEYS[1] -> the tenant's state hash. ARGV[1] -> the slot's epoch.
// Output: -1 if the slot is still good; else how long (us) the tenant stays
// paused (0 if the pause is already over).
var staleScript = redis.NewScript(rateLua + `
local s = load(KEYS[1])
if s.epoch <= tonumber(ARGV[1]) then return -1 end
return math.floor(math.max(0, (tonumber(s['until']) or 0) - now_us()))
`)

// rateScript reads the tenant's current rate without taking a slot or
// changing anything (the autoscaler reads it).
//
// Input: KEYS[1] -> the tenant's state hash. ARGV[1] -> ceiling, ARGV[2] ->
// initial rate, ARGV[3] -> doubling time (s), ARGV[4] -> recovery (s),
// ARGV[5] -> probe, ARGV[6] -> min rate.
// Output: the rate * 1000.
var rateScript = redis.NewScript(rateLua + `
local s = load(KEYS[1])
return math.floor(1000 * current_rate(s, now_us(), tonumber(ARGV[1]), tonumber(ARGV[2]),
  tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])))
`)
