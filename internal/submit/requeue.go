package submit

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/tasks"
)

// Requeue puts every dead-lettered address of a run back on the queue as
// fresh batches with fresh attempts. It is idempotent: the move out of
// "dead" and the storing of the new batches happen in one atomic step, so a
// second requeue finds nothing to move, and a requeue that crashed before
// enqueueing is completed by the next requeue or submit --run-id.
func (s *Submitter) Requeue(ctx context.Context, runID string, batchSize int) (int, error) {
	run, err := s.Store.GetRun(ctx, runID)
	if err != nil {
		return 0, err
	}
	j := &job{s: s, ctx: ctx, req: Request{Run: *run, Resume: true, BatchSize: batchSize}, holder: runstore.NewRunID(s.now())}
	if err := s.Store.Lock(ctx, runID, j.holder); err != nil {
		return 0, err
	}
	defer s.Store.Unlock(context.WithoutCancel(ctx), runID, j.holder)
	// Finish an earlier requeue or submit that stopped before enqueueing.
	if err := j.flushUnsent(ctx); err != nil {
		return 0, err
	}
	dead, err := s.Store.DeadLetters(ctx, runID)
	if err != nil || len(dead) == 0 {
		return 0, err
	}
	nb := (len(dead) + batchSize - 1) / batchSize
	first, err := s.Store.NextBatch(ctx, runID, nb)
	if err != nil {
		return 0, err
	}
	addrs := make([]string, len(dead))
	batches := make(map[int][]byte, nb)
	for i := 0; i < len(dead); i += batchSize {
		n := first + i/batchSize
		p := tasks.CheckBatchPayload{RunID: runID, TenantID: run.TenantID, Batch: n, Lane: run.Lane}
		for k, d := range dead[i:min(i+batchSize, len(dead))] {
			addrs[i+k] = d.Address
			p.Entries = append(p.Entries, tasks.Entry{Address: d.Address})
		}
		b, err := json.Marshal(p)
		if err != nil {
			return 0, fmt.Errorf("encode batch: %w", err)
		}
		batches[n] = b
	}
	moved, err := s.Store.Requeue(ctx, runID, addrs, batches, s.now().UnixMilli())
	if err != nil || moved == 0 {
		return 0, err
	}
	return moved, j.flushUnsent(ctx)
}
