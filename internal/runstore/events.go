package runstore

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// EventType is the kind of a run event.
type EventType string

// The run events. Each is recorded by the script that makes its transition,
// in the same step, so that no crash between the two can lose it.
const (
	EventSubmitted EventType = "run.submitted" // the enumeration finished: every address is queued
	EventCompleted EventType = "run.completed" // every address is final
	EventCancelled EventType = "run.cancelled"
	EventPaused    EventType = "run.paused"
	EventResumed   EventType = "run.resumed"
	EventStalled   EventType = "run.stalled"   // open, not paused, no new final answer for a while
	EventRecovered EventType = "run.recovered" // a final answer after a stall
)

// eventLua defines add_event(type, now), which appends an event to the
// outbox of the run of KEYS[1].
var eventLua = `
local function add_event(t, now)
  local n = redis.call('HINCRBY', KEYS[1], {fieldEvents}, 1)
  redis.call('HSET', KEYS[1], {fieldEventPrefix} .. n, t .. ' ' .. now)
end
`

// Event is one event of a run.
type Event struct {
	Seq         int // 1, 2, … in the order of the run's transitions
	Type        EventType
	At          time.Time
	DeliveredAt time.Time // zero until delivered
}

// EventID is the ID of the run's event seq: the same on every delivery, so
// that a receiver can drop a redelivery.
func EventID(runID string, seq int) string { return runID + "." + strconv.Itoa(seq) }

// Outbox is a run's events and how their delivery stands. Events are
// delivered in order: the first Delivered are, the next one is tried.
type Outbox struct {
	RunID     string
	Events    []Event
	Delivered int
	// Of the next event: the failed deliveries, when it is tried again,
	// and why the last one failed.
	Attempts  int
	NextAt    time.Time
	LastError string
}

// Next returns the event to deliver next, if any.
func (o Outbox) Next() (Event, bool) {
	if o.Delivered >= len(o.Events) {
		return Event{}, false
	}
	return o.Events[o.Delivered], true
}

// Events returns the run's outbox.
func (s *Store) Events(ctx context.Context, runID string) (Outbox, error) {
	m, err := s.rdb.HGetAll(ctx, runKeys(runID).run).Result()
	if err != nil {
		return Outbox{}, fmt.Errorf("load run %s: %w", runID, err)
	}
	if len(m) == 0 {
		return Outbox{}, fmt.Errorf("%w: %s", ErrRunNotFound, runID)
	}
	return outboxOf(runID, m)
}

func outboxOf(runID string, m map[string]string) (Outbox, error) {
	o := Outbox{RunID: runID, Delivered: int(atoi(m[fieldDelivered])), Attempts: int(atoi(m[fieldEventAttempts])),
		NextAt: msTime(m[fieldEventNextAt]), LastError: m[fieldEventError]}
	n := int(atoi(m[fieldEvents]))
	for i := 1; i <= n; i++ {
		typ, at, ok := strings.Cut(m[fieldEventPrefix+strconv.Itoa(i)], " ")
		if !ok {
			return Outbox{}, fmt.Errorf("run %s: event %d is missing or malformed", runID, i)
		}
		o.Events = append(o.Events, Event{Seq: i, Type: EventType(typ), At: msTime(at), DeliveredAt: msTime(m[fieldDeliveredPrefix+strconv.Itoa(i)])})
	}
	return o, nil
}

// Undelivered returns the outboxes of the kept runs with an event to
// deliver, oldest run first, and how many events wait in all.
func (s *Store) Undelivered(ctx context.Context) ([]Outbox, int, error) {
	ids, err := s.rdb.ZRange(ctx, runsKey, 0, -1).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("list runs: %w", err)
	}
	counts := make([]*redis.SliceCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			counts[i] = p.HMGet(ctx, runKeys(id).run, fieldEvents, fieldDelivered)
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list run events: %w", err)
	}
	var out []Outbox
	waiting := 0
	for i, c := range counts {
		v := c.Val()
		n, _ := v[0].(string)
		d, _ := v[1].(string)
		if atoi(n) <= atoi(d) {
			continue
		}
		o, err := s.Events(ctx, ids[i])
		if err != nil {
			continue // purged or expired since
		}
		waiting += len(o.Events) - o.Delivered
		out = append(out, o)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].RunID < out[j].RunID })
	return out, waiting, nil
}

