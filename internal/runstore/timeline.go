package runstore

import (
	"sort"
	"strconv"
	"strings"
	"time"
)

// The run hash keeps two small series next to the counters, written by the
// same script that records answers, so they expire, persist and purge with
// the run and cost no extra round trip:
//
//   - the chart: tl:<i> = "done,requests,throttles" for bucket i of tl_width
//     minutes from minute tl_base. When a run outlasts chartBuckets buckets,
//     neighbouring buckets are merged and the width doubles, so a run of any
//     length keeps at most chartBuckets of them;
//   - the recent minutes: rm:<m mod recentSlots> = "m,done" for unix minute
//     m, a ring that status reads for the rate of the last minutes, which
//     after a pause or a throttle episode says more than the run's average.
const (
	chartBuckets = 240
	recentSlots  = 10
)

// timelineLua defines tick(now, done, requests, throttles), which adds one
// recording's counts to the run's counters, chart and recent minutes.
// KEYS[1] is the run hash.
var timelineLua = `
local function tick(now, done, reqs, thr)
  if reqs == 0 then return end
  redis.call('HINCRBY', KEYS[1], {fieldRequests}, reqs)
  if thr > 0 then redis.call('HINCRBY', KEYS[1], {fieldThrottles}, thr) end
  local minute = math.floor(now / 60000)
  local slot = {fieldRecentPrefix} .. (minute % ` + strconv.Itoa(recentSlots) + `)
  local m, c = string.match(redis.call('HGET', KEYS[1], slot) or '', '^(%d+),(%d+)$')
  if tonumber(m) ~= minute then c = 0 end
  redis.call('HSET', KEYS[1], slot, minute .. ',' .. (tonumber(c) + done))

  local maxb = ` + strconv.Itoa(chartBuckets) + `
  local base = tonumber(redis.call('HGET', KEYS[1], {fieldChartBase}))
  if not base then
    base = minute
    redis.call('HSET', KEYS[1], {fieldChartBase}, base, {fieldChartWidth}, 1)
  end
  local width = tonumber(redis.call('HGET', KEYS[1], {fieldChartWidth})) or 1
  local function get(i)
    local d, r, t = string.match(redis.call('HGET', KEYS[1], {fieldChartPrefix} .. i) or '', '^(%d+),(%d+),(%d+)$')
    return tonumber(d) or 0, tonumber(r) or 0, tonumber(t) or 0
  end
  local idx = math.floor((minute - base) / width)
  while idx >= maxb do
    for j = 0, maxb / 2 - 1 do
      local d1, r1, t1 = get(2 * j)
      local d2, r2, t2 = get(2 * j + 1)
      redis.call('HSET', KEYS[1], {fieldChartPrefix} .. j, (d1 + d2) .. ',' .. (r1 + r2) .. ',' .. (t1 + t2))
    end
    for j = maxb / 2, maxb - 1 do redis.call('HDEL', KEYS[1], {fieldChartPrefix} .. j) end
    width = width * 2
    redis.call('HSET', KEYS[1], {fieldChartWidth}, width)
    idx = math.floor((minute - base) / width)
  end
  if idx < 0 then idx = 0 end
  local d, r, t = get(idx)
  redis.call('HSET', KEYS[1], {fieldChartPrefix} .. idx, (d + done) .. ',' .. (r + reqs) .. ',' .. (t + thr))
end
`

// Bucket is one interval of a run's chart.
type Bucket struct {
	Start     time.Time
	Done      int64 // addresses that became final (present, absent, dead)
	Requests  int64 // realm requests recorded
	Throttles int64 // of which throttled
}

// Chart is a run's activity over time, in buckets of equal width.
type Chart struct {
	Width   time.Duration
	Buckets []Bucket // in time order, gaps filled with empty buckets
}

// parseChart reads the chart fields of a run hash.
func parseChart(m map[string]string) Chart {
	base, ok := m[fieldChartBase]
	if !ok {
		return Chart{}
	}
	width := max(atoi(m[fieldChartWidth]), 1)
	c := Chart{Width: time.Duration(width) * time.Minute}
	start := time.Unix(atoi(base)*60, 0).UTC()
	last := -1
	vals := make(map[int][3]int64)
	for f, v := range m {
		i, err := strconv.Atoi(strings.TrimPrefix(f, fieldChartPrefix))
		if !strings.HasPrefix(f, fieldChartPrefix) || err != nil || i < 0 || i >= chartBuckets {
			continue
		}
		p := strings.Split(v, ",")
		if len(p) != 3 {
			continue
		}
		vals[i] = [3]int64{atoi(p[0]), atoi(p[1]), atoi(p[2])}
		last = max(last, i)
	}
	for i := 0; i <= last; i++ {
		v := vals[i]
		c.Buckets = append(c.Buckets, Bucket{Start: start.Add(time.Duration(i) * c.Width), Done: v[0], Requests: v[1], Throttles: v[2]})
	}
	return c
}

// Minute is the number of addresses that became final in one minute.
type Minute struct {
	Start time.Time
	Done  int64
}

// parseRecent reads the recent-minutes ring of a run hash, oldest first.
func parseRecent(m map[string]string) []Minute {
	var out []Minute
	for i := 0; i < recentSlots; i++ {
		v, ok := m[fieldRecentPrefix+strconv.Itoa(i)]
		if !ok {
			continue
		}
		mi, d, ok := strings.Cut(v, ",")
		if !ok {
			continue
		}
		out = append(out, Minute{Start: time.Unix(atoi(mi)*60, 0).UTC(), Done: atoi(d)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// RecentRate is how many addresses a second became final over the window
// before now (whole minutes, the current one included), counted from the
// run's first check if that is later. It is 0 while the run is paused,
// and when nothing was recorded in the window.
func (r *Run) RecentRate(now time.Time, window time.Duration) float64 {
	if r.Paused || r.FirstCheckAt.IsZero() {
		return 0
	}
	from := now.Truncate(time.Minute).Add(-window + time.Minute)
	if r.FirstCheckAt.After(from) {
		from = r.FirstCheckAt
	}
	var n int64
	for _, m := range r.Recent {
		if m.Start.Add(time.Minute).After(from) && !m.Start.After(now) {
			n += m.Done
		}
	}
	secs := now.Sub(from).Seconds()
	if n == 0 || secs <= 0 {
		return 0
	}
	return float64(n) / max(secs, 1)
}
