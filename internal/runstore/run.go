package runstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrRunNotFound is returned for an unknown (or purged, or expired) run ID.
var ErrRunNotFound = errors.New("run not found")

// RunState is where a run stands, as status reports it. It is derived from
// the run record (Run.State), never stored.
type RunState string

// The run states.
const (
	StateEnumerating RunState = "enumerating" // a submit is adding addresses
	StateIncomplete  RunState = "incomplete"  // a submit stopped before the end; resume with --run-id
	StateRunning     RunState = "running"     // all addresses queued, some not final
	StateCompleted   RunState = "completed"   // every address present, absent or dead
	StateCancelled   RunState = "cancelled"
	StatePaused      RunState = "paused" // workers send none of its requests until resumed
)

// Run is the record of one audit run.
type Run struct {
	ID        string
	TenantID  string
	Source    string // "graph" or "file"
	Options   string // JSON of the submit options, for the report and resumes
	Retention time.Duration
	Lane      int // the queue lane of the run's batches (tasks.LaneQueue)
	// RecheckOf is the run whose present addresses this run checks again
	// (submit --recheck); empty for other runs.
	RecheckOf string
	// Since is the run whose absent answers this run reuses rather than
	// asks again (submit --since); empty for other runs.
	Since string

	AddressesTotal int64
	UsersTotal     int64
	Batches        int64
	Checked        int64
	Present        int64
	Absent         int64
	FailedPending  int64
	DeadLettered   int64
	Reused         int64 // of Checked and Absent: answers taken from Since, not asked

	UsersSeen int64 // users read so far by the submit under way
	Requests  int64 // realm requests recorded
	Throttles int64 // of which the service throttled
	// TenantRate is the tenant's rate limit, requests/s, as of
	// TenantRateAt, the last time a worker recorded an answer of the run.
	TenantRate   float64
	TenantRateAt time.Time

	Enumerated bool
	Cancelled  bool
	Paused     bool
	Submitting bool // the submit lock is held
	LastError  string

	CreatedAt             time.Time
	EnumerationStartedAt  time.Time
	EnumerationFinishedAt time.Time
	FirstCheckAt          time.Time
	CompletedAt           time.Time
	PausedAt              time.Time
	UpdatedAt             time.Time
	// StalledAt is when the run was found stalled (MarkStalled); zero once
	// an answer recovers it.
	StalledAt time.Time

	Chart  Chart    // activity over time, for the report
	Recent []Minute // the last minutes, for the recent rate
}

// State derives the run's state from its record.
func (r *Run) State() RunState {
	switch {
	case r.Cancelled:
		return StateCancelled
	case !r.CompletedAt.IsZero():
		return StateCompleted
	case r.Paused:
		return StatePaused
	case r.Enumerated:
		return StateRunning
	case r.Submitting:
		return StateEnumerating
	default:
		return StateIncomplete
	}
}

// NewRunID returns a sortable, unguessable run ID such as
// 20261122T001652Z-3f9a1c.
func NewRunID(now time.Time) string {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// CreateRun writes a new run record; it fails if the ID exists.
func (s *Store) CreateRun(ctx context.Context, r *Run, now time.Time) error {
	k := runKeys(r.ID)
	ok, err := s.rdb.HSetNX(ctx, k.run, fieldTenantID, r.TenantID).Result()
	if err != nil {
		return fmt.Errorf("create run: %w", err)
	}
	if !ok {
		return fmt.Errorf("create run %s: it already exists", r.ID)
	}
	ms := strconv.FormatInt(now.UnixMilli(), 10)
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, k.run, fieldSource, r.Source, fieldOptions, r.Options, fieldLane, r.Lane,
			fieldRetention, int64(r.Retention/time.Second), fieldCreatedAt, ms, fieldUpdatedAt, ms, fieldBuckets, defaultBuckets,
			fieldAddressesTotal, 0, fieldChecked, 0, fieldPresent, 0, fieldAbsent, 0, fieldFailedPending, 0, fieldDead, 0, fieldBatches, 0)
		if r.RecheckOf != "" {
			p.HSet(ctx, k.run, fieldRecheckOf, r.RecheckOf)
		}
		if r.Since != "" {
			p.HSet(ctx, k.run, fieldSince, r.Since, fieldReused, 0)
		}
		p.ZAdd(ctx, runsKey, redis.Z{Score: float64(now.UnixMilli()), Member: r.ID})
		p.ZAdd(ctx, OpenRunsKey, redis.Z{Score: float64(now.UnixMilli()), Member: r.ID})
		return nil
	})
	if err != nil {
		return fmt.Errorf("create run: %w", err)
	}
	return nil
}

