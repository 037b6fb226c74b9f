package clidoc

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/msaudit/msaudit/internal/envflag"
)

// tree is a small enqueue-like tree: a root with a persistent flag bound to
// a variable, a subcommand with flags of several types, and one that shares
// the other's section for some flags.
func tree() *cobra.Command {
	root := &cobra.Command{Use: "tool"}
	root.PersistentFlags().String("redis-url", "redis://x:1/0", "")
	envflag.BindTo(root.PersistentFlags(), "redis-url", "REDIS_URL")

	submit := &cobra.Command{Use: "submit", Run: func(*cobra.Command, []string) {}}
	f := submit.Flags()
	f.Duration("retention", 720*time.Hour, "")
	f.Float64("rate", 5, "")
	f.Bool("dry-run", false, "")
	f.Bool("adaptive", true, "")
	f.StringP("output", "o", "text", "")
	f.String("graph-url", "", "")
	f.StringArray("domain", nil, "")
	f.String("client-secret", "", "")
	_ = f.MarkHidden("client-secret")
	envflag.Bind(f, "retention", "graph-url")

	local := &cobra.Command{Use: "local", Run: func(*cobra.Command, []string) {}}
	local.Flags().Float64("rate", 5, "")
	local.Flags().String("report-dir", "out", "")
	root.AddCommand(submit, local)
	return root
}

var opts = Options{
	Sections: map[string]string{"tool": "Global flags"},
	Also:     map[string][]string{"tool local": {"tool submit"}},
}

const good = "# tool\n\n" +
	"## 1. Global flags\n\n" +
	"| flag | default | env | meaning |\n| --- | --- | --- | --- |\n" +
	"| `--redis-url` | `redis://x:1/0` | `REDIS_URL` | where |\n\n" +
	"## 2. `tool submit`\n\n" +
	"| flag | default | env | meaning |\n| --- | --- | --- | --- |\n" +
	"| `--retention` | `720h` | `MSAUDIT_RETENTION` | at least `1h` |\n" +
	"| `--rate` | `5.0` | | |\n" +
	"| `--dry-run` | `false` | | |\n" +
	"| `--adaptive` | `true` | | |\n" +
	"| `-o`, `--output` | `text` | | `text` or `json` |\n" +
	"| `--graph-url` | the cloud's | `MSAUDIT_GRAPH_URL` | |\n" +
	"| `--domain` | all | | repeatable |\n" +
	"| `--client-secret` | | | refused |\n\n" +
	"```\n# tool local\n```\n\n" +
	"## 3. Two more\n\n" +
	"### tool local\n\n" +
	"| flag | default | meaning |\n| --- | --- | --- |\n" +
	"| `--report-dir` | `out` | reports |\n"

func TestCompleteDocument(t *testing.T) {
	if p := Problems("cli.md", []byte(good), tree(), opts); len(p) > 0 {
		t.Errorf("problems in a complete document:\n%s", strings.Join(p, "\n"))
	}
}

func TestProblems(t *testing.T) {
	for _, c := range []struct {
		name     string
		old, new string // an edit of good
		want     []string
	}{
		{"command", "### tool local", "### tool locally", []string{
			`cli.md: tool local: command not documented (no section headed "tool local")`,
			`cli.md: tool local --report-dir: flag not documented (no row in a flag table of section "2. ` + "`tool submit`" + `")`,
		}},
		{"flag", "| `--graph-url` | the cloud's | `MSAUDIT_GRAPH_URL` | |\n", "", []string{
			`cli.md: tool submit --graph-url: flag not documented (no row in a flag table of section "2. ` + "`tool submit`" + `")`,
		}},
		{"hidden flag", "| `--client-secret` | | | refused |\n", "", []string{
			`cli.md: tool submit --client-secret: flag not documented (no row in a flag table of section "2. ` + "`tool submit`" + `")`,
		}},
		{"flag elsewhere", "| `--report-dir` | `out` | reports |\n", "", []string{
			`cli.md: tool local --report-dir: flag not documented (no row in a flag table of sections "tool local" or "2. ` + "`tool submit`" + `")`,
		}},
		{"flag in prose only", "| `--report-dir` | `out` | reports |\n", "Takes `--report-dir` (`out`).\n", []string{
			`cli.md: tool local --report-dir: flag not documented (no row in a flag table of sections "tool local" or "2. ` + "`tool submit`" + `")`,
		}},
		{"default", "`720h`", "`72h`", []string{
			`cli.md: tool submit --retention: default "720h0m0s" not documented in section "2. ` + "`tool submit`" + `"`,
		}},
		{"number", "`5.0`", "`5.5`", []string{
			`cli.md: tool local --rate: default "5" not documented in section "2. ` + "`tool submit`" + `"`,
			`cli.md: tool submit --rate: default "5" not documented in section "2. ` + "`tool submit`" + `"`,
		}},
		{"bool", "| `true` |", "| |", []string{
			`cli.md: tool submit --adaptive: default "true" not documented in section "2. ` + "`tool submit`" + `"`,
		}},
		{"global default", "`redis://x:1/0`", "`redis://x:2/0`", []string{
			`cli.md: tool --redis-url: default "redis://x:1/0" not documented in section "1. Global flags"`,
		}},
		{"env", "| `MSAUDIT_RETENTION` |", "| |", []string{
			`cli.md: tool submit --retention: env MSAUDIT_RETENTION not documented in section "2. ` + "`tool submit`" + `"`,
		}},
		{"shorthand", "`-o`, ", "", []string{
			`cli.md: tool submit --output: shorthand -o not documented in section "2. ` + "`tool submit`" + `"`,
		}},
		{"stale flag", "| `--report-dir` |", "| `--report-dir`, `--report-format` |", []string{
			`cli.md: tool local --report-format: documented in section "tool local", but the command has no such flag`,
		}},
		{"stale env", "| `--rate` | `5.0` | |", "| `--rate` | `5.0` | `MSAUDIT_RATE` |", []string{
			`cli.md: tool submit: env MSAUDIT_RATE documented in section "2. ` + "`tool submit`" + `" for ` + "`--rate`" + `, but no flag of its row reads it`,
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(good, c.old) {
				t.Fatalf("%q is not in the document", c.old)
			}
			doc := strings.Replace(good, c.old, c.new, 1)
			if got := Problems("cli.md", []byte(doc), tree(), opts); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}
