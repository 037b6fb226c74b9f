package submit

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/redistest"
	"github.com/msaudit/msaudit/internal/runqueue"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/tasks"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// listSource emits addrs as one page.
func listSource(addrs []string) Source {
	return func(ctx context.Context, emit Emit) error {
		cands := make([]Candidate, len(addrs))
		for i, a := range addrs {
			cands[i] = Candidate{Address: a}
		}
		return emit(0, cands)
	}
}

// TestReconcileRepairsLostAndLeaselessTasks: a task deleted behind the
// system's back leaves its addresses pending with no carrier, a task moved
// to active with no lease is never recovered by asynq, and counters can be
// off after a partial restore. Reconcile re-queues exactly the uncarried
// addresses, hands the leaseless task back, and recounts.
func TestReconcileRepairsLostAndLeaselessTasks(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	rdb := redistest.Client(t)
	store := runstore.New(rdb)
	client := asynq.NewClientFromRedisClient(rdb)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	sub := &Submitter{Store: store, Queue: client, Log: zap.NewNop()}

	var addrs []string
	for i := 0; i < 30; i++ {
		addrs = append(addrs, fmt.Sprintf("a%02d@contoso.com", i))
	}
	run := runstore.Run{ID: runstore.NewRunID(time.Now()), TenantID: "t1", Source: "list", Retention: time.Hour}
	if _, err := sub.Submit(ctx, Request{Run: run, BatchSize: 10}, listSource(addrs)); err != nil {
		t.Fatal(err)
	}
	queue := tasks.LaneQueue(0)
	// Batch 0 is lost; batch 1 is left active with no lease.
	if err := insp.DeleteTask(queue, tasks.TaskID(run.ID, 0)); err != nil {
		t.Fatal(err)
	}
	id1 := tasks.TaskID(run.ID, 1)
	if err := rdb.LRem(ctx, "asynq:{"+queue+"}:pending", 0, id1).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.LPush(ctx, "asynq:{"+queue+"}:active", id1).Err(); err != nil {
		t.Fatal(err)
	}
	// And the counters went wrong.
	if err := rdb.HSet(ctx, "msaudit:run:"+run.ID, "checked", 7, "absent", 7).Err(); err != nil {
		t.Fatal(err)
	}

	r := &Reconciler{Submitter: sub, Queue: runqueue.Queue{Redis: rdb, Inspector: insp}, BatchSize: 50}
	res, err := r.Reconcile(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if res.Leaseless != 1 || res.Requeued != 10 || res.Batches != 1 {
		t.Errorf("reconcile: %+v, want 1 leaseless task and the 10 addresses of the lost batch in 1 new batch", res)
	}
	if res.Before.Checked != 7 || res.After != (runstore.Counters{Total: 30}) {
		t.Errorf("counters before %+v, after %+v", res.Before, res.After)
	}
	if n := rdb.ZCard(ctx, "asynq:{"+queue+"}:lease").Val(); n != 1 {
		t.Errorf("lease set holds %d entries, want the leaseless task's", n)
	}
	pending, err := insp.ListPendingTasks(queue)
	if err != nil {
		t.Fatal(err)
	}
	carried := map[string]bool{}
	for _, ti := range pending {
		p, _ := tasks.DecodeCheckBatch(ti.Payload)
		for _, e := range p.Entries {
			carried[e.Address] = true
		}
	}
	for _, a := range addrs[:10] {
		if !carried[a] {
			t.Errorf("%s (of the lost batch) is carried by no pending task", a)
		}
	}

	// A second reconcile finds nothing to do.
	res, err = r.Reconcile(ctx, run.ID)
	if err != nil || res.Changed() {
		t.Errorf("second reconcile: %+v, %v", res, err)
	}
}
