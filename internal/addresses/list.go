package addresses

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxListErrors bounds how many bad lines one error names.
const maxListErrors = 10

// Valid reports whether a looks like an e-mail address: one @, a non-empty
// local part, a dotted domain, no spaces, at most 254 characters.
func Valid(a string) bool {
	if len(a) > 254 || strings.ContainsAny(a, " \t\r\n,;<>\"") {
		return false
	}
	at := strings.LastIndexByte(a, '@')
	if at < 1 || strings.IndexByte(a, '@') != at {
		return false
	}
	d := a[at+1:]
	return strings.Contains(d, ".") && !strings.HasPrefix(d, ".") && !strings.HasSuffix(d, ".") && !strings.Contains(d, "..")
}

// MaxLine is the longest line a list file may have.
const MaxLine = 1 << 20

// BadText says why a line of a list file is no text ("" if it is): an
// address or a user must be UTF-8 without control characters, or it would
// be stored, queued and reported as something else than what was read.
func BadText(line string) string {
	switch {
	case !utf8.ValidString(line):
		return "not UTF-8 text"
	case strings.IndexFunc(line, unicode.IsControl) >= 0:
		return "holds control characters"
	}
	return ""
}

// ScanErr explains a list file's read error, with the line it stopped at.
func ScanErr(err error, line int) error {
	if errors.Is(err, bufio.ErrTooLong) {
		return fmt.Errorf("line %d is longer than %d bytes", line, MaxLine)
	}
	return err
}

// ReadList reads an address list: one address a line; blank lines and text
// after '#' are ignored (so a dead-letter export, which carries the last
// error as a comment, reads back as its addresses). Addresses are
// lower-cased and de-duplicated. Every malformed line is reported in one
// error, and then nothing is returned.
func ReadList(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLine)
	seen := make(map[string]struct{})
	var out, bad []string
	nbad, n := 0, 1
	for ; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		// Checked before lower-casing, which would replace invalid bytes.
		why := BadText(line)
		a := strings.ToLower(line)
		if why == "" && !Valid(a) {
			why = fmt.Sprintf("%q is not an e-mail address", truncate(a, 80))
		}
		if why != "" {
			nbad++
			if len(bad) < maxListErrors {
				bad = append(bad, fmt.Sprintf("line %d: %s", n, why))
			}
			continue
		}
		if _, dup := seen[a]; !dup {
			seen[a] = struct{}{}
			out = append(out, a)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read address list: %w", ScanErr(err, n))
	}
	if nbad > 0 {
		more := ""
		if nbad > len(bad) {
			more = fmt.Sprintf("\n(and %d more)", nbad-len(bad))
		}
		return nil, fmt.Errorf("%d malformed lines in the address list:\n%s%s", nbad, strings.Join(bad, "\n"), more)
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
