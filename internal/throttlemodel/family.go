package throttlemodel

// heldOutOnly are the kinds with no member in the tuning half: a limiter
// meets their shape for the first time when it is judged.
var heldOutOnly = map[Kind]bool{SlidingWindow: true, SoftLimit: true}

// Family is every member of the family, in kind order. Every kind has two
// held-out members, seeds 3 (without Retry-After) and 4 (with it); every
// kind but SlidingWindow and SoftLimit also has two tuning members, seeds 1
// (with Retry-After) and 2 (without). Seeds draw a kind's parameters, so the
// held-out members of a kind differ from its tuning members in parameters
// as well as in name.
func Family() []Spec {
	var out []Spec
	for _, k := range Kinds() {
		if !heldOutOnly[k] {
			out = append(out, NewSpec(k, true, 1), NewSpec(k, false, 2))
		}
		h3, h4 := NewSpec(k, false, 3), NewSpec(k, true, 4)
		h3.HeldOut, h4.HeldOut = true, true
		out = append(out, h3, h4)
	}
	return out
}

// Tuning is the tuning half of Family.
func Tuning() []Spec { return half(false) }

// HeldOut is the held-out half of Family.
func HeldOut() []Spec { return half(true) }

func half(heldOut bool) []Spec {
	var out []Spec
	for _, s := range Family() {
		if s.HeldOut == heldOut {
			out = append(out, s)
		}
	}
	return out
}
