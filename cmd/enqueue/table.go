package main

import (
	"bufio"
	"strings"
	"unicode/utf8"
)

// columns lays out a table of a known widest cell per column as
// tabwriter.NewWriter(w, 2, 4, 2, ' ', 0) lays out a block of tab-terminated
// cells, without holding the table: a long list is measured in one pass
// and written in another. The last cell of a line is not a column.
type columns []int

// note widens the columns to cells.
func (c columns) note(cells ...string) {
	for i, s := range cells[:len(cells)-1] {
		c[i] = max(c[i], utf8.RuneCountInString(s))
	}
}

// line writes cells, each but the last padded to its column and two
// spaces.
func (c columns) line(w *bufio.Writer, cells ...string) {
	for i, s := range cells[:len(cells)-1] {
		w.WriteString(s)
		w.WriteString(strings.Repeat(" ", max(c[i]+2-utf8.RuneCountInString(s), 2)))
	}
	w.WriteString(cells[len(cells)-1])
	w.WriteByte('\n')
}
