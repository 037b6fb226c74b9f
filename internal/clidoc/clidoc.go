// Package clidoc checks that docs/cli.md documents a command tree: every
// command, and every flag with its shorthand, its default as --help shows it
// and the environment variable package envflag binds to it. It is used only
// by tests (one in each of cmd/enqueue, cmd/worker and cmd/tenantsim); no
// binary links it.
//
// How the document is read. A command is documented by the section whose
// heading is its full path ("## 4. enqueue submit", "### enqueue status"; a
// leading section number and backquotes are ignored), or whose heading
// Options.Sections names for it; a section runs to the next heading of the
// same or a higher level. A flag is documented by a row of a flag table (a
// Markdown table whose first column is headed "flag") in the section of the
// command that defines it, or in a section Options.Also names for that
// command, the command's own first. Flags a command inherits are checked
// where they are defined, not again on every subcommand. In the row:
//
//   - the first cell holds the flag as `--name`, and its shorthand as `-x`;
//   - the "default" cell holds the default as a code span, unless it is the
//     zero value of the flag's type (false, 0, 0s, "", []), which --help
//     does not show either; durations and numbers compare by value (`720h`
//     is 720h0m0s, `5` is 5.0), other defaults as text;
//   - the "env" cell holds, as a code span, the variable the flag falls back
//     to (envflag.Env).
//
// In return, every row of a flag table in a command's own section must name
// flags of that command, and its "env" cell only the variables they read.
//
// cobra's own help and completion commands and --help and --version flags
// are left out: the document's conventions and run commands mention them
// in prose.
package clidoc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/msaudit/msaudit/internal/envflag"
)

// File is the document checked, relative to the module root.
const File = "docs/cli.md"

// Options say where the document puts what is not in a command's own
// section. Both maps are keyed by the command's full path ("enqueue local")
// and name sections by their heading without its number.
type Options struct {
	// Sections names the section of a command whose heading is not its
	// path, such as the root whose flags are the global ones.
	Sections map[string]string
	// Also names further sections whose flag tables document flags of the
	// command, such as those of 'enqueue submit' for 'enqueue local'.
	Also map[string][]string
}

// Check reports, as test errors, every command and flag of the tree under
// root that File does not document.
func Check(t testing.TB, root *cobra.Command, o Options) {
	t.Helper()
	path, err := docPath()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range Problems(File, doc, root, o) {
		t.Error(p)
	}
}

