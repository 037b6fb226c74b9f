package addresses

import (
	"bufio"
	"fmt"
	"io"
	"strings"
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

// ReadList reads an address list: one address a line; blank lines and text
// after '#' are ignored (so a dead-letter export, which carries the last
// error as a comment, reads back as its addresses). Addresses are
// lower-cased and de-duplicated. Every malformed line is reported in one
// error, and then nothing is returned.
func ReadList(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	seen := make(map[string]struct{})
	var out, bad []string
	nbad := 0
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		a := strings.ToLower(strings.TrimSpace(line))
		if a == "" {
			continue
		}
		if !Valid(a) {
			nbad++
			if len(bad) < maxListErrors {
				bad = append(bad, fmt.Sprintf("line %d: %q is not an e-mail address", n, truncate(a, 80)))
			}
			continue
		}
		if _, dup := seen[a]; !dup {
			seen[a] = struct{}{}
			out = append(out, a)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read address list: %w", err)
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
