package e2e

import (
	"testing"
	"time"
)

// The start-up figure is the end of the first 5 s window whose answers came
// at the rate asked for, counted from the first request.
func TestStartUpIsTheEndOfTheFirstFastWindow(t *testing.T) {
	first := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	ss := samples{first: first, list: []simSample{{at: first}}}
	var answered int64
	for s := 1; s <= 30; s++ { // 10/s for 10 s, then 20/s
		if s <= 10 {
			answered += 10
		} else {
			answered += 20
		}
		ss.list = append(ss.list, simSample{at: first.Add(time.Duration(s) * time.Second), answered: answered})
	}
	// [9 s, 14 s] is the first window at 18/s: 1 s at 10, 4 s at 20.
	if got := ss.startUp(18); got != 14*time.Second {
		t.Errorf("startUp(18) = %s, want 14s", got)
	}
	if got := ss.startUp(10); got != 5*time.Second {
		t.Errorf("startUp(10) = %s, want 5s", got)
	}
	if got := ss.startUp(25); got != -1 {
		t.Errorf("startUp(25) = %s, want -1 (never)", got)
	}
}