// deliveredScript marks event seq of the run delivered, if it is the next
// one (a delivery that lost its lease may report late).
//
// Input:
// KEYS[1] -> msaudit:run:<id>
// ARGV[1] -> seq
// ARGV[2] -> now (unix ms)
//
// Output:
// 1 if marked, else 0
var deliveredScript = script(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local d = tonumber(redis.call('HGET', KEYS[1], {fieldDelivered}) or 0)
if d + 1 ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], {fieldDelivered}, d + 1, {fieldDeliveredPrefix} .. ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[1], {fieldEventAttempts}, {fieldEventNextAt}, {fieldEventError})
return 1
`)

// failedScript notes a failed delivery of event seq of the run, if it is
// still the next one.
//
// Input:
// KEYS[1] -> msaudit:run:<id>
// ARGV[1] -> seq
// ARGV[2] -> when to try again (unix ms)
// ARGV[3] -> why it failed
//
// Output:
// the failed deliveries of the event so far
// 0 if it was not the next one
var failedScript = script(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local d = tonumber(redis.call('HGET', KEYS[1], {fieldDelivered}) or 0)
if d + 1 ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], {fieldEventNextAt}, ARGV[2], {fieldEventError}, ARGV[3])
return redis.call('HINCRBY', KEYS[1], {fieldEventAttempts}, 1)
`)

// MarkDelivered records that event seq of the run was delivered at now.
func (s *Store) MarkDelivered(ctx context.Context, runID string, seq int, now time.Time) error {
	if err := deliveredScript.Run(ctx, s.rdb, []string{runKeys(runID).run}, seq, now.UnixMilli()).Err(); err != nil {
		return fmt.Errorf("mark event delivered: %w", err)
	}
	return nil
}

// DeliveryFailed records that a delivery of event seq of the run failed
// with reason, and that it is tried again at next.
func (s *Store) DeliveryFailed(ctx context.Context, runID string, seq int, next time.Time, reason string) error {
	if err := failedScript.Run(ctx, s.rdb, []string{runKeys(runID).run}, seq, next.UnixMilli(), reason).Err(); err != nil {
		return fmt.Errorf("note a failed delivery: %w", err)
	}
	return nil
}

// stallScript marks the run stalled and records run.stalled, if it is open,
// not paused, not stalled already, and no final answer, resume or creation
// happened in the last stall-after.
//
// Input:
// KEYS[1] -> msaudit:run:<id>
// ARGV[1] -> now (unix ms)
// ARGV[2] -> stall after (ms)
//
// Output:
// 1 if it marked the run stalled, else 0
var stallScript = script(eventLua + `
local h = redis.call('HMGET', KEYS[1], {fieldTenantID}, {fieldCompletedAt}, {fieldCancelled}, {fieldPaused}, {fieldStalledAt},
  {fieldAnsweredAt}, {fieldResumedAt}, {fieldCreatedAt})
if not h[1] or h[2] or h[3] == '1' or h[4] == '1' or h[5] then return 0 end
local now = tonumber(ARGV[1])
local last = math.max(tonumber(h[6] or 0), tonumber(h[7] or 0), tonumber(h[8] or 0))
if now - last < tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], {fieldStalledAt}, ARGV[1])
add_event({EventStalled}, ARGV[1])
return 1
`)

// MarkStalled marks the run stalled if it made no progress for after: it
// is open and not paused, and its last final answer, resume or creation is
// older. It reports whether it did; a run stalled already is not marked
// again until an answer recovers it.
func (s *Store) MarkStalled(ctx context.Context, runID string, now time.Time, after time.Duration) (bool, error) {
	n, err := stallScript.Run(ctx, s.rdb, []string{runKeys(runID).run}, now.UnixMilli(), after.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("mark run %s stalled: %w", runID, err)
	}
	return n == 1, nil
}
