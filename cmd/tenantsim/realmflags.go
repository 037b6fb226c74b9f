package main

import (
	"fmt"

	"github.com/msaudit/msaudit/internal/tenantsim"
	"github.com/msaudit/msaudit/internal/throttlemodel"
)

// realm is the realm model the flags describe; a malformed flag is an error
// that names it.
func (o *options) realm(failAddresses []string) (tenantsim.RealmConfig, error) {
	if o.realmScope != tenantsim.ScopePerSource && o.realmScope != tenantsim.ScopePerTenant {
		return tenantsim.RealmConfig{}, fmt.Errorf("--realm-scope %q: want %s or %s", o.realmScope,
			tenantsim.ScopePerSource, tenantsim.ScopePerTenant)
	}
	if err := o.checkModel(); err != nil {
		return tenantsim.RealmConfig{}, err
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
		Model:        o.realmModel,
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

// checkModel refuses a --realm-model that names no member of the family,
// or that comes without a rate or with the token bucket's own flags.
func (o *options) checkModel() error {
	if o.realmModel == "" {
		return nil
	}
	if _, err := throttlemodel.Parse(o.realmModel); err != nil {
		return fmt.Errorf("--realm-model: %w", err)
	}
	switch {
	case o.realmRate <= 0:
		return fmt.Errorf("--realm-model %s needs a --realm-rate", o.realmModel)
	case o.realmBurst != 0 || o.realmPenalty != 0:
		return fmt.Errorf("--realm-model %s has its own burst and penalty: leave --realm-burst and --realm-penalty unset", o.realmModel)
	}
	return nil
}
