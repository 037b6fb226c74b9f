package tenantsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/msaudit/msaudit/internal/throttlemodel"
)

// RealmConfig is the realm service's throttle and fault model.
//
// In JSON (PUT /_sim/realm) field names are snake_case and durations are Go
// duration strings ("250ms", "2s"); a bare number is read as nanoseconds.
// Output always uses duration strings.
type RealmConfig struct {
	// Rate is the sustained requests/s the service allows; 0 = unlimited.
	Rate float64 `json:"rate"`
	// Burst is the token-bucket capacity; 0 means max(1, the rate in
	// effect), so that it follows the Schedule.
	Burst int `json:"burst"`
	// Penalty: after a request finds no token, every request is throttled
	// until now+Penalty, and each throttled request in that window pushes it
	// to its own now+Penalty. This is what makes overshooting expensive.
	Penalty time.Duration `json:"penalty"`
	// Model, when set, names a member of the throttle model family
	// (throttlemodel.Parse: KIND[-ra]-SEED, e.g. penalty-extend-ra-4) that
	// throttles in place of the token bucket, at Rate and the Schedule's
	// rates, per Scope; Burst and Penalty must then be 0. Its throttled
	// answers carry Retry-After (with ThrottleHTTP) only if the model's name
	// says -ra, and its service time adds to Latency.
	Model string `json:"model"`
	// ThrottleHTTP false: throttled requests get 200 with MicrosoftAccount 2;
	// true: HTTP 429 with Retry-After in whole seconds (≥1).
	ThrottleHTTP bool `json:"throttle_http"`
	// Scope is ScopePerSource ("" too) or ScopePerTenant: whether all
	// requests share one bucket and penalty window or each tenant has its
	// own.
	Scope string `json:"scope"`
	// Schedule changes the rate over time (JSON: [{"after":"2m","rate":15}]),
	// counted from the first realm request after the throttle model was set:
	// a benchmark's clock starts with its traffic, not with the process.
	// Steps are in increasing order. At a step an ongoing penalty window
	// stays and the bucket keeps its tokens, up to the new burst.
	Schedule []RateStep `json:"schedule"`
	// Latency delays answers (JSON: {"min":"100ms","max":"400ms",
	// "tail_share":0.02,"tail_min":"1s","tail_max":"2s"}).
	Latency Latency `json:"latency"`
	Faults  Faults  `json:"faults"`
	// FailAddresses always get HTTP 500 (case-insensitive), until changed.
	FailAddresses []string `json:"fail_addresses"`
}

// Faults are per-request probabilities (0..1, summing to at most 1) of each
// kind of broken answer.
type Faults struct {
	Timeout     float64 `json:"timeout"`      // hang, then 504
	ServerError float64 `json:"server_error"` // HTTP 500 or 503
	BadJSON     float64 `json:"bad_json"`     // 200 with a truncated body
	Code4       float64 `json:"code4"`        // 200 with MicrosoftAccount 4
	MissingFlag float64 `json:"missing_flag"` // 200 without IsMicrosoftAccountSet
	// TimeoutHang is how long a timeout fault holds the request (default
	// 30s) unless the client hangs up first.
	TimeoutHang time.Duration `json:"timeout_hang"`
}

const defaultTimeoutHang = 30 * time.Second

// Validate reports the first out-of-range value.
func (c RealmConfig) Validate() error {
	if c.Rate < 0 {
		return fmt.Errorf("realm rate %v is negative", c.Rate)
	}
	if c.Burst < 0 {
		return fmt.Errorf("realm burst %d is negative", c.Burst)
	}
	if c.Penalty < 0 {
		return fmt.Errorf("realm penalty %v is negative", c.Penalty)
	}
	if err := c.validateModel(); err != nil {
		return err
	}
	if c.Scope != "" && c.Scope != ScopePerSource && c.Scope != ScopePerTenant {
		return fmt.Errorf("realm scope %q: want %s or %s", c.Scope, ScopePerSource, ScopePerTenant)
	}
	if err := validateSchedule(c.Schedule); err != nil {
		return fmt.Errorf("realm %w", err)
	}
	if err := c.Latency.validate(); err != nil {
		return fmt.Errorf("realm %w", err)
	}
	f := c.Faults
	sum := 0.0
	for _, p := range []struct {
		name string
		v    float64
	}{{"timeout", f.Timeout}, {"server_error", f.ServerError}, {"bad_json", f.BadJSON}, {"code4", f.Code4}, {"missing_flag", f.MissingFlag}} {
		if p.v < 0 || p.v > 1 {
			return fmt.Errorf("fault probability %s=%v outside 0..1", p.name, p.v)
		}
		sum += p.v
	}
	if sum > 1+1e-9 {
		return fmt.Errorf("fault probabilities sum to %v, more than 1", sum)
	}
	if f.TimeoutHang < 0 {
		return fmt.Errorf("timeout hang %v is negative", f.TimeoutHang)
	}
	return nil
}

// validateModel refuses a model name that is no family kind, and a model
// with the token bucket's own burst or penalty, or without a rate.
func (c RealmConfig) validateModel() error {
	if c.Model == "" {
		return nil
	}
	if _, err := throttlemodel.Parse(c.Model); err != nil {
		return fmt.Errorf("realm %w", err)
	}
	if c.Burst != 0 || c.Penalty != 0 {
		return fmt.Errorf("realm model %s has its own burst and penalty: burst and penalty must be 0", c.Model)
	}
	if c.Rate <= 0 {
		return fmt.Errorf("realm model %s needs a rate", c.Model)
	}
	return nil
}

