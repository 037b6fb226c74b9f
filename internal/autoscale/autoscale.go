// Package autoscale computes how many worker processes the open runs can
// use: the figure the Kubernetes autoscaler scales the worker Deployment on.
// Every worker serves it (GET /scaler, and the msaudit_scaler_* gauges) from
// the state in Redis, so any replica gives about the same answer (the
// request latency in it is each process's own measure).
//
// Queue depth is the wrong measure: ten thousand batches of one tenant paced
// at 5 requests/s keep one worker busy, not a hundred. A tenant at rate R
// whose requests take L keeps about R·L requests in flight, a batch carries
// up to checker.InFlightPerBatch of them, and a worker lets the tenant hold
// at most checker.SlotsFor(R, L) of its slots; the tenant can use no more
// slots than it has batches left. The sum over the open runs' tenants,
// divided by one worker's slots and rounded up, is the number of workers.
//
// The answer is at least one while any run is open, whatever is left to do:
// asynq moves batches waiting in its retry and scheduled sets back to pending
// only inside a running worker, so scaling to zero with a run open would
// strand them. With no open run it is zero.
//
// It reads the run store and the limiter; it changes nothing.
package autoscale

import (
	"context"
	"math"
	"time"

	"github.com/msaudit/msaudit/internal/checker"
	"github.com/msaudit/msaudit/internal/runstore"
)

// DefaultLatency stands for a tenant's request latency until a worker has
// measured it: about what the realm service answers in.
const DefaultLatency = 300 * time.Millisecond

// Tenant is the load of one tenant's open runs.
type Tenant struct {
	ID      string
	Rate    float64       // its current rate, requests/s
	Latency time.Duration // of one realm request; 0: DefaultLatency
	Batches int64         // batches that still hold a pending address, at most
}

// Result is the answer, as /scaler serves it.
type Result struct {
	// DesiredWorkers is the number of worker processes the open runs can
	// keep busy (>= 1 while a run is open).
	DesiredWorkers int `json:"desired_workers"`
	// UsableSlots is the number of batches that can be worked at once.
	UsableSlots int `json:"usable_slots"`
	// OpenRuns counts the runs not completed or cancelled.
	OpenRuns int `json:"open_runs"`
	// OutstandingBatches bounds the batches that still have work.
	OutstandingBatches int64 `json:"outstanding_batches"`
}

// Plan sizes the workers for tenants with openRuns runs open, each worker
// having slotsPerWorker slots. globalRate > 0 caps the tenants' rates
// together (they are scaled down in proportion).
func Plan(tenants []Tenant, openRuns, slotsPerWorker int, globalRate float64) Result {
	res := Result{OpenRuns: openRuns}
	if openRuns == 0 {
		return res
	}
	scale, total := 1.0, 0.0
	for _, t := range tenants {
		total += t.Rate
	}
	if globalRate > 0 && total > globalRate {
		scale = globalRate / total
	}
	for _, t := range tenants {
		lat := t.Latency
		if lat <= 0 {
			lat = DefaultLatency
		}
		slots := int64(checker.SlotsFor(t.Rate*scale, lat))
		res.UsableSlots += int(min(slots, t.Batches))
		res.OutstandingBatches += t.Batches
	}
	res.DesiredWorkers = max(1, int(math.Ceil(float64(res.UsableSlots)/float64(max(slotsPerWorker, 1)))))
	return res
}

// Source reads what Plan needs.
type Source struct {
	Store *runstore.Store
	// Rate returns a tenant's current rate and the capacity the tenants
	// were found to share, 0 if none (the limiter's Rate).
	Rate func(ctx context.Context, tenant string) (rate, shared float64, err error)
	// Latency returns a tenant's measured latency, 0 if unknown.
	Latency        func(tenant string) time.Duration
	SlotsPerWorker int
	GlobalRate     float64
}

// Compute reads the open runs and plans for them.
func (s Source) Compute(ctx context.Context) (Result, error) {
	runs, err := s.Store.OpenRuns(ctx)
	if err != nil {
		return Result{}, err
	}
	byTenant := make(map[string]*Tenant)
	var order []*Tenant
	ceiling := s.GlobalRate
	for _, r := range runs {
		t := byTenant[r.TenantID]
		if t == nil {
			t = &Tenant{ID: r.TenantID}
			var shared float64
			if t.Rate, shared, err = s.Rate(ctx, r.TenantID); err != nil {
				return Result{}, err
			}
			// A capacity the tenants share caps them together, as the
			// operator's global rate does.
			if shared > 0 && (ceiling <= 0 || shared < ceiling) {
				ceiling = shared
			}
			if s.Latency != nil {
				t.Latency = s.Latency(r.TenantID)
			}
			byTenant[r.TenantID] = t
			order = append(order, t)
		}
		t.Batches += outstandingBatches(r)
	}
	tenants := make([]Tenant, len(order))
	for i, t := range order {
		tenants[i] = *t
	}
	return Plan(tenants, len(runs), s.SlotsPerWorker, ceiling), nil
}

// outstandingBatches bounds the batches of r that hold a pending address:
// no more than its batches, and no more than its pending addresses.
func outstandingBatches(r *runstore.Run) int64 {
	pending := r.AddressesTotal - r.Checked - r.DeadLettered
	return max(0, min(r.Batches, pending))
}
