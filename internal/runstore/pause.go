package runstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrRunFinished is returned when pausing a run that has nothing left to do.
var ErrRunFinished = errors.New("the run is completed or cancelled")

// Pause stops the workers from sending the run's requests: they hand its
// batches back to the queue, as not a failure, until Resume. The run stays
// open (in OpenRunsKey), so that an autoscaler keeps a worker to resume it.
// It reports whether the run was running (false: it was paused already).
func (s *Store) Pause(ctx context.Context, id string, now time.Time) (bool, error) {
	r, err := s.GetRun(ctx, id)
	if err != nil {
		return false, err
	}
	if r.Cancelled || !r.CompletedAt.IsZero() {
		return false, fmt.Errorf("pause run %s: %w", id, ErrRunFinished)
	}
	if r.Paused {
		return false, nil
	}
	ms := now.UnixMilli()
	if err := s.rdb.HSet(ctx, runKeys(id).run, "paused", 1, "paused_at", ms, "updated_at", ms).Err(); err != nil {
		return false, fmt.Errorf("pause run %s: %w", id, err)
	}
	return true, nil
}

// Resume lets the workers check a paused run again. It reports whether the
// run was paused.
func (s *Store) Resume(ctx context.Context, id string, now time.Time) (bool, error) {
	if _, err := s.GetRun(ctx, id); err != nil {
		return false, err
	}
	k := runKeys(id).run
	var del *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		del = p.HDel(ctx, k, "paused", "paused_at")
		p.HSet(ctx, k, "updated_at", now.UnixMilli())
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("resume run %s: %w", id, err)
	}
	return del.Val() > 0, nil
}

// Flags is what a worker checks between two requests of a batch.
type Flags struct {
	Exists, Cancelled, Paused bool
}

// Stopped reports whether no more requests of the run may be sent.
func (f Flags) Stopped() bool { return !f.Exists || f.Cancelled || f.Paused }

// RunFlags reads whether the run exists, is cancelled or paused, in one
// round trip.
func (s *Store) RunFlags(ctx context.Context, id string) (Flags, error) {
	v, err := s.rdb.HMGet(ctx, runKeys(id).run, "tenant_id", "cancelled", "paused").Result()
	if err != nil {
		return Flags{}, fmt.Errorf("load run flags: %w", err)
	}
	return Flags{Exists: v[0] != nil, Cancelled: v[1] == "1", Paused: v[2] == "1"}, nil
}

// NoteUsers keeps how many users the submit under way has read, for status.
func (s *Store) NoteUsers(ctx context.Context, id string, users int64) error {
	return s.rdb.HSet(ctx, runKeys(id).run, "users_seen", users).Err()
}
