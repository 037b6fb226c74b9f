package ratelimit

import (
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// prelude is shared by every script: the algorithm's constants, spelled from
// the Go ones, and the functions that read a scope's state and compute its
// rate. All times are microseconds of the Redis clock; rates are requests/s.
//
// A scope's state hash (a tenant's, or the source's shared by all tenants):
// tat (next free slot, GCRA), rate and changed (the rate at its last change,
// and when), est (the estimated capacity; absent: slow start), q (the quiet
// time before the next probe), pause and short (the learned pause, the
// longest pause that proved too short), till (end of the current pause),
// epoch (reactions so far), n (slots since the last pause ended), seen (the
// last slot). A tenant's also holds ok (the slot of its latest answered
// request) and a cut waiting for the scope decision (pat: when, pest and
// prate: the tenant's own cut, pr: the rate that throttled). The source's
// also holds the last throttle report (lt: tenant, la: when, lr: its rate,
// ls: its slot, lo: that tenant's ok then), the last shared event (sf, st:
// its first and last report, cf: the factor it cut by, pm: the mean rate of
// the tenants throttled in it) and a sliding count of all tenants' slots
// (wt, wn, wp).
var prelude = constants() + `
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function num(v, d) return tonumber(v) or d end

local FIELDS = {'tat', 'rate', 'changed', 'est', 'q', 'pause', 'short', 'till', 'epoch', 'n', 'seen', 'ok',
  'pat', 'pest', 'prate', 'pr', 'lt', 'la', 'lr', 'ls', 'lo', 'sf', 'st', 'cf', 'pm', 'wt', 'wn', 'wp'}
local function load(key)
  local v = redis.call('HMGET', key, unpack(FIELDS))
  local s = {}
  for i, f in ipairs(FIELDS) do s[f] = v[i] end
  return s
end
local function save(key, s)
  local args = {}
  for _, f in ipairs(FIELDS) do
    if s[f] ~= nil and s[f] ~= false then
      args[#args + 1] = f
      args[#args + 1] = type(s[f]) == 'number' and string.format('%.17g', s[f]) or s[f]
    end
  end
  redis.call('DEL', key)
  if #args > 0 then
    redis.call('HSET', key, unpack(args))
    redis.call('PEXPIRE', key, TTL)
  end
end

-- A tenant's latest answered request: the latest slot any process reported.
local function answered(s, slot)
  if slot and slot > num(s.ok, 0) then s.ok = slot end
end

-- The scope's rate at time t. In slow start it is the rate field, which
-- every slot taken raises (see reserve). Otherwise the rate moves from its restart value to the estimate and probes above it,
-- slowly at first and faster the longer no throttle came.
local function current_rate(s, t, ceiling, initial)
  local rate = num(s.rate, initial)
  local dt = math.max(0, t - num(s.changed, t)) / 1000000
  local est = num(s.est, 0)
  local r
  if est <= 0 then
    r = rate
  else
    local q = math.max(0, dt - num(s.q, QUIET))
    local l = math.max(0, q - LATE)
    r = (est - (est - rate) * math.exp(-dt / RECOVERY) + est * PROBE * dt) * math.exp(math.min(50, ACCEL * q * q / 2 + LATEACCEL * l * l / 2))
  end
  return math.max(MINRATE, math.min(r, ceiling, MAXRATE))
end

-- A scope idle for longer than IDLE starts again from what it learned: the
-- rate from a safe fraction of the estimate, discounted when it is old.
local function resume(s, now)
  if not s.seen or now - tonumber(s.seen) <= IDLE then return end
  local est = num(s.est, 0)
  if est > 0 then
    local keep = RESUMEEST
    if now - tonumber(s.seen) > FRESH then keep = RESUMESTALE end
    s.est = est * keep
    s.rate = s.est * RESUMERATE
  else
    s.rate = nil
  end
  s.changed, s.till, s.n, s.tat = now, nil, 0, nil
  s.pat, s.pest, s.prate, s.pr = nil, nil, nil, nil
end

-- The quiet time before a tenant's next probe after a shared cut: tenants
-- sharing a capacity probe it in turn, not each as often as a capacity of
-- its own, and at random, so that tenants paused together do not probe
-- together (which would look like one capacity again). The clock's
-- microseconds are random enough.
local function shared_quiet(now)
  return QUIET * SHAREDQUIET * (1 - QUIETSPREAD * (now % 1009) / 1009)
end

-- A tenant's cut from a shared event: every tenant cuts what it sent by
-- the factor the shared estimate was cut by, so that together they keep to
-- it (no factor: the source's pause was too short, the rates stay). What
-- it sent is first taken halfway to the mean of the tenants throttled
-- together, so that their shares converge to fair ones.
local function share_cut(s, g, r, from)
  if not g.cf then return end
  local est = math.max(MINRATE, (r + num(g.pm, r)) / 2 * tonumber(g.cf))
  s.est, s.rate, s.changed = est, est, from
  s.q = shared_quiet(num(s.seen, 0))
end

-- A tenant's cut waits COINCIDE after its throttle: if another tenant was
-- throttled with it, the tenants share one capacity and the tenant takes
-- its part of the shared cut; otherwise its own capacity was reached.
local function resolve(s, g, now)
  if not s.pat or now < tonumber(s.pat) + COINCIDE then return end
  local pat = tonumber(s.pat)
  local from = math.max(num(s.till, 0), pat)
  if g.st and tonumber(g.st) >= pat - COINCIDE and tonumber(g.sf) <= pat + COINCIDE then
    share_cut(s, g, num(s.pr, 0), math.max(from, num(g.till, 0)))
  else
    s.est, s.rate, s.changed = s.pest, s.prate, from
  end
  s.pat, s.pest, s.prate, s.pr = nil, nil, nil, nil
end

-- The state a tenant's rate follows: while its cut waits for the scope
-- decision, the cut (the cautious guess).
local function view(s)
  if not s.pat then return s end
  return {rate = s.prate, est = s.pest, q = s.q, changed = math.max(num(s.till, 0), tonumber(s.pat))}
end

-- A scope's slots per second over the last WINDOW (sliding count): a
-- tenant's, or all tenants' for the source.
local function count(g, now)
  if now - num(g.wt, 0) >= WINDOW then
    g.wp = (now - num(g.wt, 0) < 2 * WINDOW) and num(g.wn, 0) or 0
    g.wt, g.wn = now, 0
  end
  g.wn = num(g.wn, 0) + 1
end

local function window_rate(g, now)
  local wt = num(g.wt, now)
  local frac = math.max(0, 1 - (now - wt) / WINDOW)
  return (num(g.wn, 0) + num(g.wp, 0) * frac) / (WINDOW / 1000000)
end

-- A tenant whose last cut was a shared one (its quiet time says so) takes
-- up the shared capacity the tenants leave unused: when all of them
-- together take less than FREED of the shared estimate over a whole window
-- since the last pause (another tenant's run ended), its estimate grows by
-- the unused part, up to the shared estimate, instead of waiting out its
-- quiet time and probing.
local function take_freed(s, g, now, ceiling, initial)
  local shared, est = num(g.est, 0), num(s.est, 0)
  if not s.q or s.pat or shared <= 0 or est <= 0 or est >= shared * PLATEAUCUT then return end
  if now < math.max(num(s.till, 0), num(g.till, 0)) + WINDOW then return end
  local used = window_rate(g, now)
  if used >= FREED * shared then return end
  local grown = math.min(shared, est + shared - used)
  s.rate, s.changed = current_rate(s, now, ceiling, initial), now
  s.est = grown
end

-- The reaction of a scope to a throttle of a request sent at time slot, r
-- being the scope's rate then and ok the latest answered request's slot:
-- it pauses, and unless the pause proved too short it re-estimates the
-- capacity. Returns the pause to apply (us) and, if the rate was too high,
-- the new estimate, at which the rate restarts.
local function react(s, now, slot, r, retry, ok)
  local q = num(s.q, QUIET)
  local pause = num(s.pause, BASEPAUSE)
  local untl = num(s.till, 0)
  local short = num(s.short, 0)
  -- A request sent right after a pause and throttled means the pause was
  -- shorter than the service's penalty, not that the rate was too high;
  -- unless a request sent after the pause was answered: the penalty was
  -- over, and the rate emptied a small burst allowance at once.
  local toolong = untl > 0 and slot < untl + PAUSEFAIL and ok < untl
  if toolong then
    short = math.max(short, pause)
    pause = math.min(pause * PAUSEGROWTH, MAXPAUSE)
  else
    pause = math.max(BASEPAUSE, pause * PAUSEDECAY, short * SHORTMARGIN)
  end
  s.pause, s.short = pause, short
  -- The pause runs from the last request a worker may still send unchecked
  -- (see GUARD), not from this reaction.
  local p = math.max(pause, retry) + GUARD
  s.till = now + p
  s.tat = math.max(num(s.tat, 0), s.till)
  s.epoch = num(s.epoch, 0) + 1
  s.n = 0
  s.q = nil
  if toolong then
    -- The rate stays: it restarts where it was when the pause ends.
    s.rate, s.changed = r, s.till
    return p, nil
  end
  local est = num(s.est, 0)
  if est <= 0 then
    -- Leaving slow start: the rate has just doubled.
    return p, r * SSMARGIN
  end
  local held = math.huge
  if untl > 0 then held = (slot - untl) / 1000000 end
  if held <= q then
    -- The plateau was over the capacity. The shorter it held, the further
    -- over: a rate x times the capacity empties a burst allowance of b
    -- seconds in b/(x-1) seconds.
    local cut = math.max(DEEPEST, math.min(PLATEAUCUT, held / (held + BURST)))
    return p, r * cut
  end
  -- The accelerating probe found the capacity: somewhere between the
  -- plateau, which held, and the rate that throttled.
  return p, math.max(est, r * MARGIN)
end
`

// constants spells the algorithm's constants for Lua from the Go ones.
func constants() string {
	var b strings.Builder
	for _, c := range []struct {
		name  string
		value float64
	}{
		{"DOUBLING", doublingTime.Seconds()},
		{"RECOVERY", recovery.Seconds()},
		{"PROBE", probe},
		{"QUIET", probeQuiet.Seconds()},
		{"QUIETSPREAD", quietSpread},
		{"SHAREDQUIET", sharedQuiet},
		{"ACCEL", probeAcceleration},
		{"LATE", probeLate.Seconds()},
		{"LATEACCEL", lateAcceleration},
		{"MINRATE", minRate},
		{"MAXRATE", maxRate},
		{"BASEPAUSE", float64(firstPause.Microseconds())},
		{"MAXPAUSE", float64(maxPause.Microseconds())},
		{"SHORTMARGIN", shortPauseMargin},
		{"PAUSEFAIL", float64(pauseTooShort.Microseconds())},
		{"GUARD", float64(pauseGuard.Microseconds())},
		{"SSMARGIN", slowStartMargin},
		{"DEEPEST", deepestCut},
		{"BURST", burstGuess.Seconds()},
		{"PLATEAUCUT", plateauCut},
		{"PAUSEGROWTH", pauseGrowth},
		{"PAUSEDECAY", pauseDecay},
		{"MARGIN", margin},
		{"COINCIDE", float64(coincidence.Microseconds())},
		{"EVIDENCE", float64(independent.Microseconds())},
		{"WINDOW", float64(window.Microseconds())},
		{"USEHEADROOM", useHeadroom},
		{"FREED", freed},
		{"LAG", scheduleLag},
		{"IDLE", float64(idleRestart.Microseconds())},
		{"FRESH", float64(fresh.Microseconds())},
		{"RESUMEEST", resumeEstimate},
		{"RESUMESTALE", resumeStale},
		{"RESUMERATE", resumeRate},
		{"TTL", float64(learnedTTL.Milliseconds())},
	} {
		fmt.Fprintf(&b, "local %s = %.17g\n", c.name, c.value)
	}
	return b.String()
}

// reserveScript takes the tenant's next request slot if it is within the
// max wait, on the GCRA schedules of the tenant and, when the operator set
// a global rate, of the source (all tenants together).
//
// Input:
// KEYS[1] -> msaudit:rl:tenant:<tenant>, the tenant's state hash
// KEYS[2] -> msaudit:rl:source, the source's state hash
// ARGV[1] -> the tenant's ceiling (requests/s)
// ARGV[2] -> the global ceiling (requests/s; 0: none)
// ARGV[3] -> max wait (us)
// ARGV[4] -> initial rate (requests/s)
// ARGV[5] -> adaptive (0|1)
// ARGV[6] -> the slot of the tenant's latest answered request this process
// knows (us; 0: none)
//
// Output:
// {1 if a slot was taken else 0, wait (us), rate*1000, tenant epoch,
// source epoch, the slot's time (us)}
var reserveScript = redis.NewScript(prelude + `
local ceiling, grate, maxwait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local initial, adaptive = tonumber(ARGV[4]), ARGV[5] == '1'
local now = now_us()
local s, g = load(KEYS[1]), load(KEYS[2])
answered(s, tonumber(ARGV[6]))
local r, rg = ceiling, nil
if adaptive then
  resume(s, now)
  resume(g, now)
  resolve(s, g, now)
  take_freed(s, g, now, ceiling, initial)
  r = current_rate(view(s), now, ceiling, initial)
  -- The rate grows with use: it runs at most USEHEADROOM ahead of what the
  -- workers took lately (but never below the estimate), so a tenant short
  -- of workers does not probe a rate it never sends, then burst into it.
  if num(s.est, 0) > 0 then
    r = math.min(r, math.max(num(s.est, 0), USEHEADROOM * window_rate(s, now)))
  end
end
if grate > 0 then rg = grate end
-- Each schedule (the tenant's, and the operator's global one) advances from
-- its own last slot (or now, or the end of a pause), not from the slot it
-- was given: a tenant held back by the global schedule keeps its place, and
-- so does the global schedule when a tenant is the slower one. Advancing
-- both from the slot would lose a part of each whenever the two fall out of
-- step.
local paused = math.max(num(s.till, 0), num(g.till, 0), now)
local base = math.max(num(s.tat, 0), paused)
local gbase = math.max(num(g.tat, 0), paused)
local start = base
if rg then start = math.max(base, gbase) end
local wait = start - now
local eff = math.min(r, rg or r)
if wait > maxwait then
  return {0, math.floor(wait - maxwait), math.floor(eff * 1000), num(s.epoch, 0), num(g.epoch, 0), math.floor(start)}
end
-- A schedule keeps at most LAG slots of credit behind the slot it gave:
-- a tenant the global schedule held back may catch up a little, but not
-- burst when the others pause.
s.tat = math.max(base, start - LAG * 1000000 / r) + 1000000 / r
if adaptive and num(s.est, 0) <= 0 and not s.pat then
  -- Slow start grows with use, not with time: DOUBLING seconds of slots
  -- taken at the rate double it, so a rate the workers cannot fill does
  -- not run away from what they send.
  s.rate, s.changed = math.min(ceiling, r * math.pow(2, 1 / (r * DOUBLING))), now
end
s.n, s.seen = num(s.n, 0) + 1, start
if rg then g.tat = math.max(gbase, start - LAG * 1000000 / rg) + 1000000 / rg end
count(s, now)
count(g, now)
g.n, g.seen = num(g.n, 0) + 1, start
save(KEYS[1], s)
save(KEYS[2], g)
return {1, math.floor(wait), math.floor(eff * 1000), num(s.epoch, 0), num(g.epoch, 0), math.floor(start)}
`)

// throttleScript reacts to a throttle signal. A report from a slot given
// before the tenant's or the source's last reaction came from a request
// already in flight then, and is ignored. A report that follows another
// tenant's within the coincidence window means the tenants share one
// capacity: the source reacts (every tenant pauses, the shared rate is
// cut). Otherwise the tenant pauses, and its cut waits for the scope
// decision (see resolve).
//
// Input:
// KEYS[1] -> msaudit:rl:tenant:<tenant>, the tenant's state hash
// KEYS[2] -> msaudit:rl:source, the source's state hash
// ARGV[1] -> the tenant's ceiling (requests/s)
// ARGV[2] -> initial rate (requests/s)
// ARGV[3] -> the service's Retry-After (us)
// ARGV[4] -> the slot's tenant epoch
// ARGV[5] -> the slot's source epoch
// ARGV[6] -> the slot's time (us)
// ARGV[7] -> the tenant's name
// ARGV[8] -> the rate the slot was paced at (requests/s)
// ARGV[9] -> the slot of the tenant's latest answered request this process
// knows (us; 0: none)
//
// Output:
// {the pause in force (us), 1 if every tenant pauses else 0}
var throttleScript = redis.NewScript(prelude + `
local ceiling, initial, retry = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local epoch, gepoch, slot, tenant = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local paced = tonumber(ARGV[8])
local now = now_us()
local s, g = load(KEYS[1]), load(KEYS[2])
answered(s, tonumber(ARGV[9]))
resolve(s, g, now)
local left = math.max(0, num(s.till, 0) - now, num(g.till, 0) - now)
if epoch < num(s.epoch, 0) or gepoch < num(g.epoch, 0) then
  save(KEYS[1], s)
  return {math.floor(left), 0}
end
-- Two tenants throttled together share a capacity, unless one of them was
-- answered for a request sent clearly after the other's throttled one: a
-- shared capacity, once exceeded, throttles every tenant's requests.
local coincide = g.lt and g.lt ~= tenant and now - num(g.la, 0) < COINCIDE
  and num(s.ok, 0) <= num(g.ls, 0) + EVIDENCE and num(g.lo, 0) <= slot + EVIDENCE
local first, other = num(g.la, now), num(g.lr, 0)
g.lt, g.la, g.lr, g.ls, g.lo = tenant, now, paced, slot, num(s.ok, 0)
if coincide then
  -- What all tenants sent: the two reports' rates, or the sliding count
  -- when more tenants were sending.
  local r = math.max(window_rate(g, now), paced + other)
  local p, est = react(g, now, slot, r, retry, num(s.ok, 0))
  g.cf = nil
  if est then
    g.est = math.max(MINRATE, est)
    g.rate, g.changed = g.est, g.till
    g.cf = math.min(PLATEAUCUT, est / r)
  end
  g.pm = (paced + other) / 2
  g.sf = (g.st and now - tonumber(g.st) < COINCIDE) and tonumber(g.sf) or first
  g.st = now
  -- This tenant takes its part of the cut now; the one that reported first
  -- takes it when its own cut resolves.
  share_cut(s, g, math.min(current_rate(view(s), slot, ceiling, initial), paced), g.till)
  s.pat, s.pest, s.prate, s.pr = nil, nil, nil, nil
  save(KEYS[1], s)
  save(KEYS[2], g)
  return {math.floor(p), 1}
end
local r = math.min(current_rate(s, slot, ceiling, initial), paced)
local p, est = react(s, now, slot, r, retry, num(s.ok, 0))
if est then
  est = math.max(MINRATE, est)
  s.pat, s.pest, s.prate, s.pr = now, est, est, r
end
save(KEYS[1], s)
save(KEYS[2], g)
return {math.floor(p), 0}
`)

// staleScript tells whether a slot was given before a throttle reaction of
// its tenant or of the source.
//
// Input:
// KEYS[1] -> msaudit:rl:tenant:<tenant>, the tenant's state hash
// KEYS[2] -> msaudit:rl:source, the source's state hash
// ARGV[1] -> the slot's tenant epoch
// ARGV[2] -> the slot's source epoch
//
// Output:
// -1 if the slot is still good
// else how long (us) the pause in force lasts (0 if it is already over)
var staleScript = redis.NewScript(prelude + `
local v = redis.call('HMGET', KEYS[1], 'epoch', 'till')
local w = redis.call('HMGET', KEYS[2], 'epoch', 'till')
if num(v[1], 0) <= tonumber(ARGV[1]) and num(w[1], 0) <= tonumber(ARGV[2]) then return -1 end
local now = now_us()
return math.floor(math.max(0, num(v[2], 0) - now, num(w[2], 0) - now))
`)

// rateScript reads the rate the tenant's next slot would be paced at,
// without taking a slot or changing anything (the autoscaler reads it), and
// the source's learned shared rate.
//
// Input:
// KEYS[1] -> msaudit:rl:tenant:<tenant>, the tenant's state hash
// KEYS[2] -> msaudit:rl:source, the source's state hash
// ARGV[1] -> the tenant's ceiling (requests/s)
// ARGV[2] -> initial rate (requests/s)
//
// Output:
// {the tenant's rate*1000, the shared rate*1000 (0: none learned)}
var rateScript = redis.NewScript(prelude + `
local ceiling, initial = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_us()
local s, g = load(KEYS[1]), load(KEYS[2])
resume(s, now)
resume(g, now)
resolve(s, g, now)
local shared, r = 0, current_rate(view(s), now, ceiling, initial)
if num(g.est, 0) > 0 then shared = current_rate(g, now, MAXRATE, initial) end
return {math.floor(1000 * r), math.floor(1000 * shared)}
`)
