// Package failover notices that the Redis every process shares restarted,
// failed over to another server or was rolled back to an older copy, and
// keeps in that Redis the record the workers share of it: how many
// failovers were noticed, when the last one was, and whether the open runs
// have been reconciled since.
//
// After a failover, work that was in flight may still acknowledge its task
// on the new Redis, and an acknowledgement removes the task although the
// failover erased answers it recorded: those addresses are then pending
// with no task to carry them. A reconcile repairs that only once no such
// acknowledgement can come any more, which is what Settle bounds: workers
// that noticed the failover check a batch again before they acknowledge it
// (package checker), and a worker that did not reach Redis for asynq's
// lease time holds no lease to acknowledge with.
package failover

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// The keys of this package.
const (
	// markerKey is a counter every watch increments at each look: a copy
	// restored in place, by the same server process, is older than the
	// count a watch saw last.
	markerKey = "msaudit:redis:marker"
	// recordKey is the shared record, a hash of the fields below.
	recordKey = "msaudit:failover"
	// lockKey is held by the one worker that reconciles the open runs
	// after a failover.
	lockKey = "msaudit:failover:lock"
)

// The record's fields.
const (
	fieldEpoch      = "epoch"      // failovers noticed so far
	fieldNoticedAt  = "noticed_at" // unix ms the last one was first noticed
	fieldReconciled = "reconciled" // the last epoch after which every open run was reconciled
)

// CheckEvery is how often a worker's watch looks at Redis.
const CheckEvery = time.Second

// taskLease is how long asynq (v0.26) leases a running task to its worker;
// the worker renews it every few seconds while the task runs, and
// acknowledges nothing once its lease ran out unrenewed.
const taskLease = 30 * time.Second

// Settle is how long after a failover is first noticed a late
// acknowledgement of work that was in flight then may still land: a worker
// that reached the new Redis notices within a few looks (CheckEvery) and
// then acknowledges no batch without checking it again; one that did not
// reach it holds leases that run out within taskLease. The rest is margin.
const Settle = taskLease + 10*time.Second

// Record is the shared record of the failovers noticed.
type Record struct {
	Epoch      int64     // failovers noticed so far
	NoticedAt  time.Time // when the last was first noticed (zero: none)
	Reconciled int64     // the last epoch after which every open run was reconciled
}

// Due reports whether the open runs are to be reconciled now: a failover
// was noticed since the last such reconcile, at least settle ago.
func (r Record) Due(now time.Time, settle time.Duration) bool {
	return r.Epoch > r.Reconciled && !now.Before(r.NoticedAt.Add(settle))
}

// Watch notices failovers for one process: every look reads the server's
// run_id (a new one for every server process: a restart, or a replica
// promoted), increments the marker (a count that went back means writes
// were lost: a copy restored in place) and reads the record (another
// process noticed one). It is used by one goroutine; Failovers may be
// called from any.
type Watch struct {
	rdb redis.UniversalClient
	log *zap.Logger

	failovers atomic.Uint64

	known    bool   // a look succeeded before
	runID    string // the server's run_id at the last look
	marker   int64  // the marker's count at the last look
	epoch    int64  // the record's epoch at the last look
	announce bool   // a failover noticed here is not in the record yet
}

// NewWatch returns a watch over rdb.
func NewWatch(rdb redis.UniversalClient, log *zap.Logger) *Watch {
	return &Watch{rdb: rdb, log: log}
}

// Failovers is how many failovers this watch noticed.
func (w *Watch) Failovers() uint64 { return w.failovers.Load() }

// Check looks once, in one round trip (two when it announces a failover),
// and returns the record. The first look of a watch notices nothing: it
// learns what the next looks compare with.
func (w *Watch) Check(ctx context.Context, now time.Time) (Record, error) {
	pipe := w.rdb.Pipeline()
	info := pipe.Info(ctx, "server")
	marker := pipe.Incr(ctx, markerKey) // refused while Redis is out of memory: then unused
	fields := pipe.HMGet(ctx, recordKey, fieldEpoch, fieldNoticedAt, fieldReconciled)
	_, _ = pipe.Exec(ctx)
	if err := fields.Err(); err != nil {
		return Record{}, fmt.Errorf("look for a Redis failover: %w", err)
	}
	// INFO is a "dangerous" command an ACL may refuse: then the marker
	// and the record are what notices a failover.
	runID := infoField(info.Val(), "run_id")
	rec := parseRecord(fields.Val())
	if reason := w.changed(runID, marker, rec); reason != "" {
		w.failovers.Add(1)
		w.log.Warn("Redis restarted, failed over or lost writes: batches in flight are checked again before they are acknowledged, and the open runs are reconciled once the work in flight then has settled",
			zap.String("reason", reason), zap.Duration("settle", Settle))
	}
	w.known, w.runID = true, runID
	if marker.Err() == nil {
		w.marker = marker.Val()
	}
	if w.announce {
		if r, err := announce(ctx, w.rdb, w.epoch, now); err == nil {
			rec, w.announce = r, false
		}
	}
	w.epoch = rec.Epoch
	return rec, nil
}

