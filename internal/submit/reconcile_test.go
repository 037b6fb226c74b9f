package submit

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
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
// to active with no lease is never recovered by asynq, one active with a
// lease that expired (a restored copy's) only a minute or two later, and
// counters can be off after a partial restore. Reconcile re-queues exactly
// the uncarried addresses, puts the tasks no worker runs back in the
// queue, leaves the one with a live lease alone, and recounts.
func TestReconcileRepairsLostAndLeaselessTasks(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	rdb := redistest.Client(t)
	store := runstore.New(rdb)
	client := asynq.NewClientFromRedisClient(rdb)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	sub := &Submitter{Store: store, Queue: client, Log: zap.NewNop()}

	var addrs []string
	for i := 0; i < 40; i++ {
		addrs = append(addrs, fmt.Sprintf("a%02d@contoso.com", i))
	}
	run := runstore.Run{ID: runstore.NewRunID(time.Now()), TenantID: "t1", Source: "list", Retention: time.Hour}
	if _, err := sub.Submit(ctx, Request{Run: run, BatchSize: 10}, listSource(addrs)); err != nil {
		t.Fatal(err)
	}
	queue := tasks.LaneQueue(0)
	// Batch 0 is lost; batch 1 is left active with no lease, batch 2 with
	// one that expired a minute ago, batch 3 with a live one.
	if err := insp.DeleteTask(queue, tasks.TaskID(run.ID, 0)); err != nil {
		t.Fatal(err)
	}
	activate := func(batch int, lease time.Time) string {
		id := tasks.TaskID(run.ID, batch)
		if err := rdb.LRem(ctx, "asynq:{"+queue+"}:pending", 0, id).Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.LPush(ctx, "asynq:{"+queue+"}:active", id).Err(); err != nil {
			t.Fatal(err)
		}
		if !lease.IsZero() {
			if err := rdb.ZAdd(ctx, "asynq:{"+queue+"}:lease", redis.Z{Score: float64(lease.Unix()), Member: id}).Err(); err != nil {
				t.Fatal(err)
			}
		}
		return id
	}
	id1 := activate(1, time.Time{})
	id2 := activate(2, time.Now().Add(-time.Minute))
	id3 := activate(3, time.Now().Add(30*time.Second))
	// And the counters went wrong.
	if err := rdb.HSet(ctx, "msaudit:run:"+run.ID, "checked", 7, "absent", 7).Err(); err != nil {
		t.Fatal(err)
	}

	r := &Reconciler{Submitter: sub, Queue: runqueue.Queue{Redis: rdb, Inspector: insp}, BatchSize: 50}
	res, err := r.Reconcile(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if res.Leaseless != 2 || res.Requeued != 10 || res.Batches != 1 {
		t.Errorf("reconcile: %+v, want 2 tasks with no live lease and the 10 addresses of the lost batch in 1 new batch", res)
	}
	if res.Before.Checked != 7 || res.After != (runstore.Counters{Total: 40}) {
		t.Errorf("counters before %+v, after %+v", res.Before, res.After)
	}
	if active := rdb.LRange(ctx, "asynq:{"+queue+"}:active", 0, -1).Val(); !slices.Equal(active, []string{id3}) {
		t.Errorf("active tasks %v, want only %s, whose lease is live", active, id3)
	}
	pending, err := insp.ListPendingTasks(queue)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{id1, id2} {
		if !slices.ContainsFunc(pending, func(ti *asynq.TaskInfo) bool { return ti.ID == id }) {
			t.Errorf("task %s, with no live lease, is not pending", id)
		}
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
