package checker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msaudit/msaudit/internal/realm"
	"github.com/msaudit/msaudit/internal/redistest"
	"github.com/msaudit/msaudit/internal/runstore"
)

// stallingRealm answers the first n checks at once, then blocks until
// released, as a worker mid-batch does when it is killed.
type stallingRealm struct {
	n       int
	mu      sync.Mutex
	calls   int
	release chan struct{}
}

func (s *stallingRealm) Check(ctx context.Context, addr string) (realm.Result, error) {
	s.mu.Lock()
	s.calls++
	stall := s.calls > s.n
	s.mu.Unlock()
	if stall {
		select {
		case <-s.release:
		case <-ctx.Done():
			return realm.Result{}, ctx.Err()
		}
	}
	return realm.Result{Status: realm.Absent, RequestID: "rq-" + addr, CheckedAt: time.Now()}, nil
}

// commandsDone signals, coalesced, each command or pipeline of a client
// that completed.
type commandsDone chan struct{}

func (c commandsDone) done() {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (c commandsDone) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c commandsDone) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		defer c.done()
		return next(ctx, cmd)
	}
}

func (c commandsDone) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		defer c.done()
		return next(ctx, cmds)
	}
}

// TestAnswersAreRecordedAsTheyArrive: while a batch is still running, the
// answers it already got reach the run store within recordEvery, so a
// worker that dies now loses only the request in flight.
func TestAnswersAreRecordedAsTheyArrive(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	// The run's counters change only with a command of the handler's: the
	// test looks again after each, through a client of the same database
	// that the hook does not see.
	commands := make(commandsDone, 1)
	rdb.AddHook(commands)
	opts := *rdb.Options()
	look := redis.NewClient(&opts)
	t.Cleanup(func() { look.Close() })
	runs := runstore.New(look)
	var addrs []string
	for i := 0; i < 10; i++ {
		addrs = append(addrs, fmt.Sprintf("a%d@contoso.com", i))
	}
	fr := &stallingRealm{n: 4, release: make(chan struct{})}
	h, p := setup(t, rdb, fastLimits, nil, addrs...)
	h.realm = fr
	done := make(chan error, 1)
	go func() { done <- h.ProcessTask(t.Context(), task(t, p)) }()

	// The batch cannot end while the realm stalls: what is recorded by
	// then was written as the answers came.
	timeout := time.After(10 * time.Second)
	for {
		r, err := runs.GetRun(t.Context(), p.RunID)
		if err != nil {
			t.Fatal(err)
		}
		if r.Checked == 4 {
			break
		}
		select {
		case <-commands:
		case <-timeout:
			t.Fatalf("checked = %d while the batch runs, want the 4 answers it has", r.Checked)
		}
	}
	close(fr.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r, _ := h.store.GetRun(t.Context(), p.RunID); r.Checked != 10 {
		t.Errorf("checked = %d at the end, want 10", r.Checked)
	}
}