// changed says why this look shows a failover since the last, or "" if it
// does not; a failover this watch found itself is to be announced.
func (w *Watch) changed(runID string, marker *redis.IntCmd, rec Record) string {
	if !w.known {
		return ""
	}
	switch {
	case runID != "" && w.runID != "" && runID != w.runID:
		w.announce = true
		return "another Redis server process answers"
	case marker.Err() == nil && marker.Val() <= w.marker:
		w.announce = true
		return "Redis lost writes"
	case rec.Epoch < w.epoch:
		w.announce = true
		return "Redis lost writes"
	case rec.Epoch > w.epoch:
		return "another worker noticed a failover"
	}
	return ""
}

// announceScript records a failover: the epoch after the one the watch saw
// last, noticed now, unless another process recorded one since.
//
// KEYS[1] -> msaudit:failover
// ARGV[1] -> the epoch the watch saw last
// ARGV[2] -> now (unix ms)
//
// Output: epoch, noticed_at, reconciled
var announceScript = redis.NewScript(`
local e = tonumber(redis.call('HGET', KEYS[1], '` + fieldEpoch + `') or '0')
if e <= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], '` + fieldEpoch + `', tonumber(ARGV[1]) + 1, '` + fieldNoticedAt + `', ARGV[2])
end
return redis.call('HMGET', KEYS[1], '` + fieldEpoch + `', '` + fieldNoticedAt + `', '` + fieldReconciled + `')
`)

func announce(ctx context.Context, rdb redis.UniversalClient, seen int64, now time.Time) (Record, error) {
	v, err := announceScript.Run(ctx, rdb, []string{recordKey}, seen, now.UnixMilli()).Slice()
	if err != nil {
		return Record{}, fmt.Errorf("record a Redis failover: %w", err)
	}
	return parseRecord(v), nil
}

// parseRecord reads the record's fields as HMGET returns them.
func parseRecord(v []any) Record {
	num := func(i int) int64 {
		if i >= len(v) {
			return 0
		}
		s, _ := v[i].(string)
		n, _ := strconv.ParseInt(s, 10, 64)
		return n
	}
	r := Record{Epoch: num(0), Reconciled: num(2)}
	if ms := num(1); ms > 0 {
		r.NoticedAt = time.UnixMilli(ms)
	}
	return r
}

// infoField returns a field of an INFO reply, "" if absent.
func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// markScript records that every open run was reconciled after an epoch.
//
// KEYS[1] -> msaudit:failover
// ARGV[1] -> the epoch
var markScript = redis.NewScript(`
if tonumber(redis.call('HGET', KEYS[1], '` + fieldReconciled + `') or '0') < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], '` + fieldReconciled + `', ARGV[1])
end
return 1
`)

// MarkReconciled records that every open run was reconciled after the
// failover of epoch.
func MarkReconciled(ctx context.Context, rdb redis.UniversalClient, epoch int64) error {
	if err := markScript.Run(ctx, rdb, []string{recordKey}, epoch).Err(); err != nil {
		return fmt.Errorf("record the reconcile after a Redis failover: %w", err)
	}
	return nil
}

// Lock is the lease of the one worker that reconciles after a failover.
type Lock struct {
	rdb    redis.UniversalClient
	holder string
	ttl    time.Duration
}

// NewLock returns holder's handle of the lease, which lasts ttl unless
// renewed.
func NewLock(rdb redis.UniversalClient, holder string, ttl time.Duration) *Lock {
	return &Lock{rdb: rdb, holder: holder, ttl: ttl}
}

// renewScript takes the lease, or renews it for its holder.
var renewScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// releaseScript gives the lease up if its holder still has it.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Hold takes or renews the lease and reports whether the holder has it.
func (l *Lock) Hold(ctx context.Context) (bool, error) {
	n, err := renewScript.Run(ctx, l.rdb, []string{lockKey}, l.holder, l.ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("take the failover reconcile lease: %w", err)
	}
	return n == 1, nil
}

// Release gives the lease up.
func (l *Lock) Release(ctx context.Context) error {
	if err := releaseScript.Run(ctx, l.rdb, []string{lockKey}, l.holder).Err(); err != nil {
		return fmt.Errorf("give up the failover reconcile lease: %w", err)
	}
	return nil
}

// SettledAt is when the work that was in flight at Redis' last restart or
// noticed failover can no longer acknowledge anything: Settle after the
// later of the two (the restart is known from INFO's uptime, when INFO is
// allowed). A time before now means there is nothing to wait for.
func SettledAt(ctx context.Context, rdb redis.UniversalClient, now time.Time) (time.Time, error) {
	pipe := rdb.Pipeline()
	info := pipe.Info(ctx, "server")
	fields := pipe.HMGet(ctx, recordKey, fieldEpoch, fieldNoticedAt, fieldReconciled)
	_, _ = pipe.Exec(ctx)
	if err := fields.Err(); err != nil {
		return time.Time{}, fmt.Errorf("look for a Redis failover: %w", err)
	}
	// An ACL may refuse INFO: then the record alone says when.
	last := parseRecord(fields.Val()).NoticedAt
	if up, err := strconv.ParseInt(infoField(info.Val(), "uptime_in_seconds"), 10, 64); err == nil {
		if started := now.Add(-time.Duration(up) * time.Second); started.After(last) {
			last = started
		}
	}
	return last.Add(Settle), nil
}
