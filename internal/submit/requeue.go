package submit

import (
	"context"

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
	addrs := make([]string, len(dead))
	for i, d := range dead {
		addrs[i] = d.Address
	}
	batches, err := s.newBatches(ctx, run, addrs, batchSize)
	if err != nil {
		return 0, err
	}
	moved, err := s.Store.Requeue(ctx, runID, addrs, batches, s.now().UnixMilli())
	if err != nil || moved == 0 {
		return 0, err
	}
	return moved, j.flushUnsent(ctx)
}

// newBatches reserves batch numbers for addrs and builds their payloads,
// batchSize addresses each, in the run's lane.
func (s *Submitter) newBatches(ctx context.Context, run *runstore.Run, addrs []string, batchSize int) (map[int][]byte, error) {
	if len(addrs) == 0 {
		return nil, nil
	}
	nb := (len(addrs) + batchSize - 1) / batchSize
	first, err := s.Store.NextBatch(ctx, run.ID, nb)
	if err != nil {
		return nil, err
	}
	batches := make(map[int][]byte, nb)
	for i := 0; i < len(addrs); i += batchSize {
		n := first + i/batchSize
		p := tasks.CheckBatchPayload{RunID: run.ID, TenantID: run.TenantID, Batch: n, Lane: run.Lane}
		for _, a := range addrs[i:min(i+batchSize, len(addrs))] {
			p.Entries = append(p.Entries, tasks.Entry{Address: a})
		}
		b, err := tasks.EncodeCheckBatch(p)
		if err != nil {
			return nil, err
		}
		batches[n] = b
	}
	return batches, nil
}
