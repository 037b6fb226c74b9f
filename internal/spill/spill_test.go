package spill

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestSorterSpillsAndMerges adds records in random order under a budget
// that forces several runs, and reads them back sorted, every one once,
// equal keys in the order they were added; the temporary file is gone
// from its directory from the start.
func TestSorterSpillsAndMerges(t *testing.T) {
	t.Parallel()
	for _, budget := range []int{0, 1 << 10, 64 << 10} {
		t.Run(fmt.Sprint(budget), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := Config{Dir: dir, Budget: budget}.New()
			defer s.Close()
			r := rand.New(rand.NewPCG(1, uint64(budget)))
			var want []string
			for i := range 5000 {
				k := fmt.Sprintf("k%05d", r.IntN(3000))
				v := fmt.Sprintf("%s/%d", k, i)
				want = append(want, v)
				if err := s.Add([]byte(k), []byte(v)); err != nil {
					t.Fatal(err)
				}
			}
			if s.Spilled() != (budget > 0) {
				t.Errorf("budget %d: spilled %v", budget, s.Spilled())
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("temporary files left in the directory: %v", ents)
			}
			slices.SortStableFunc(want, func(a, b string) int {
				return strings.Compare(strings.Split(a, "/")[0], strings.Split(b, "/")[0])
			})
			var got []string
			err := s.Each(func(k, v []byte) error {
				if !strings.HasPrefix(string(v), string(k)+"/") {
					t.Fatalf("key %q with value %q", k, v)
				}
				got = append(got, string(v))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("read %d records, want %d in order; first %q, want %q", len(got), len(want), got[:3], want[:3])
			}
		})
	}
}

// TestKeysSortAsTheirParts: keys of two parts sort as the pairs of strings,
// zero bytes included, and split back into them.
func TestKeysSortAsTheirParts(t *testing.T) {
	t.Parallel()
	parts := []string{"", "a", "a\x00", "a\x00b", "a\x01", "ab", "b", "\x00", "\xff"}
	type pair struct{ a, b string }
	var pairs []pair
	for _, a := range parts {
		for _, b := range parts {
			pairs = append(pairs, pair{a, b})
		}
	}
	key := func(p pair) string { return string(AppendKey(AppendKey(nil, p.a), p.b)) }
	for _, p := range pairs {
		a, rest := SplitKey([]byte(key(p)))
		b, rest := SplitKey(rest)
		if a != p.a || b != p.b || len(rest) != 0 {
			t.Errorf("split %q = %q, %q, %q", key(p), a, b, rest)
		}
		for _, q := range pairs {
			want := strings.Compare(p.a, q.a)
			if want == 0 {
				want = strings.Compare(p.b, q.b)
			}
			if got := strings.Compare(key(p), key(q)); got != want {
				t.Errorf("%q vs %q: keys compare %d, parts %d", p, q, got, want)
			}
		}
	}
}

func TestFields(t *testing.T) {
	t.Parallel()
	v := AppendField(AppendField(AppendField(nil, "x"), ""), strings.Repeat("y", 300))
	a, v := NextField(v)
	b, v := NextField(v)
	c, v := NextField(v)
	if a != "x" || b != "" || c != strings.Repeat("y", 300) || len(v) != 0 {
		t.Errorf("fields %q %q %q, rest %q", a, b, c, v)
	}
}