func (c RealmConfig) clamped() RealmConfig {
	if c.validateModel() != nil {
		c.Model = ""
	}
	c.Rate = max(c.Rate, 0)
	c.Burst = max(c.Burst, 0)
	c.Penalty = max(c.Penalty, 0)
	if c.Scope != ScopePerTenant {
		c.Scope = ScopePerSource
	}
	if validateSchedule(c.Schedule) != nil {
		c.Schedule = nil
	}
	if c.Latency.validate() != nil {
		c.Latency = Latency{}
	}
	c.Faults.TimeoutHang = max(c.Faults.TimeoutHang, 0)
	ps := []*float64{&c.Faults.Timeout, &c.Faults.ServerError, &c.Faults.BadJSON, &c.Faults.Code4, &c.Faults.MissingFlag}
	sum := 0.0
	for _, p := range ps {
		*p = min(max(*p, 0), 1)
		sum += *p
	}
	if sum > 1 {
		for _, p := range ps {
			*p /= sum
		}
	}
	return c
}

// burstAt is the bucket capacity while rate is in effect.
func (c RealmConfig) burstAt(rate float64) float64 {
	if c.Burst > 0 {
		return float64(c.Burst)
	}
	return max(1, rate)
}

// rateAt is the rate in effect el after the schedule's start, and how long
// after the start it ends (-1: never).
func (c RealmConfig) rateAt(el time.Duration) (rate float64, until time.Duration) {
	rate = c.Rate
	for _, st := range c.Schedule {
		if el < st.After {
			return rate, st.After
		}
		rate = st.Rate
	}
	return rate, -1
}

// sameThrottle reports whether two models throttle alike, so that a change
// of faults alone keeps the buckets.
func (c RealmConfig) sameThrottle(o RealmConfig) bool {
	return c.Rate == o.Rate && c.Burst == o.Burst && c.Penalty == o.Penalty && c.Model == o.Model &&
		c.scope() == o.scope() && slices.Equal(c.Schedule, o.Schedule)
}

func (c RealmConfig) scope() string {
	if c.Scope == "" {
		return ScopePerSource
	}
	return c.Scope
}

func (c RealmConfig) timeoutHang() time.Duration {
	if c.Faults.TimeoutHang > 0 {
		return c.Faults.TimeoutHang
	}
	return defaultTimeoutHang
}

// jsonDuration reads a Go duration string or nanoseconds and writes a string.
type jsonDuration time.Duration

func (d jsonDuration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		*d = 0
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		v, err := time.ParseDuration(str)
		if err != nil {
			return fmt.Errorf("duration %q: %w", str, err)
		}
		*d = jsonDuration(v)
		return nil
	}
	var ns int64
	if err := json.Unmarshal(b, &ns); err != nil {
		return errors.New("duration must be a string like \"250ms\" or an integer of nanoseconds")
	}
	*d = jsonDuration(ns)
	return nil
}

// The wire forms swap the durations for jsonDuration; everything else keeps
// its tag.
type faultsWire struct {
	Timeout     float64      `json:"timeout"`
	ServerError float64      `json:"server_error"`
	BadJSON     float64      `json:"bad_json"`
	Code4       float64      `json:"code4"`
	MissingFlag float64      `json:"missing_flag"`
	TimeoutHang jsonDuration `json:"timeout_hang"`
}

type realmWire struct {
	Rate          float64        `json:"rate"`
	Burst         int            `json:"burst"`
	Penalty       jsonDuration   `json:"penalty"`
	Model         string         `json:"model,omitempty"`
	ThrottleHTTP  bool           `json:"throttle_http"`
	Scope         string         `json:"scope"`
	Schedule      []rateStepWire `json:"schedule"`
	Latency       latencyWire    `json:"latency"`
	Faults        faultsWire     `json:"faults"`
	FailAddresses []string       `json:"fail_addresses"`
}

// MarshalJSON writes durations as Go duration strings.
func (c RealmConfig) MarshalJSON() ([]byte, error) {
	f := c.Faults
	return json.Marshal(realmWire{
		Rate: c.Rate, Burst: c.Burst, Penalty: jsonDuration(c.Penalty), Model: c.Model, ThrottleHTTP: c.ThrottleHTTP,
		Scope: c.scope(), Schedule: scheduleWire(c.Schedule), Latency: c.Latency.wire(),
		Faults:        faultsWire{f.Timeout, f.ServerError, f.BadJSON, f.Code4, f.MissingFlag, jsonDuration(f.TimeoutHang)},
		FailAddresses: c.FailAddresses,
	})
}

// UnmarshalJSON accepts durations as Go duration strings or nanoseconds.
// Absent fields are zero: a PUT replaces the whole model.
func (c *RealmConfig) UnmarshalJSON(b []byte) error {
	var w realmWire
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	*c = RealmConfig{
		Rate: w.Rate, Burst: w.Burst, Penalty: time.Duration(w.Penalty), Model: w.Model, ThrottleHTTP: w.ThrottleHTTP,
		Scope: w.Scope, Schedule: scheduleFromWire(w.Schedule), Latency: w.Latency.latency(),
		Faults: Faults{w.Faults.Timeout, w.Faults.ServerError, w.Faults.BadJSON, w.Faults.Code4, w.Faults.MissingFlag,
			time.Duration(w.Faults.TimeoutHang)},
		FailAddresses: w.FailAddresses,
	}
	return nil
}

// MarshalJSON writes TimeoutHang as a Go duration string.
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsWire{f.Timeout, f.ServerError, f.BadJSON, f.Code4, f.MissingFlag, jsonDuration(f.TimeoutHang)})
}

// UnmarshalJSON accepts TimeoutHang as a Go duration string or nanoseconds.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var w faultsWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*f = Faults{w.Timeout, w.ServerError, w.BadJSON, w.Code4, w.MissingFlag, time.Duration(w.TimeoutHang)}
	return nil
}
