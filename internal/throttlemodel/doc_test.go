package throttlemodel

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// familyRow is a member's row in docs/throttle-models.md.
func familyRow(s Spec) string {
	return fmt.Sprintf("| `%s` | %s | %s |", s.Name(), s.Half(), s.Describe())
}

// The note's table of the family is the family: every member in order, with
// its half and its drawn parameters.
func TestDocListsFamily(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../docs/throttle-models.md")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, "| `") && (strings.Contains(line, " | tuning | ") || strings.Contains(line, " | held-out | ")) {
			got = append(got, line)
		}
	}
	var want []string
	for _, s := range Family() {
		want = append(want, familyRow(s))
	}
	if !slices.Equal(got, want) {
		t.Errorf("docs/throttle-models.md lists the family as\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
