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

// reserveScript: KEYS tenant state, global tat. ARGV ceiling, global rate,
// max wait (us), initial, adaptive (0|1), doubling (s), recovery (s), probe,
// min rate, ttl (ms). Returns {ok, wait us, rate*1000, epoch}.
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

// throttleScript: KEYS tenant state. ARGV ceiling, initial, retry-after (us),
// backoff, pause (us), max pause (us), doubling, recovery, probe, min rate,
// ttl (ms), epoch of the throttled request's slot, estimate margin, and the
// estimate and cut factors on leaving slow start, and the short-pause margin.
// Returns the pause still in force (us). Every reaction starts a new epoch; a report
// from a slot of an older epoch was sent before that reaction and is ignored,
// so requests in flight during a cut do not cut again or lengthen the pause.
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

// staleScript: KEYS tenant state. ARGV epoch of a slot. Returns how long
// (us) the tenant stays paused if a throttle reaction happened since the
// slot was given (0 if the pause is already over), or -1 if the slot is
// still good.
var staleScript = redis.NewScript(rateLua + `
local s = load(KEYS[1])
if s.epoch <= tonumber(ARGV[1]) then return -1 end
return math.floor(math.max(0, (tonumber(s['until']) or 0) - now_us()))
`)

// rateScript: KEYS tenant state. ARGV ceiling, initial, doubling (s),
// recovery (s), probe, min rate. Returns the tenant's current rate * 1000
// without taking a slot or changing anything (the autoscaler reads it).
var rateScript = redis.NewScript(rateLua + `
local s = load(KEYS[1])
return math.floor(1000 * current_rate(s, now_us(), tonumber(ARGV[1]), tonumber(ARGV[2]),
  tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])))
`)