// GetRun loads a run record.
func (s *Store) GetRun(ctx context.Context, id string) (*Run, error) {
	k := runKeys(id)
	var h *redis.MapStringStringCmd
	var lock *redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		h = p.HGetAll(ctx, k.run)
		lock = p.Exists(ctx, k.lock)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load run %s: %w", id, err)
	}
	m := h.Val()
	if len(m) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrRunNotFound, id)
	}
	r := &Run{
		ID: id, TenantID: m[fieldTenantID], Source: m[fieldSource], Options: m[fieldOptions],
		Retention: time.Duration(atoi(m[fieldRetention])) * time.Second,
		Lane:      int(atoi(m[fieldLane])), RecheckOf: m[fieldRecheckOf], Since: m[fieldSince], Reused: atoi(m[fieldReused]),
		UsersSeen: atoi(m[fieldUsersSeen]), Requests: atoi(m[fieldRequests]), Throttles: atoi(m[fieldThrottles]),
		TenantRate: atof(m[fieldTenantRate]), TenantRateAt: msTime(m[fieldTenantRateAt]), Paused: m[fieldPaused] == "1",
		PausedAt: msTime(m[fieldPausedAt]), Chart: parseChart(m), Recent: parseRecent(m),
		AddressesTotal: atoi(m[fieldAddressesTotal]), UsersTotal: atoi(m[fieldUsersTotal]),
		Batches: atoi(m[fieldBatches]), Checked: atoi(m[fieldChecked]), Present: atoi(m[fieldPresent]),
		Absent: atoi(m[fieldAbsent]), FailedPending: atoi(m[fieldFailedPending]), DeadLettered: atoi(m[fieldDead]),
		Enumerated: m[fieldEnumerated] == "1", Cancelled: m[fieldCancelled] == "1", LastError: m[fieldLastError],
		Submitting:            lock.Val() == 1,
		CreatedAt:             msTime(m[fieldCreatedAt]),
		EnumerationStartedAt:  msTime(m[fieldEnumerationStartedAt]),
		EnumerationFinishedAt: msTime(m[fieldEnumerationFinishedAt]),
		FirstCheckAt:          msTime(m[fieldFirstCheckAt]),
		CompletedAt:           msTime(m[fieldCompletedAt]),
		UpdatedAt:             msTime(m[fieldUpdatedAt]),
		StalledAt:             msTime(m[fieldStalledAt]),
	}
	return r, nil
}

// ListRuns returns the runs, newest first.
func (s *Store) ListRuns(ctx context.Context) ([]*Run, error) {
	ids, err := s.rdb.ZRevRange(ctx, runsKey, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return s.loadRuns(ctx, runsKey, ids)
}

// OpenRuns returns the runs not yet completed or cancelled, oldest first.
func (s *Store) OpenRuns(ctx context.Context) ([]*Run, error) {
	ids, err := s.rdb.ZRange(ctx, OpenRunsKey, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list open runs: %w", err)
	}
	return s.loadRuns(ctx, OpenRunsKey, ids)
}

// loadRuns loads the runs ids of the index, and forgets there the ones whose
// data is gone (expired by retention).
func (s *Store) loadRuns(ctx context.Context, index string, ids []string) ([]*Run, error) {
	runs := make([]*Run, 0, len(ids))
	for _, id := range ids {
		r, err := s.GetRun(ctx, id)
		if errors.Is(err, ErrRunNotFound) {
			s.rdb.ZRem(ctx, index, id)
			continue
		}
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return runs, nil
}

// cancelScript marks the run cancelled, recording run.cancelled the first
// time.
//
// Input:
// KEYS[1] -> msaudit:run:<id>
// ARGV[1] -> now (unix ms)
//
// Output:
// 1 if it was not cancelled yet, else 0
var cancelScript = script(eventLua + `
redis.call('HSET', KEYS[1], {fieldUpdatedAt}, ARGV[1])
if redis.call('HGET', KEYS[1], {fieldCancelled}) == '1' then return 0 end
redis.call('HSET', KEYS[1], {fieldCancelled}, 1)
add_event({EventCancelled}, ARGV[1])
return 1
`)

// Cancel marks a run cancelled: workers drop its remaining tasks.
func (s *Store) Cancel(ctx context.Context, id string) error {
	r, err := s.GetRun(ctx, id)
	if err != nil {
		return err
	}
	k, err := s.keysOf(ctx, id)
	all := k.all()
	if errors.Is(err, ErrOldLayout) {
		all = append(k.data(), k.legacy()...)
	} else if err != nil {
		return fmt.Errorf("cancel run %s: %w", id, err)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		cancelScript.Eval(ctx, p, []string{k.run}, time.Now().UnixMilli())
		p.ZRem(ctx, OpenRunsKey, id)
		// What it found is personal data like any run's: it expires after
		// the retention from now.
		if r.Retention > 0 {
			for _, key := range all {
				p.Expire(ctx, key, r.Retention)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cancel run %s: %w", id, err)
	}
	return nil
}

// Purge deletes everything stored about a run. Tasks still queued for it are
// dropped by workers when they find no run.
func (s *Store) Purge(ctx context.Context, id string) error {
	if _, err := s.GetRun(ctx, id); err != nil {
		return err
	}
	k, err := s.keysOf(ctx, id)
	if err != nil && !errors.Is(err, ErrOldLayout) {
		return fmt.Errorf("purge run %s: %w", id, err)
	}
	if k.buckets == 0 {
		// Half created, or of ErrOldLayout: delete what the default
		// bucket count names, and the keys of the old layout.
		k.buckets = defaultBuckets
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, append(append(k.all(), k.legacy()...), k.lock)...)
		p.ZRem(ctx, runsKey, id)
		p.ZRem(ctx, OpenRunsKey, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("purge run %s: %w", id, err)
	}
	s.buckets.Delete(id)
	return nil
}

func atof(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

func msTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	return time.UnixMilli(atoi(s)).UTC()
}
