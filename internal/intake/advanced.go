package intake

import (
	"regexp"
	"strings"
)

// advancedFilter matches the $filter constructs Graph answers only in
// advanced query mode on directory objects (ConsistencyLevel: eventual and
// $count=true): endsWith, the ne and not operators, $count inside a filter,
// and comparisons with null. See
// https://learn.microsoft.com/graph/aad-advanced-queries.
var advancedFilter = regexp.MustCompile(`(?i)\bendswith\s*\(|\bnot\s*\(|\sne\s|/\$count\b|\s(eq|ne)\s+null\b`)

// IsAdvancedFilter reports whether Graph needs advanced query mode for
// filter. String literals are ignored, so startsWith(displayName,'not(')
// stays a plain query.
func IsAdvancedFilter(filter string) bool {
	return advancedFilter.MatchString(" " + stripLiterals(filter) + " ")
}

// stripLiterals blanks OData string literals (quoted with ', a doubled one
// being an escaped quote inside) so that their content cannot look like an
// operator.
func stripLiterals(s string) string {
	var b strings.Builder
	in := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' && in && i+1 < len(s) && s[i+1] == '\'':
			i++ // escaped quote inside a literal
		case c == '\'':
			in = !in
			b.WriteByte(c)
		case in:
			// dropped
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
