package report

import (
	"errors"
	"iter"

	"github.com/msaudit/msaudit/internal/runstore"
)

// Entry is one user-address pair of a comparison.
type Entry struct {
	Address     string `json:"address"`
	UserID      string `json:"user_id"`
	UPN         string `json:"upn"`
	DisplayName string `json:"display_name"`
}

// Class is where a comparison puts an address found present in either
// run.
type Class int

// The classes, in the order a comparison lists them.
const (
	// Resolved: a consumer account in the earlier run, none in the later
	// (renamed).
	Resolved Class = iota
	// StillPresent: a consumer account in both.
	StillPresent
	// NewlyPresent: a consumer account in the later run, not in the earlier
	// (absent there, not answered, or not checked).
	NewlyPresent
	// Unconfirmed: a consumer account in the earlier run, no answer in the
	// later (dead-lettered, pending or not checked): neither resolved nor
	// not.
	Unconfirmed
)

// Classes lists every class, in order.
var Classes = []Class{Resolved, StillPresent, NewlyPresent, Unconfirmed}

// Name is the class's name in the JSON of a comparison.
func (c Class) Name() string {
	return [...]string{"resolved", "still_present", "newly_present", "unconfirmed"}[c]
}

// Counts are the addresses of each class.
type Counts [4]int

// CompareRuns classifies every address found present in either run,
// reading both sources once, side by side (both are sorted by address).
// It calls add with each entry, a user-address pair, the users as the run
// that decided the class lists them; the entries of each class come in
// order, by address then user ID. It returns the addresses of each class.
func CompareRuns(old, cur Source, add func(Class, Entry) error) (Counts, error) {
	var n Counts
	o, stopOld := newGroupReader(old)
	defer stopOld()
	c, stopCur := newGroupReader(cur)
	defer stopCur()
	if err := o.advance(); err != nil {
		return n, err
	}
	if err := c.advance(); err != nil {
		return n, err
	}
	emit := func(cl Class, rows []Row) error {
		n[cl]++
		for _, r := range rows {
			if err := add(cl, entry(r)); err != nil {
				return err
			}
		}
		return nil
	}
	for len(o.rows) > 0 || len(c.rows) > 0 {
		var err error
		switch {
		case len(c.rows) == 0 || (len(o.rows) > 0 && o.addr() < c.addr()): // not re-checked
			if o.status() == runstore.StatePresent {
				err = emit(Unconfirmed, o.rows)
			}
			if err == nil {
				err = o.advance()
			}
		default:
			both := len(o.rows) > 0 && o.addr() == c.addr()
			if cl, listed := classify(both && o.status() == runstore.StatePresent, c.status()); listed {
				err = emit(cl, c.rows)
			}
			if err == nil && both {
				err = o.advance()
			}
			if err == nil {
				err = c.advance()
			}
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// classify is the class of an address the later run holds, given whether
// the earlier found it present.
func classify(was bool, now runstore.AddressStatus) (Class, bool) {
	switch {
	case was && now == runstore.StateAbsent:
		return Resolved, true
	case was && now == runstore.StatePresent:
		return StillPresent, true
	case !was && now == runstore.StatePresent:
		return NewlyPresent, true
	case was:
		return Unconfirmed, true
	}
	return 0, false
}

// groupReader reads a source an address at a time.
type groupReader struct {
	next func() (Row, error, bool)
	peek Row // the first row of the next address
	has  bool
	rows []Row // the rows of the current address; none at the end
}

func newGroupReader(src Source) (*groupReader, func()) {
	next, stop := iter.Pull2(rowsOf(src))
	return &groupReader{next: next}, stop
}

func (g *groupReader) addr() string                   { return g.rows[0].Address }
func (g *groupReader) status() runstore.AddressStatus { return g.rows[len(g.rows)-1].Status }

// advance reads the rows of the next address.
func (g *groupReader) advance() error {
	g.rows = g.rows[:0]
	for {
		if !g.has {
			r, err, ok := g.next()
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			g.peek, g.has = r, true
		}
		if len(g.rows) > 0 && g.peek.Address != g.rows[0].Address {
			return nil
		}
		g.rows = append(g.rows, g.peek)
		g.has = false
	}
}

var errStopped = errors.New("stopped")

// rowsOf is src one row at a time.
func rowsOf(src Source) iter.Seq2[Row, error] {
	return func(yield func(Row, error) bool) {
		stopped := false
		err := src(func(part []Row) error {
			for _, r := range part {
				if !yield(r, nil) {
					stopped = true
					return errStopped
				}
			}
			return nil
		})
		if err != nil && !stopped {
			yield(Row{}, err)
		}
	}
}

func entry(r Row) Entry {
	return Entry{Address: r.Address, UserID: r.UserID, UPN: r.UPN, DisplayName: r.DisplayName}
}

// Comparison is what the HTML report shows of a comparison of run Old with
// run New: the addresses of each class, and the first entries of the
// resolved and the newly present.
type Comparison struct {
	Old, New string
	Counts   Counts
	// Entries counts the entries of each class.
	Entries Counts
	// Resolved and NewlyPresent are the first entries of their class, at
	// most the limit Summarize was given.
	Resolved, NewlyPresent []Entry
}

// Summarize compares run oldID with run newID (CompareRuns), keeping at
// most limit entries of each list the HTML report shows.
func Summarize(oldID string, old Source, newID string, cur Source, limit int) (*Comparison, error) {
	c := &Comparison{Old: oldID, New: newID}
	var err error
	c.Counts, err = CompareRuns(old, cur, func(cl Class, e Entry) error {
		c.Entries[cl]++
		switch {
		case cl == Resolved && len(c.Resolved) < limit:
			c.Resolved = append(c.Resolved, e)
		case cl == NewlyPresent && len(c.NewlyPresent) < limit:
			c.NewlyPresent = append(c.NewlyPresent, e)
		}
		return nil
	})
	return c, err
}