// docPath finds File from the working directory (a package's directory
// under go test) by looking up for go.mod.
func docPath() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, File), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("clidoc: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Problems lists what doc, named name in the messages, does not document of
// the tree under root, one message each, in the tree's order.
func Problems(name string, doc []byte, root *cobra.Command, o Options) []string {
	d := parse(doc)
	var out []string
	report := func(format string, args ...any) {
		out = append(out, name+": "+fmt.Sprintf(format, args...))
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if isCobras(c) {
			return
		}
		checkCommand(d, c, o, report)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return out
}

// isCobras tells the commands cobra adds by itself.
func isCobras(c *cobra.Command) bool {
	return c.HasParent() && (c.Name() == "help" || c.Name() == "completion")
}

func checkCommand(d *document, c *cobra.Command, o Options, report func(string, ...any)) {
	path := c.CommandPath()
	heading := path
	if h, ok := o.Sections[path]; ok {
		heading = h
	}
	own, n := d.section(heading)
	switch {
	case n == 0:
		report("%s: command not documented (no section headed %q)", path, heading)
	case n > 1:
		report("%s: %d sections headed %q", path, n, heading)
	}
	var sections []*section
	if own != nil {
		sections = append(sections, own)
	}
	for _, h := range o.Also[path] {
		s, n := d.section(h)
		if n != 1 {
			report("%s: want one section headed %q, found %d", path, h, n)
			continue
		}
		sections = append(sections, s)
	}

	flags := c.LocalFlags()
	flags.VisitAll(func(f *pflag.Flag) {
		if isCobrasFlag(f) {
			return
		}
		checkFlag(path, f, sections, report)
	})
	if own != nil {
		checkRows(path, own, flags, report)
	}
}

// isCobrasFlag tells the flags cobra adds by itself.
func isCobrasFlag(f *pflag.Flag) bool { return f.Name == "help" || f.Name == "version" }

// checkFlag reports what the first row documenting f, in sections, misses.
func checkFlag(path string, f *pflag.Flag, sections []*section, report func(string, ...any)) {
	long := "--" + f.Name
	var (
		r  *row
		in *section
	)
	for _, s := range sections {
		if r = s.row(long); r != nil {
			in = s
			break
		}
	}
	switch {
	case r == nil && len(sections) == 0:
		report("%s %s: flag not documented (the command has no section)", path, long)
		return
	case r == nil:
		report("%s %s: flag not documented (no row in a flag table of %s)", path, long, names(sections))
		return
	}
	where := fmt.Sprintf("in section %q", in.title)
	if f.Shorthand != "" && !contains(spans(r.flag), "-"+f.Shorthand) {
		report("%s %s: shorthand -%s not documented %s", path, long, f.Shorthand, where)
	}
	if !zero(f) && !hasDefault(f, spans(r.def)) {
		report("%s %s: default %q not documented %s", path, long, f.DefValue, where)
	}
	if env := envflag.Env(f); env != "" && !contains(spans(r.env), env) {
		report("%s %s: env %s not documented %s", path, long, env, where)
	}
}

// checkRows reports rows of s's flag tables that document what the command
// does not have.
func checkRows(path string, s *section, flags *pflag.FlagSet, report func(string, ...any)) {
	for _, r := range s.rows {
		var envs, shorts, shortSpans []string
		for _, sp := range spans(r.flag) {
			switch {
			case strings.HasPrefix(sp, "--"):
				f := flags.Lookup(sp[2:])
				if f == nil {
					report("%s %s: documented in section %q, but the command has no such flag", path, sp, s.title)
					continue
				}
				if e := envflag.Env(f); e != "" {
					envs = append(envs, e)
				}
				if f.Shorthand != "" {
					shorts = append(shorts, "-"+f.Shorthand)
				}
			case strings.HasPrefix(sp, "-"):
				shortSpans = append(shortSpans, sp)
			}
		}
		for _, sp := range shortSpans {
			if !contains(shorts, sp) {
				report("%s %s: documented in section %q, but no flag of its row has that shorthand", path, sp, s.title)
			}
		}
		for _, e := range spans(r.env) {
			if !contains(envs, e) {
				report("%s: env %s documented in section %q for %s, but no flag of its row reads it", path, e, s.title, r.flag)
			}
		}
	}
}

// zero reports whether f's default is its type's zero value, which --help
// does not show.
func zero(f *pflag.Flag) bool {
	switch v := f.DefValue; f.Value.Type() {
	case "bool":
		return v == "false" || v == ""
	case "duration":
		return v == "0" || v == "0s"
	case "string":
		return v == ""
	default:
		if isNumber(f) {
			return v == "0"
		}
		return v == "" || v == "[]" || v == "0" || v == "false" || v == "<nil>"
	}
}

func isNumber(f *pflag.Flag) bool {
	t := f.Value.Type()
	return strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint") || strings.HasPrefix(t, "float") || t == "count"
}

// hasDefault reports whether one of the code spans is f's default.
func hasDefault(f *pflag.Flag, spans []string) bool {
	want := f.DefValue
	for _, s := range spans {
		switch {
		case f.Value.Type() == "duration":
			a, err1 := time.ParseDuration(want)
			b, err2 := time.ParseDuration(s)
			if err1 == nil && err2 == nil && a == b {
				return true
			}
		case isNumber(f):
			a, err1 := strconv.ParseFloat(want, 64)
			b, err2 := strconv.ParseFloat(s, 64)
			if err1 == nil && err2 == nil && a == b {
				return true
			}
		case f.Value.Type() == "bool":
			a, err1 := strconv.ParseBool(want)
			b, err2 := strconv.ParseBool(s)
			if err1 == nil && err2 == nil && a == b {
				return true
			}
		default:
			// A slice's default shows as [a,b]; a string's may be quoted.
			if s == want || s == strings.Trim(want, "[]") || strconv.Quote(s) == want || s == strconv.Quote(want) {
				return true
			}
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func names(sections []*section) string {
	q := make([]string, len(sections))
	for i, s := range sections {
		q[i] = strconv.Quote(s.title)
	}
	if len(q) == 1 {
		return "section " + q[0]
	}
	return "sections " + strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// document is the parsed Markdown: its sections, each with the flag-table
// rows it holds (its subsections' included).
type document struct {
	sections []*section
}

type section struct {
	title string // the heading's text as written, for messages
	name  string // the heading without number and backquotes
	level int
	rows  []*row
}

// row is one row of a flag table: its flag, default and env cells.
type row struct {
	flag, def, env string
}

// row returns the first row documenting the flag long (--name).
func (s *section) row(long string) *row {
	for _, r := range s.rows {
		if contains(spans(r.flag), long) {
			return r
		}
	}
	return nil
}

// section returns the section named name and how many there are.
func (d *document) section(name string) (*section, int) {
	var first *section
	n := 0
	for _, s := range d.sections {
		if s.name == name {
			if first == nil {
				first = s
			}
			n++
		}
	}
	return first, n
}

var (
	headingRE = regexp.MustCompile(`^(#{1,6})\s+(.*?)\s*#*\s*$`)
	numberRE  = regexp.MustCompile(`^\d+(\.\d+)*\.?\s+`)
	spanRE    = regexp.MustCompile("`+\\s*([^`]*?)\\s*`+")
)

// parse reads the headings and flag tables of doc, skipping fenced code.
func parse(doc []byte) *document {
	d := &document{}
	var (
		open  []*section // the sections containing the current line
		fence string
		table []string // the lines of the table being read
	)
	endTable := func() {
		if rows := flagRows(table); len(rows) > 0 {
			for _, s := range open {
				s.rows = append(s.rows, rows...)
			}
		}
		table = nil
	}
	sc := bufio.NewScanner(bytes.NewReader(doc))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			endTable()
			fence = trimmed[:3]
			continue
		}
		if strings.HasPrefix(trimmed, "|") {
			table = append(table, trimmed)
			continue
		}
		endTable()
		m := headingRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		s := &section{title: m[2], level: len(m[1])}
		s.name = strings.ReplaceAll(numberRE.ReplaceAllString(m[2], ""), "`", "")
		for len(open) > 0 && open[len(open)-1].level >= s.level {
			open = open[:len(open)-1]
		}
		open = append(open, s)
		d.sections = append(d.sections, s)
	}
	endTable()
	return d
}

// flagRows returns the rows of a flag table, nil for any other table.
func flagRows(lines []string) []*row {
	if len(lines) < 2 {
		return nil
	}
	header := cells(lines[0])
	if len(header) == 0 || strings.ToLower(header[0]) != "flag" {
		return nil
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(h)] = i
	}
	cell := func(c []string, name string) string {
		if i, ok := col[name]; ok && i < len(c) {
			return c[i]
		}
		return ""
	}
	var rows []*row
	for _, l := range lines[2:] { // after the header and its separator
		c := cells(l)
		rows = append(rows, &row{flag: cell(c, "flag"), def: cell(c, "default"), env: cell(c, "env")})
	}
	return rows
}

// cells splits a table line at its unescaped pipes.
func cells(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(line, "|")
	if strings.HasSuffix(line, "|") && !strings.HasSuffix(line, `\|`) {
		line = line[:len(line)-1]
	}
	var out []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cur.WriteByte('|')
			i++
		case line[i] == '|':
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(line[i])
		}
	}
	return append(out, strings.TrimSpace(cur.String()))
}

// spans returns the code spans of a cell, trimmed.
func spans(cell string) []string {
	var out []string
	for _, m := range spanRE.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[1])
	}
	return out
}
