package deploy

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// `make sbom` writes a CycloneDX JSON SBOM per binary, listing the modules
// linked in at go.mod's versions. It runs in a copy of the working tree
// committed to a fresh repository: cyclonedx-gomod reads the main module's
// version with go-git, which cannot open a linked worktree. It needs git,
// make and the Go module proxy (or cache); without them it fails.
func TestMakeSBOM(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: make sbom builds cyclonedx-gomod and lists the main module")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	run := func(dir string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=test", "GIT_AUTHOR_EMAIL=test@example.com",
			"GIT_COMMITTER_NAME=test", "GIT_COMMITTER_EMAIL=test@example.com")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
		}
		return string(out)
	}

	// The working tree as git sees it: tracked and new files, not ignored ones.
	work := t.TempDir()
	files := run(root, "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	for _, f := range strings.Split(strings.TrimRight(files, "\x00"), "\x00") {
		src := filepath.Join(root, f)
		fi, err := os.Lstat(src)
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the working tree, or a symlink
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(work, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	run(work, "git", "init", "-q")
	run(work, "git", "add", "-A")
	run(work, "git", "commit", "-q", "-m", "sbom test")

	out := filepath.Join(t.TempDir(), "bin")
	run(work, "make", "-s", "sbom", "BIN="+out, "VERSION=v0.0.0-test")

	// go.mod's versions, as the go command resolves them.
	want := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(run(root, "go", "list", "-m", "-f", "{{.Path}} {{.Version}}",
		"github.com/hibiken/asynq", "github.com/redis/go-redis/v9")), "\n") {
		p, v, _ := strings.Cut(l, " ")
		want[p] = v
	}
	if len(want) != 2 {
		t.Fatalf("go list -m: %v", want)
	}
	for _, bin := range []string{"enqueue", "worker", "tenantsim"} {
		t.Run(bin, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(out, bin+".cdx.json"))
			if err != nil {
				t.Fatal(err)
			}
			var bom struct {
				BOMFormat   string `json:"bomFormat"`
				SpecVersion string `json:"specVersion"`
				Metadata    struct {
					Component struct {
						Name string `json:"name"`
						Type string `json:"type"`
					} `json:"component"`
				} `json:"metadata"`
				Components []struct {
					Name    string `json:"name"`
					Version string `json:"version"`
					PURL    string `json:"purl"`
				} `json:"components"`
			}
			if err := json.Unmarshal(b, &bom); err != nil {
				t.Fatal(err)
			}
			if bom.BOMFormat != "CycloneDX" || bom.SpecVersion == "" {
				t.Errorf("bomFormat %q, specVersion %q: not a CycloneDX SBOM", bom.BOMFormat, bom.SpecVersion)
			}
			if bom.Metadata.Component.Type != "application" || bom.Metadata.Component.Name != "github.com/msaudit/msaudit" {
				t.Errorf("the SBOM describes %s %q, want the application github.com/msaudit/msaudit", bom.Metadata.Component.Type, bom.Metadata.Component.Name)
			}
			got := map[string]string{}
			for _, c := range bom.Components {
				got[c.Name] = c.Version
				if c.PURL == "" {
					t.Errorf("component %s has no package URL", c.Name)
				}
			}
			for p, v := range want {
				// tenantsim, the tenant simulator, links neither: it
				// never touches the queue.
				if bin == "tenantsim" {
					if _, ok := got[p]; ok {
						t.Errorf("component %s in tenantsim, which does not link it", p)
					}
					continue
				}
				if got[p] != v {
					t.Errorf("component %s at %q, go.mod has %s", p, got[p], v)
				}
			}
			t.Logf("%s.cdx.json: CycloneDX %s, %d components; asynq %q, go-redis %q (go.mod: %v)", bin, bom.SpecVersion,
				len(bom.Components), got["github.com/hibiken/asynq"], got["github.com/redis/go-redis/v9"], want)
			if len(bom.Components) < 2 {
				t.Errorf("only %d components", len(bom.Components))
			}
		})
	}
}
