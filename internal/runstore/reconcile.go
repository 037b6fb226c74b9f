package runstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Counters are a run's counts of addresses by state.
type Counters struct {
	Total         int64 `json:"addresses_total"`
	Checked       int64 `json:"checked"`
	Present       int64 `json:"present"`
	Absent        int64 `json:"absent"`
	Dead          int64 `json:"dead_lettered"`
	FailedPending int64 `json:"failed_pending"`
}

func (r *Run) counters() Counters {
	return Counters{Total: r.AddressesTotal, Checked: r.Checked, Present: r.Present, Absent: r.Absent,
		Dead: r.DeadLettered, FailedPending: r.FailedPending}
}

// recountScript recomputes a run's counters from its address states, so
// that after a Redis failure that lost or mixed writes they agree with what
// the report lists again, and completes the run if every address is final.
// It reads every state bucket, which it names as bucketsLua does: an
// operator's repair (or a stalled run's), not a hot path.
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
//
// Output:
// the counters after: total, checked, present, absent, dead, failed pending
var recountScript = script(completeLua + stateLua + `
local n = {[{storedPresent}] = 0, [{storedAbsent}] = 0, [{storedDead}] = 0, [{storedPending}] = 0}
local failed = 0
local buckets = tonumber(redis.call('HGET', KEYS[1], {fieldBuckets}) or 0)
for i = 0, buckets - 1 do
  local vals = redis.call('HVALS', KEYS[1] .. ':' .. {famState} .. ':' .. i)
  for j = 1, #vals do
    local st, a = parse(vals[j])
    n[st] = (n[st] or 0) + 1
    if st == {storedPending} and a > 0 then failed = failed + 1 end
  end
end
local present, absent, dead = n[{storedPresent}], n[{storedAbsent}], n[{storedDead}]
local total = present + absent + dead + n[{storedPending}]
redis.call('HSET', KEYS[1], {fieldAddressesTotal}, total, {fieldChecked}, present + absent, {fieldPresent}, present,
  {fieldAbsent}, absent, {fieldDead}, dead, {fieldFailedPending}, failed)
maybe_complete(ARGV[1])
return {total, present + absent, present, absent, dead, failed}
`)

// Recount recomputes the run's counters from its address states in one
// atomic step and returns them before and after.
func (s *Store) Recount(ctx context.Context, runID string, now time.Time) (before, after Counters, err error) {
	r, err := s.GetRun(ctx, runID)
	if err != nil {
		return before, after, err
	}
	v, err := recountScript.Run(ctx, s.rdb, runKeys(runID).scripted(), now.UnixMilli()).Int64Slice()
	if err != nil || len(v) != 6 {
		return before, after, fmt.Errorf("recount run %s: %v", runID, err)
	}
	after = Counters{Total: v[0], Checked: v[1], Present: v[2], Absent: v[3], Dead: v[4], FailedPending: v[5]}
	return r.counters(), after, nil
}

// PendingAddresses returns the run's addresses that still need a check.
func (s *Store) PendingAddresses(ctx context.Context, runID string) (map[string]bool, error) {
	k, err := s.keysOf(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("list pending addresses: %w", err)
	}
	out := make(map[string]bool)
	err = s.eachBucket(ctx, k, famState, func(a, v string) {
		if strings.HasPrefix(v, storedPending) {
			out[a] = true
		}
	})
	if err != nil {
		return nil, fmt.Errorf("list pending addresses: %w", err)
	}
	return out, nil
}

// AddBatches stores new batches of a run as unsent, for the submitter to
// enqueue (a crash in between loses nothing: the next flush sends them).
func (s *Store) AddBatches(ctx context.Context, runID string, batches map[int][]byte) error {
	if len(batches) == 0 {
		return nil
	}
	fields := make([]any, 0, 2*len(batches))
	for n, p := range batches {
		fields = append(fields, strconv.Itoa(n), p)
	}
	if err := s.rdb.HSet(ctx, runKeys(runID).unsent, fields...).Err(); err != nil {
		return fmt.Errorf("store batches: %w", err)
	}
	return nil
}

// Exists reports whether the run is still stored (not purged, not expired).
func (s *Store) Exists(ctx context.Context, runID string) (bool, error) {
	n, err := s.rdb.Exists(ctx, runKeys(runID).run).Result()
	if err != nil {
		return false, fmt.Errorf("look up run %s: %w", runID, err)
	}
	return n == 1, nil
}
