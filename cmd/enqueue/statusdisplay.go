package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/vbauerster/cupwriter"
	"golang.org/x/term"

	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/runview"
)

// statusDisplay shows successive statuses of a run.
type statusDisplay interface {
	show(v runview.Status) error
	close()
}

// newStatusDisplay picks JSON lines, a block redrawn in place on a
// terminal, or plain lines.
func newStatusDisplay(w io.Writer, o *statusOptions) statusDisplay {
	if o.Output == "json" {
		return jsonDisplay{json.NewEncoder(w)}
	}
	tty, width := isTerminal(w)
	if o.terminal != nil {
		tty, width = *o.terminal, 0
	}
	if !tty {
		return &lineDisplay{w: w}
	}
	now := o.now
	if now == nil {
		now = time.Now
	}
	// cupwriter moves the cursor back up over the previous block before
	// writing the next one and clears below it, so the block is redrawn
	// in place; the escape sequences are its business, not ours.
	return &liveDisplay{cw: cupwriter.New(w, true), width: width, now: now}
}

// isTerminal reports whether w is a terminal, and its width (0: unknown).
func isTerminal(w io.Writer) (bool, int) {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false, 0
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		width = 0
	}
	return true, width
}

type jsonDisplay struct{ enc *json.Encoder }

func (d jsonDisplay) show(v runview.Status) error { return d.enc.Encode(v) }
func (jsonDisplay) close()                        {}

type lineDisplay struct{ w io.Writer }

func (d *lineDisplay) show(v runview.Status) error {
	if _, err := fmt.Fprintln(d.w, statusLine(v)); err != nil {
		return err
	}
	if v.LastError != "" && v.State == runstore.StateIncomplete {
		_, err := fmt.Fprintf(d.w, "submit stopped: %s\nresume with: enqueue submit --run-id %s (same options)\n", printable(v.LastError), v.RunID)
		return err
	}
	return nil
}

func (*lineDisplay) close() {}

type liveDisplay struct {
	cw    *cupwriter.Writer
	width int
	now   func() time.Time
}

func (d *liveDisplay) show(v runview.Status) error {
	lines := statusBlock(v, d.now())
	for _, l := range lines {
		// A line wider than the terminal would wrap and the redraw would
		// move up one line too few.
		if d.width > 0 && utf8.RuneCountInString(l) >= d.width {
			l = string([]rune(l)[:d.width-1])
		}
		d.cw.WriteString(l)
		d.cw.WriteString("\n")
	}
	return d.cw.Flush(len(lines))
}

// close leaves the last block on screen: the cursor-up that would redraw
// it stays unwritten in the buffer.
func (d *liveDisplay) close() {}

// printable replaces control characters, so that a directory value cannot
// send escape sequences to the operator's terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}
