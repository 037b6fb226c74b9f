package throttlemodel

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// The family holds every kind in the held-out half, every kind but the
// held-out-only ones in the tuning half too, both with and without
// Retry-After in each half, with unique names that Parse reads back.
func TestFamilySplit(t *testing.T) {
	t.Parallel()
	type cell struct {
		kind        Kind
		heldOut, ra bool
	}
	seen := map[cell]int{}
	names := map[string]bool{}
	for _, s := range Family() {
		seen[cell{s.Kind, s.HeldOut, s.RetryAfter}]++
		if names[s.Name()] {
			t.Errorf("%s appears twice", s.Name())
		}
		names[s.Name()] = true
		p, err := Parse(s.Name())
		if err != nil {
			t.Fatalf("Parse(%q): %v", s.Name(), err)
		}
		if !reflect.DeepEqual(p, s) {
			t.Errorf("Parse(%q) = %+v, want %+v", s.Name(), p, s)
		}
	}
	for _, k := range Kinds() {
		for _, ra := range []bool{false, true} {
			if seen[cell{k, true, ra}] == 0 {
				t.Errorf("%s (Retry-After %v) has no held-out member", k, ra)
			}
			if got, want := seen[cell{k, false, ra}] > 0, !heldOutOnly[k]; got != want {
				t.Errorf("%s (Retry-After %v) in the tuning half: %v, want %v", k, ra, got, want)
			}
		}
	}
	if len(Tuning())+len(HeldOut()) != len(Family()) || len(HeldOut()) < len(Tuning()) {
		t.Errorf("halves of %d and %d in a family of %d", len(Tuning()), len(HeldOut()), len(Family()))
	}
}

// A held-out member of a kind has parameters of its own, not a tuning
// member's.
func TestHeldOutParametersDiffer(t *testing.T) {
	t.Parallel()
	tuning := map[Params]string{}
	for _, s := range Tuning() {
		tuning[s.Params] = s.Name()
	}
	for _, s := range HeldOut() {
		if s.Kind == FixedWindow {
			continue // only the phase is drawn; it differs, checked below
		}
		if name, dup := tuning[s.Params]; dup {
			t.Errorf("%s has the parameters of the tuning member %s", s.Name(), name)
		}
	}
}

// The same seed draws the same parameters and the same decisions; another
// seed draws others.
func TestDeterministicFromSeed(t *testing.T) {
	t.Parallel()
	for _, k := range Kinds() {
		a, b, c := NewSpec(k, true, 7), NewSpec(k, true, 7), NewSpec(k, true, 8)
		if a != b {
			t.Errorf("%s: seed 7 drew %+v and %+v", k, a.Params, b.Params)
		}
		if a.Params == c.Params {
			t.Errorf("%s: seeds 7 and 8 drew the same %+v", k, a.Params)
		}
		if da, db := decisions(a), decisions(b); !reflect.DeepEqual(da, db) {
			t.Errorf("%s: two models of one seed decided differently", k)
		}
	}
}

// decisions drives a model of s above and around its capacity and returns
// every decision.
func decisions(s Spec) []Decision {
	m := s.New(20)
	var out []Decision
	now := t0
	for i := range 2000 {
		now = now.Add(time.Duration(20+i%50) * time.Millisecond)
		out = append(out, m.Admit(now, "k"))
	}
	return out
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"", "bucket-small", "bucket-small-x", "token-bucket-1", "bucket-small-ra", "-1"} {
		if _, err := Parse(name); err == nil {
			t.Errorf("Parse(%q) accepted", name)
		} else if !strings.Contains(err.Error(), "throttle") {
			t.Errorf("Parse(%q): %v does not say what it read", name, err)
		}
	}
	s, err := Parse("queue-ra-99")
	if err != nil || s.Kind != Queue || !s.RetryAfter || s.Seed != 99 || s.HeldOut {
		t.Errorf(`Parse("queue-ra-99") = %+v, %v`, s, err)
	}
}
