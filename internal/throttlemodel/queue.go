package throttlemodel

import "time"

// queue serves each key's requests one after another at the capacity: a
// request's answer waits for the backlog ahead of it plus its own 1/capacity
// of service, plus the fixed Service. A request that would find more than
// MaxQueue of backlog is throttled and does not join the queue.
type queue struct {
	spec Spec
	rate float64
	busy keyed[time.Time] // when each key's backlog is worked off
}

func newQueue(s Spec, capacity float64) *queue {
	return &queue{spec: s, rate: capacity, busy: newKeyed(func() *time.Time { return new(time.Time) })}
}

func (m *queue) Admit(now time.Time, key string) Decision {
	free := m.busy.get(key)
	backlog := max(0, free.Sub(now))
	if backlog > m.spec.Params.MaxQueue {
		return m.spec.throttled(backlog - m.spec.Params.MaxQueue)
	}
	done := now.Add(backlog + seconds(1/m.rate))
	*free = done
	return Decision{Latency: m.spec.Params.Service + done.Sub(now)}
}

// SetCapacity serves the requests admitted from now on at the new rate;
// the backlog already queued keeps its finish time.
func (m *queue) SetCapacity(_ time.Time, perSecond float64) {
	m.rate = max(perSecond, minCapacity)
}
