// Package spill sorts more records than should be held in memory: a Sorter
// keeps records up to a budget of bytes, then writes them, sorted, as a run
// to a temporary file, and in the end merges the runs. The file is removed
// from its directory as soon as it is created, so that nothing of it is left
// behind even if the process is killed (records may hold personal data).
package spill

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// Config says where and when Sorters spill.
type Config struct {
	// Dir holds the temporary file ("": the system's temporary directory).
	Dir string
	// Budget is the bytes of records a Sorter holds before it spills; 0
	// keeps everything in memory.
	Budget int
}

// New returns an empty Sorter.
func (c Config) New() *Sorter { return &Sorter{cfg: c} }

// recOverhead is what a record costs in memory besides its bytes.
const recOverhead = 24

// readBuffer is the read buffer of each run while they are merged.
const readBuffer = 64 << 10

// Sorter orders records by key, bytewise; records of equal keys keep the
// order they were added in. Add, then Each once, then Close.
type Sorter struct {
	cfg   Config
	arena []byte // the records held: key then value
	recs  []rec
	file  *os.File
	w     *bufio.Writer
	runs  []section // of the file
	size  int64     // bytes written to the file
}

type rec struct {
	off        int
	klen, vlen int
}

type section struct{ off, n int64 }

// Add adds a record; key and value are copied.
func (s *Sorter) Add(key, value []byte) error {
	s.recs = append(s.recs, rec{off: len(s.arena), klen: len(key), vlen: len(value)})
	s.arena = append(append(s.arena, key...), value...)
	if s.cfg.Budget > 0 && len(s.arena)+recOverhead*len(s.recs) >= s.cfg.Budget {
		return s.spill()
	}
	return nil
}

func (s *Sorter) key(r rec) []byte   { return s.arena[r.off : r.off+r.klen] }
func (s *Sorter) value(r rec) []byte { return s.arena[r.off+r.klen : r.off+r.klen+r.vlen] }

// sortHeld sorts the records held, stably (offsets grow with insertion).
func (s *Sorter) sortHeld() {
	slices.SortFunc(s.recs, func(a, b rec) int {
		if c := bytes.Compare(s.key(a), s.key(b)); c != 0 {
			return c
		}
		return a.off - b.off
	})
}

// spill writes the records held as one sorted run and forgets them.
func (s *Sorter) spill() error {
	if len(s.recs) == 0 {
		return nil
	}
	if s.file == nil {
		f, err := os.CreateTemp(s.cfg.Dir, "msaudit-spill-*")
		if err != nil {
			return fmt.Errorf("spill sorted records to a temporary file (set TMPDIR to a writable directory): %w", err)
		}
		if err := os.Remove(f.Name()); err != nil {
			f.Close()
			return fmt.Errorf("spill: %w", err)
		}
		s.file, s.w = f, bufio.NewWriterSize(f, readBuffer)
	}
	s.sortHeld()
	start := s.size
	var hdr [2 * binary.MaxVarintLen64]byte
	for _, r := range s.recs {
		n := binary.PutUvarint(hdr[:], uint64(r.klen))
		n += binary.PutUvarint(hdr[n:], uint64(r.vlen))
		if _, err := s.w.Write(hdr[:n]); err != nil {
			return fmt.Errorf("spill: %w", err)
		}
		if _, err := s.w.Write(s.arena[r.off : r.off+r.klen+r.vlen]); err != nil {
			return fmt.Errorf("spill: %w", err)
		}
		s.size += int64(n + r.klen + r.vlen)
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	s.runs = append(s.runs, section{start, s.size - start})
	s.arena, s.recs = s.arena[:0], s.recs[:0]
	return nil
}

// Spilled reports whether records went to the temporary file.
func (s *Sorter) Spilled() bool { return s.file != nil }

// Each calls fn with every record in key order; key and value are only
// valid during the call.
func (s *Sorter) Each(fn func(key, value []byte) error) error {
	if s.file == nil {
		s.sortHeld()
		for _, r := range s.recs {
			if err := fn(s.key(r), s.value(r)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := s.spill(); err != nil {
		return err
	}
	s.arena, s.recs = nil, nil // all of it is in the runs now
	return s.merge(fn)
}

// merge reads the runs side by side, always taking the smallest head.
func (s *Sorter) merge(fn func(key, value []byte) error) error {
	h := make(heads, 0, len(s.runs))
	for i, r := range s.runs {
		c := &cursor{r: bufio.NewReaderSize(io.NewSectionReader(s.file, r.off, r.n), readBuffer), run: i}
		ok, err := c.next()
		if err != nil {
			return err
		}
		if ok {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	for len(h) > 0 {
		c := h[0]
		if err := fn(c.key, c.value); err != nil {
			return err
		}
		ok, err := c.next()
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	return nil
}

// Close releases the records and the temporary file.
func (s *Sorter) Close() error {
	s.arena, s.recs = nil, nil
	if s.file == nil {
		return nil
	}
	err := s.file.Close()
	s.file = nil
	return err
}

// cursor is the head of one run.
type cursor struct {
	r          *bufio.Reader
	run        int
	buf        []byte
	key, value []byte
}

// next reads the run's next record; false at its end.
func (c *cursor) next() (bool, error) {
	klen, err := binary.ReadUvarint(c.r)
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("spill: read run: %w", err)
	}
	vlen, err := binary.ReadUvarint(c.r)
	if err != nil {
		return false, fmt.Errorf("spill: read run: %w", err)
	}
	n := int(klen + vlen)
	if cap(c.buf) < n {
		c.buf = make([]byte, n)
	}
	c.buf = c.buf[:n]
	if _, err := io.ReadFull(c.r, c.buf); err != nil {
		return false, fmt.Errorf("spill: read run: %w", err)
	}
	c.key, c.value = c.buf[:klen], c.buf[klen:]
	return true, nil
}

// heads is a min-heap of cursors by key, then by run (runs hold records
// in the order they were added).
type heads []*cursor

func (h heads) Len() int { return len(h) }
func (h heads) Less(i, j int) bool {
	if c := bytes.Compare(h[i].key, h[j].key); c != 0 {
		return c < 0
	}
	return h[i].run < h[j].run
}
func (h heads) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *heads) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *heads) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// AppendKey appends s to a key so that keys made of the same number of
// parts sort as their parts would, one after the other: a zero byte is
// written 0x00 0xFF and every part ends with 0x00 0x01.
func AppendKey(key []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			key = append(key, 0, 0xFF)
		} else {
			key = append(key, s[i])
		}
	}
	return append(key, 0, 1)
}

// SplitKey returns the first part of a key AppendKey made, and the rest.
func SplitKey(key []byte) (part string, rest []byte) {
	var b []byte
	for i := 0; i < len(key); i++ {
		if key[i] != 0 {
			continue
		}
		if i+1 < len(key) && key[i+1] == 0xFF {
			b = append(append(b, key[:i]...), 0)
			key, i = key[i+2:], -1
			continue
		}
		b = append(b, key[:i]...)
		return string(b), key[min(i+2, len(key)):]
	}
	return string(append(b, key...)), nil
}

// AppendField appends s to a value with its length in front.
func AppendField(value []byte, s string) []byte {
	return append(binary.AppendUvarint(value, uint64(len(s))), s...)
}

// NextField returns the first field of a value AppendField made, and the
// rest; a value cut short gives what is there.
func NextField(value []byte) (field string, rest []byte) {
	n, k := binary.Uvarint(value)
	if k <= 0 {
		return "", nil
	}
	value = value[k:]
	n = min(n, uint64(len(value)))
	return string(value[:n]), value[n:]
}
