// Package runstoretest builds runs in a real run store for tests of the
// packages that read or change them (checker, autoscale, submit, report…):
// a run with N pending addresses in batches, as a submit would leave it. It
// is imported only by tests.
package runstoretest

import (
	"fmt"
	"testing"
	"time"

	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/submit"
	"github.com/msaudit/msaudit/tasks"
)

// Run describes the run to build. Zero fields take the defaults of NewRun.
type Run struct {
	TenantID  string // default "tenant-" + the run ID
	Addresses []string
	N         int // with no Addresses: this many, user<i>@contoso.com
	BatchSize int // default submit.DefaultBatchSize
	// Open leaves the enumeration unfinished (state incomplete); by
	// default it is finished, and the run is running.
	Open bool
}

// Fixture is a built run.
type Fixture struct {
	Store   *runstore.Store
	ID      string
	Tenant  string
	Batches []tasks.CheckBatchPayload // in order, as the queue would carry them
}

// Address is the i-th generated address.
func Address(i int) string { return fmt.Sprintf("user%04d@contoso.com", i) }

// NewRun creates the run in store with its addresses pending, registered in
// batches (stored as sent: nothing is enqueued) with one owner each.
func NewRun(t testing.TB, store *runstore.Store, r Run) *Fixture {
	t.Helper()
	ctx := t.Context()
	id := runstore.NewRunID(time.Now())
	f := &Fixture{Store: store, ID: id, Tenant: r.TenantID}
	if f.Tenant == "" {
		f.Tenant = "tenant-" + id
	}
	addrs := r.Addresses
	for i := len(addrs); i < r.N; i++ {
		addrs = append(addrs, Address(i))
	}
	size := r.BatchSize
	if size == 0 {
		size = submit.DefaultBatchSize
	}
	if err := store.CreateRun(ctx, &runstore.Run{ID: id, TenantID: f.Tenant, Source: "test", Retention: time.Hour}, time.Now()); err != nil {
		t.Fatal(err)
	}
	for b := 0; b*size < len(addrs); b++ {
		part := addrs[b*size : min((b+1)*size, len(addrs))]
		p := tasks.CheckBatchPayload{RunID: id, TenantID: f.Tenant, Batch: b}
		pairs := make([]runstore.Pair, len(part))
		for i, a := range part {
			p.Entries = append(p.Entries, tasks.Entry{Address: a})
			pairs[i] = runstore.Pair{Address: a, UserID: "u-" + a, UPN: a}
		}
		if _, err := store.NextBatch(ctx, id, 1); err != nil {
			t.Fatal(err)
		}
		if err := store.Register(ctx, id, -1, nil, part, pairs, nil); err != nil {
			t.Fatal(err)
		}
		f.Batches = append(f.Batches, p)
	}
	if !r.Open {
		if err := store.FinishEnumeration(ctx, id, int64(len(addrs)), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return f
}
