package main

import (
	"fmt"

	"github.com/msaudit/msaudit/internal/tenantsim"
)

// realm is the realm model the flags describe; a malformed flag is an error
// that names it.
func (o *options) realm(failAddresses []string) (tenantsim.RealmConfig, error) {
	if o.realmScope != tenantsim.ScopePerSource && o.realmScope != tenantsim.ScopePerTenant {
		return tenantsim.RealmConfig{}, fmt.Errorf("--realm-scope %q: want %s or %s", o.realmScope,
			tenantsim.ScopePerSource, tenantsim.ScopePerTenant)
	}
	schedule, err := tenantsim.ParseSchedule(o.realmSchedule)
	if err != nil {
		return tenantsim.RealmConfig{}, fmt.Errorf("--realm-schedule: %w", err)
	}
	var lat tenantsim.Latency
	if lat.Min, lat.Max, err = tenantsim.ParseDurationRange(o.realmLatency); err != nil {
		return tenantsim.RealmConfig{}, fmt.Errorf("--realm-latency: %w", err)
	}
	if lat.TailShare, lat.TailMin, lat.TailMax, err = tenantsim.ParseLatencyTail(o.realmLatencyTail); err != nil {
		return tenantsim.RealmConfig{}, fmt.Errorf("--realm-latency-tail: %w", err)
	}
	return tenantsim.RealmConfig{
		Rate:         o.realmRate,
		Burst:        o.realmBurst,
		Penalty:      o.realmPenalty,
		ThrottleHTTP: o.realmThrottle == "http429",
		Scope:        o.realmScope,
		Schedule:     schedule,
		Latency:      lat,
		Faults: tenantsim.Faults{
			Timeout:     o.faultTimeout,
			ServerError: o.fault5xx,
			BadJSON:     o.faultBadJSON,
			Code4:       o.faultCode4,
			MissingFlag: o.faultMissingFlag,
			TimeoutHang: o.faultTimeoutHang,
		},
		FailAddresses: failAddresses,
	}, nil
}
