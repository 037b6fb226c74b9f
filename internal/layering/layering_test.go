package layering

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/msaudit/msaudit"

// testsLayer is the layer of test support in the table.
const testsLayer = -1

// pkg is what go list says of one package.
type pkg struct {
	ImportPath string
	Imports    []string
}

// listPackages runs go list over the module.
func listPackages(t *testing.T, root string) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps=false", "-json", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// short names a package of the module as docs/design.md does: under
// internal/ unless it starts with cmd/ or is tasks.
func short(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return "", false
	}
	return strings.TrimPrefix(rest, "internal/"), true
}

var (
	layerRow = regexp.MustCompile(`^\|\s*(\d+|tests)\s*\|([^|]*)\|`)
	codeSpan = regexp.MustCompile("`([^`]+)`")
)

// readLayers parses the layer table of docs/design.md: package -> layer.
func readLayers(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	layers := make(map[string]int)
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			in = strings.Contains(line, "Packages and their layers")
			continue
		}
		m := layerRow.FindStringSubmatch(line)
		if !in || m == nil {
			continue
		}
		layer := testsLayer
		if m[1] != "tests" {
			layer, _ = strconv.Atoi(m[1])
		}
		for _, c := range codeSpan.FindAllStringSubmatch(m[2], -1) {
			if prev, dup := layers[c[1]]; dup {
				t.Errorf("docs/design.md: %s is in layers %d and %d", c[1], prev, layer)
			}
			layers[c[1]] = layer
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(layers) == 0 {
		t.Fatal(`docs/design.md has no table under "Packages and their layers"`)
	}
	return layers
}

func setup(t *testing.T) (pkgs []pkg, layers map[string]int) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return listPackages(t, root), readLayers(t, filepath.Join(root, "docs", "design.md"))
}

// TestLayers: every package is in the table, and its own code imports only
// packages of lower layers, never test support.
func TestLayers(t *testing.T) {
	pkgs, layers := setup(t)
	seen := make(map[string]bool)
	for _, p := range pkgs {
		name, _ := short(p.ImportPath)
		seen[name] = true
		layer, ok := layers[name]
		if !ok {
			t.Errorf("%s is in no layer of docs/design.md", name)
			continue
		}
		for _, imp := range p.Imports {
			dep, ours := short(imp)
			if !ours {
				continue
			}
			switch dl, known := layers[dep]; {
			case !known:
				// reported as a package of its own
			case dl == testsLayer && layer != testsLayer:
				t.Errorf("%s (layer %d) imports the test support %s outside its tests", name, layer, dep)
			case layer != testsLayer && dl >= layer:
				t.Errorf("%s (layer %d) imports %s of layer %d: only lower layers may be imported", name, layer, dep, dl)
			}
		}
	}
	for name := range layers {
		if !seen[name] {
			t.Errorf("docs/design.md names %s, which is no package of the module", name)
		}
	}
}

// graphSDK matches the import paths of the Graph SDK and the identity
// library.
var graphSDK = regexp.MustCompile(`^github\.com/(microsoftgraph/msgraph-sdk-go|Azure/azure-sdk-for-go/sdk/azidentity)`)

// TestGraphStaysInTheIntake: only directory's code imports the Graph SDK
// and azidentity (tests may, to prove a fake against the real client), and
// the worker binary links neither.
func TestGraphStaysInTheIntake(t *testing.T) {
	pkgs, _ := setup(t)
	for _, p := range pkgs {
		name, _ := short(p.ImportPath)
		if name == "directory" {
			continue
		}
		for _, imp := range p.Imports {
			if graphSDK.MatchString(imp) {
				t.Errorf("%s imports %s: only directory may", name, imp)
			}
		}
	}
	root, _ := filepath.Abs("../..")
	cmd := exec.Command("go", "list", "-deps", "./cmd/worker")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/worker: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if graphSDK.MatchString(dep) {
			t.Errorf("the worker links %s", dep)
		}
	}
}
