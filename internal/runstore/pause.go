package runstore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrRunFinished is returned when pausing a run that has nothing left to do.
var ErrRunFinished = errors.New("the run is completed or cancelled")

// pauseScript pauses or resumes a run, recording run.paused or run.resumed
// when it changes.
//
// Input:
// KEYS[1] -> msaudit:run:<id>
// ARGV[1] -> 1 to pause, 0 to resume
// ARGV[2] -> now (unix ms)
//
// Output:
// 1 if it changed, 0 if it was so already
// -1 if the run does not exist
// -2 if it is completed or cancelled (pause only)
var pauseScript = script(eventLua + `
local h = redis.call('HMGET', KEYS[1], {fieldTenantID}, {fieldCompletedAt}, {fieldCancelled}, {fieldPaused})
if not h[1] then return -1 end
local now = ARGV[2]
if ARGV[1] == '1' then
  if h[2] or h[3] == '1' then return -2 end
  if h[4] == '1' then return 0 end
  redis.call('HSET', KEYS[1], {fieldPaused}, 1, {fieldPausedAt}, now, {fieldUpdatedAt}, now)
  add_event({EventPaused}, now)
  return 1
end
if h[4] ~= '1' then return 0 end
redis.call('HDEL', KEYS[1], {fieldPaused}, {fieldPausedAt})
redis.call('HSET', KEYS[1], {fieldUpdatedAt}, now, {fieldResumedAt}, now)
add_event({EventResumed}, now)
return 1
`)

// Pause stops the workers from sending the run's requests: they hand its
// batches back to the queue, as not a failure, until Resume. The run stays
// open (in OpenRunsKey), so that an autoscaler keeps a worker to resume it.
// It reports whether the run was running (false: it was paused already).
func (s *Store) Pause(ctx context.Context, id string, now time.Time) (bool, error) {
	return s.setPaused(ctx, id, true, now)
}

// Resume lets the workers check a paused run again. It reports whether the
// run was paused.
func (s *Store) Resume(ctx context.Context, id string, now time.Time) (bool, error) {
	return s.setPaused(ctx, id, false, now)
}

func (s *Store) setPaused(ctx context.Context, id string, pause bool, now time.Time) (bool, error) {
	verb, arg := "resume", 0
	if pause {
		verb, arg = "pause", 1
	}
	n, err := pauseScript.Run(ctx, s.rdb, []string{runKeys(id).run}, arg, now.UnixMilli()).Int()
	switch {
	case err != nil:
		return false, fmt.Errorf("%s run %s: %w", verb, id, err)
	case n == -1:
		return false, fmt.Errorf("%w: %s", ErrRunNotFound, id)
	case n == -2:
		return false, fmt.Errorf("%s run %s: %w", verb, id, ErrRunFinished)
	}
	return n == 1, nil
}

// Flags is what a worker checks between two requests of a batch.
type Flags struct {
	Exists, Cancelled, Paused bool
}

// RunFlags reads whether the run exists, is cancelled or paused, in one
// round trip.
func (s *Store) RunFlags(ctx context.Context, id string) (Flags, error) {
	v, err := s.rdb.HMGet(ctx, runKeys(id).run, fieldTenantID, fieldCancelled, fieldPaused).Result()
	if err != nil {
		return Flags{}, fmt.Errorf("load run flags: %w", err)
	}
	return Flags{Exists: v[0] != nil, Cancelled: v[1] == "1", Paused: v[2] == "1"}, nil
}

// NoteUsers keeps how many users the submit under way has read, for status.
func (s *Store) NoteUsers(ctx context.Context, id string, users int64) error {
	return s.rdb.HSet(ctx, runKeys(id).run, fieldUsersSeen, users).Err()
}
