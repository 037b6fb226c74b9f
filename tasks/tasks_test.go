package tasks

import (
	"strings"
	"testing"
	"time"
)

func TestCheckBatchRoundTrip(t *testing.T) {
	t.Parallel()
	p := CheckBatchPayload{RunID: "20261202T000000Z-abc123", TenantID: "t1", Batch: 7, Lane: 3,
		Entries: []Entry{{Address: "a@contoso.com", Owner: Owner{UserID: "u1", UPN: "a@contoso.com"}}}}
	b, err := EncodeCheckBatch(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"run_id"`, `"tenant_id"`, `"batch"`, `"lane"`, `"entries"`, `"address"`, `"user_id"`, `"upn"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("payload %s lacks %s: the JSON names are the queue contract", b, key)
		}
	}
	got, err := DecodeCheckBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.RunID != p.RunID || got.Batch != 7 || got.Lane != 3 || len(got.Entries) != 1 || got.Entries[0] != p.Entries[0] {
		t.Errorf("round trip: %+v", got)
	}

	task, err := NewCheckBatchTask(p)
	if err != nil {
		t.Fatal(err)
	}
	if task.Type() != TypeCheckBatch || string(task.Payload()) != string(b) {
		t.Errorf("task %s %s", task.Type(), task.Payload())
	}
	if run, ok := RunOfTaskID(TaskID(p.RunID, p.Batch)); !ok || run != p.RunID {
		t.Errorf("RunOfTaskID(TaskID) = %q, %v", run, ok)
	}
	if Retention > 24*time.Hour {
		t.Errorf("completed batches, which hold addresses, are kept %s", Retention)
	}
}

func TestDecodeCheckBatchRefusesMalformed(t *testing.T) {
	t.Parallel()
	for name, payload := range map[string]string{
		"not JSON":      `{"run_id":`,
		"no run":        `{"tenant_id":"t","entries":[{"address":"a@b.c"}]}`,
		"no tenant":     `{"run_id":"r","entries":[{"address":"a@b.c"}]}`,
		"no entries":    `{"run_id":"r","tenant_id":"t","entries":[]}`,
		"lane too high": `{"run_id":"r","tenant_id":"t","lane":8,"entries":[{"address":"a@b.c"}]}`,
		"lane negative": `{"run_id":"r","tenant_id":"t","lane":-1,"entries":[{"address":"a@b.c"}]}`,
	} {
		if _, err := DecodeCheckBatch([]byte(payload)); err == nil {
			t.Errorf("%s: %s decoded without error", name, payload)
		}
	}
}

func TestLanes(t *testing.T) {
	t.Parallel()
	q := Queues()
	if len(q) != Lanes {
		t.Fatalf("%d queues, want %d", len(q), Lanes)
	}
	for i := 0; i < Lanes; i++ {
		if q[LaneQueue(i)] != 1 {
			t.Errorf("lane %s has weight %d, want 1 (equal weights keep runs fair)", LaneQueue(i), q[LaneQueue(i)])
		}
	}
}
