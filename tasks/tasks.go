// Package tasks defines the queue contract shared by the enqueuer and the
// workers: task type names, payloads and constructors with their options.
// Nothing else belongs here.
package tasks

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

// Lanes is the number of queues audit tasks are spread over. asynq has no
// dynamic queues (every worker must list every queue it serves), so instead
// of a queue per tenant there is a fixed set of lanes, all served with equal
// weight: each run is put in the least busy lane when it is submitted, and a
// small run in its own lane is dequeued as often as a large one instead of
// waiting behind all of its batches.
const Lanes = 8

// LaneQueue is the asynq queue name of lane i (0 <= i < Lanes).
func LaneQueue(i int) string { return fmt.Sprintf("audit-%d", i) }

// Queues is the asynq Config.Queues of a worker: every lane, equal weight.
func Queues() map[string]int {
	q := make(map[string]int, Lanes)
	for i := 0; i < Lanes; i++ {
		q[LaneQueue(i)] = 1
	}
	return q
}

// TypeCheckBatch checks up to a batch of addresses of one run.
const TypeCheckBatch = "audit:check"

// MaxTaskRetries is asynq's retry budget for a batch task. Attempts are counted
// per address in the run store (and dead-lettered there), so this is only a
// backstop against a task that keeps failing for reasons outside any address;
// the handler never lets a task reach it with unresolved addresses.
const MaxTaskRetries = 1000

// Owner is a directory user an address was found on.
type Owner struct {
	UserID string `json:"user_id,omitempty"`
	UPN    string `json:"upn,omitempty"`
}

// Entry is one address to check, with the first user it was found on.
type Entry struct {
	Address string `json:"address"`
	Owner
}

// CheckBatchPayload is the payload of TypeCheckBatch.
type CheckBatchPayload struct {
	RunID    string  `json:"run_id"`
	TenantID string  `json:"tenant_id"`
	Batch    int     `json:"batch"`
	Lane     int     `json:"lane"`
	Entries  []Entry `json:"entries"`
}

// TaskID is the deterministic asynq task ID of a batch, so that re-enqueueing
// the same batch after a crash is refused by asynq instead of duplicated.
// Batch numbers are never reused within a run (re-queues take new ones).
func TaskID(runID string, batch int) string {
	return fmt.Sprintf("%s:%d", runID, batch)
}

// EncodeCheckBatch is the payload bytes of p, as stored and queued.
func EncodeCheckBatch(p CheckBatchPayload) ([]byte, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode batch payload: %w", err)
	}
	return b, nil
}

// NewCheckBatchTask builds the task for p.
func NewCheckBatchTask(p CheckBatchPayload) (*asynq.Task, error) {
	b, err := EncodeCheckBatch(p)
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeCheckBatch, b,
		asynq.Queue(LaneQueue(p.Lane)),
		asynq.TaskID(TaskID(p.RunID, p.Batch)),
		asynq.MaxRetry(MaxTaskRetries),
		asynq.Timeout(30*time.Minute),
		asynq.Retention(Retention),
	), nil
}

// Retention is how long asynq keeps a completed batch, payload and all:
// not at all. The run store keeps the results; a finished batch's payload is
// only its addresses again (personal data, and about 150 bytes an address:
// a third of a completed run's Redis memory). Without it the deterministic
// TaskID no longer refuses a completed batch, so a submit resumed after a
// crash may enqueue one again; that costs one read, not a realm request:
// the handler checks only the addresses still pending in the run store, and
// a finished batch has none (checker's TestRedeliveredFinishedBatch).
const Retention time.Duration = 0

// RunOfTaskID returns the run ID of a batch's task ID (see TaskID).
func RunOfTaskID(id string) (string, bool) {
	i := strings.LastIndexByte(id, ':')
	if i <= 0 {
		return "", false
	}
	return id[:i], true
}

// DecodeCheckBatch parses a TypeCheckBatch payload.
func DecodeCheckBatch(b []byte) (CheckBatchPayload, error) {
	var p CheckBatchPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decode batch payload: %w", err)
	}
	if p.RunID == "" || p.TenantID == "" || len(p.Entries) == 0 {
		return p, fmt.Errorf("decode batch payload: run_id, tenant_id and entries are required")
	}
	if p.Lane < 0 || p.Lane >= Lanes {
		return p, fmt.Errorf("decode batch payload: lane %d out of range", p.Lane)
	}
	return p, nil
}
