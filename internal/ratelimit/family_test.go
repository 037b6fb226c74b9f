package ratelimit

import (
	"time"

	"github.com/msaudit/msaudit/internal/throttlemodel"
)

// robustModel is one throttle shape of the family the robustness bench runs
// against: a member of throttlemodel's family.
type robustModel struct {
	spec throttlemodel.Spec
}

func (m robustModel) name() string  { return m.spec.Name() }
func (m robustModel) heldOut() bool { return m.spec.HeldOut }

// available is what the model sustains at capacity (a window's whole
// number of requests can make it less).
func (m robustModel) available(capacity float64) float64 { return m.spec.Available(capacity) }

func (m robustModel) new(capacity float64) modelThrottle { return familyThrottle{m.spec.New(capacity)} }

// familyThrottle drives a family member as the model's service.
type familyThrottle struct{ m throttlemodel.Model }

func (f familyThrottle) admit(now time.Time, key string) (bool, time.Duration, time.Duration) {
	d := f.m.Admit(now, key)
	return d.Throttled, d.RetryAfter, d.Latency
}

func (f familyThrottle) setCapacity(now time.Time, perSecond float64) {
	f.m.SetCapacity(now, perSecond)
}

// robustFamily is every member of the family, both halves.
func robustFamily() []robustModel {
	var out []robustModel
	for _, s := range throttlemodel.Family() {
		out = append(out, robustModel{s})
	}
	return out
}
