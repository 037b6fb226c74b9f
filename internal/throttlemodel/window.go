package throttlemodel

import "time"

// fixedWindow counts admitted requests per key in windows of Window whose
// boundaries fall at Phase past whole multiples of Window (Unix time).
type fixedWindow struct {
	spec    Spec
	limit   int
	windows keyed[windowCount]
}

type windowCount struct {
	index int64 // which window the count is for
	count int
}

func newFixedWindow(s Spec, capacity float64) *fixedWindow {
	return &fixedWindow{spec: s, limit: windowLimit(capacity, s.Params.Window),
		windows: newKeyed(func() *windowCount { return &windowCount{index: -1} })}
}

// index is the window now falls in and when that window ends.
func (m *fixedWindow) index(now time.Time) (int64, time.Time) {
	w := int64(m.spec.Params.Window)
	t := now.UnixNano() - int64(m.spec.Params.Phase)
	i := t / w
	if t < 0 && t%w != 0 {
		i--
	}
	return i, time.Unix(0, (i+1)*w+int64(m.spec.Params.Phase))
}

func (m *fixedWindow) Admit(now time.Time, key string) Decision {
	c := m.windows.get(key)
	i, end := m.index(now)
	if c.index != i {
		c.index, c.count = i, 0
	}
	if c.count >= m.limit {
		return m.spec.throttled(end.Sub(now))
	}
	c.count++
	return Decision{}
}

// SetCapacity changes the limit at once, also for the current window.
func (m *fixedWindow) SetCapacity(_ time.Time, perSecond float64) {
	m.limit = windowLimit(max(perSecond, minCapacity), m.spec.Params.Window)
}

// slidingWindow allows limit admitted requests per key in any Window: a
// request is admitted when fewer than limit were admitted in (now-Window,
// now].
type slidingWindow struct {
	spec  Spec
	limit int
	logs  keyed[timeLog]
}

func newSlidingWindow(s Spec, capacity float64) *slidingWindow {
	return &slidingWindow{spec: s, limit: windowLimit(capacity, s.Params.Window),
		logs: newKeyed(func() *timeLog { return &timeLog{} })}
}

func (m *slidingWindow) Admit(now time.Time, key string) Decision {
	l := m.logs.get(key)
	l.expire(now.Add(-m.spec.Params.Window))
	if l.len() >= m.limit {
		// Room comes when enough of the oldest leave the window.
		oldest := l.at(l.len() - m.limit)
		return m.spec.throttled(oldest.Add(m.spec.Params.Window).Sub(now))
	}
	l.push(now)
	return Decision{}
}

// SetCapacity changes the limit at once; what the window holds stays.
func (m *slidingWindow) SetCapacity(_ time.Time, perSecond float64) {
	m.limit = windowLimit(max(perSecond, minCapacity), m.spec.Params.Window)
}

// timeLog is a FIFO of times in increasing order.
type timeLog struct {
	times []time.Time
	head  int
}

func (l *timeLog) len() int { return len(l.times) - l.head }

// at is the i-th oldest time still in the log.
func (l *timeLog) at(i int) time.Time { return l.times[l.head+i] }

func (l *timeLog) push(t time.Time) { l.times = append(l.times, t) }

// expire drops the times at or before edge.
func (l *timeLog) expire(edge time.Time) {
	for l.head < len(l.times) && !l.times[l.head].After(edge) {
		l.head++
	}
	if l.head > 1024 && l.head*2 > len(l.times) {
		l.times = append(l.times[:0], l.times[l.head:]...)
		l.head = 0
	}
}
