package checker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/msaudit/msaudit/internal/realm"
	"github.com/msaudit/msaudit/internal/redistest"
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

// TestAnswersAreRecordedAsTheyArrive: while a batch is still running, the
// answers it already got reach the run store within recordEvery, so a
// worker that dies now loses only the request in flight.
func TestAnswersAreRecordedAsTheyArrive(t *testing.T) {
	rdb := redistest.Client(t)
	var addrs []string
	for i := 0; i < 10; i++ {
		addrs = append(addrs, fmt.Sprintf("a%d@contoso.com", i))
	}
	fr := &stallingRealm{n: 4, release: make(chan struct{})}
	h, p := setup(t, rdb, fastLimits, nil, addrs...)
	h.realm = fr
	done := make(chan error, 1)
	go func() { done <- h.ProcessTask(context.Background(), task(t, p)) }()

	deadline := time.Now().Add(5 * recordEvery)
	for {
		r, err := h.store.GetRun(context.Background(), p.RunID)
		if err != nil {
			t.Fatal(err)
		}
		if r.Checked == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("checked = %d while the batch runs, want the 4 answers it has", r.Checked)
		}
		time.Sleep(recordEvery / 4)
	}
	close(fr.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r, _ := h.store.GetRun(context.Background(), p.RunID); r.Checked != 10 {
		t.Errorf("checked = %d at the end, want 10", r.Checked)
	}
}
