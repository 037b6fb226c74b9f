package checker

import (
	"errors"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/msaudit/msaudit/internal/redistest"
)

// TestRedeliveredFinishedBatch: asynq keeps no completed task
// (tasks.Retention is 0), so the TaskID no longer refuses a finished batch
// enqueued again — by a submit resumed after a crash, say. Delivered again,
// such a batch only reads its addresses' states and sends no realm request,
// whether its addresses ended answered or dead-lettered.
func TestRedeliveredFinishedBatch(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	boom := errors.New("no answer: HTTP 500")
	fr := &fakeRealm{calls: map[string]int{}, answers: map[string][]error{
		"a@x.com": {errPresent},
		"c@x.com": {boom, boom, boom},
	}}
	h, p := setup(t, rdb, fastLimits, fr, "a@x.com", "b@x.com", "c@x.com")
	ctx := t.Context()
	for i := 0; ; i++ {
		err := h.ProcessTask(ctx, task(t, p))
		if errors.Is(err, asynq.SkipRetry) {
			break // c dead-lettered: the batch is finished
		}
		if i == 5 {
			t.Fatalf("the batch did not finish: %v", err)
		}
	}
	total := func() int { return fr.calls["a@x.com"] + fr.calls["b@x.com"] + fr.calls["c@x.com"] }
	before := total()
	for i := 0; i < 3; i++ {
		if err := h.ProcessTask(ctx, task(t, p)); err != nil {
			t.Fatalf("re-delivery %d: %v, want done at once", i, err)
		}
	}
	if n := total() - before; n != 0 {
		t.Errorf("re-deliveries of the finished batch sent %d realm requests", n)
	}
	r, err := h.store.GetRun(ctx, p.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Present != 1 || r.Absent != 1 || r.DeadLettered != 1 || r.Checked != 2 {
		t.Errorf("re-deliveries changed the counters: %+v", r)
	}
}
