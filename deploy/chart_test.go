package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"sigs.k8s.io/yaml"
)

const chartDir = "chart/msaudit"

// chartCase is one `helm install` of the chart: a values file (under
// chartDir; "" for the defaults), a release name and a namespace.
type chartCase struct {
	name      string
	values    string
	release   string
	namespace string
	want      want
}

func (c chartCase) id() string {
	if c.name != "" {
		return c.name
	}
	return "chart+" + strings.TrimSuffix(path.Base(c.values), "-values.yaml")
}

type chartRendering struct {
	objects []object
	yaml    []byte            // every rendered manifest
	files   map[string]string // template path → rendered text, NOTES.txt included
	err     error
}

var (
	chartMu    sync.Mutex
	chartOnce  sync.Once
	theChart   *chart.Chart
	chartErr   error
	chartCache = map[string]*chartRendering{}
)

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	chartOnce.Do(func() { theChart, chartErr = loader.Load(chartDir) })
	if chartErr != nil {
		t.Fatalf("load %s: %v", chartDir, chartErr)
	}
	return theChart
}

// renderValues renders the chart as `helm install` would: the values
// coalesced with the chart's defaults and checked against
// values.schema.json, then the templates executed.
func renderValues(ch *chart.Chart, vals map[string]any, release, namespace string) (map[string]string, error) {
	opts := common.ReleaseOptions{Name: release, Namespace: namespace, Revision: 1, IsInstall: true}
	top, err := chartutil.ToRenderValuesWithSchemaValidation(ch, vals, opts, nil, false)
	if err != nil {
		return nil, err
	}
	return engine.Render(ch, top)
}

func readValues(file string) (map[string]any, error) {
	if file == "" {
		return map[string]any{}, nil
	}
	v, err := common.ReadValuesFile(filepath.Join(chartDir, file))
	return v, err
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// renderChart renders one case and decodes every object strictly, as
// render does for a kustomization.
func renderChart(t *testing.T, c chartCase) *chartRendering {
	t.Helper()
	ch := loadChart(t)
	chartMu.Lock()
	r, ok := chartCache[c.id()]
	if !ok {
		r = doRenderChart(ch, c)
		chartCache[c.id()] = r
	}
	chartMu.Unlock()
	if r.err != nil {
		t.Fatalf("%s: %v", c.id(), r.err)
	}
	return r
}

func doRenderChart(ch *chart.Chart, c chartCase) *chartRendering {
	vals, err := readValues(c.values)
	if err != nil {
		return &chartRendering{err: err}
	}
	files, err := renderValues(ch, vals, c.release, c.namespace)
	if err != nil {
		return &chartRendering{err: err}
	}
	r := &chartRendering{files: files}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range files {
			if !yield(k) {
				return
			}
		}
	})
	var errs []error
	for _, name := range names {
		base := path.Base(name)
		if base == "NOTES.txt" || strings.HasPrefix(base, "_") {
			continue
		}
		for _, doc := range docSep.Split(files[name], -1) {
			var v any
			if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				continue
			}
			if v == nil {
				continue
			}
			r.yaml = append(r.yaml, []byte("---\n"+strings.TrimSpace(doc)+"\n")...)
			j, err := json.Marshal(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				continue
			}
			o, err := decode(j)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				continue
			}
			r.objects = append(r.objects, o)
		}
	}
	r.err = errors.Join(errs...)
	return r
}

func TestEveryChartCombinationIsChecked(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no values files under ci/")
	}
	for _, f := range files {
		rel, _ := filepath.Rel(chartDir, f)
		if !slices.ContainsFunc(chartCases, func(c chartCase) bool { return c.values == filepath.ToSlash(rel) }) {
			t.Errorf("%s: no entry in chartCases (installs_test.go) says what it renders", f)
		}
	}
}

// `helm lint --strict` for the defaults and every combination: the SDK's
// lint package (the one the helm CLI runs), where strict turns any warning
// into a failure.
func TestChartLintStrict(t *testing.T) {
	for _, c := range chartCases {
		t.Run(c.id(), func(t *testing.T) {
			vals, err := readValues(c.values)
			if err != nil {
				t.Fatal(err)
			}
			res := lint.RunAll(chartDir, vals, c.namespace)
			for _, m := range res.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint --strict: %s", m)
				} else {
					t.Logf("helm lint: %s", m)
				}
			}
		})
	}
}

// The lint must be able to fail: a chart with a warning fails it.
func TestChartLintCatchesWarnings(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(chartDir)); err != nil {
		t.Fatal(err)
	}
	// A version that is not strict SemVer 2 is a warning, not an error.
	b, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	b = regexp.MustCompile(`(?m)^version: .*$`).ReplaceAll(b, []byte("version: v0.1"))
	if err := os.WriteFile(filepath.Join(dir, "Chart.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	res := lint.RunAll(dir, nil, "msaudit")
	if !slices.ContainsFunc(res.Messages, func(m support.Message) bool { return m.Severity >= support.WarningSev }) {
		t.Errorf("a non-SemVer chart version passed the strict lint: %v", res.Messages)
	}
}

// values.schema.json refuses, at install time, a value it does not know or
// one of the wrong type.
func TestChartSchemaRefusesUnknownValues(t *testing.T) {
	ch := loadChart(t)
	bad := []string{
		"replica: 3",                                 // unknown top-level key (replicas)
		"keda: {enabled: true, maxReplica: 5}",       // unknown nested key
		"settings: {tenantRat: 5}",                   // misspelt setting
		"settings: {tenantRate: \"5\"}",              // a string for a number
		"settings: {tenantRate: 0}",                  // out of range
		"settings: {shutdownTimeout: 20}",            // a number for a duration
		"settings: {shutdownTimeout: 20 s}",          // not a Go duration
		"settings: {logLevel: verbose}",              // not an allowed value
		"keda: {enabled: \"yes\"}",                   // a string for a boolean
		"image: {tag: latest}",                       // never :latest
		"image: {digest: sha256:abc}",                // not a digest
		"redis: {url: \"rediss://:pw@host:6380/0\"}", // a password in the URL
		"redis: {url: \"http://host:6379\"}",         // not a Redis URL
		"submit: {auth: password}",                   // no such sign-in
		"submit: {job: {enabled: true, when: now}}",
		"devRedis: {image: redis}",            // untagged
		"devRedis: {image: \"redis:latest\"}", // :latest
		"resources: {requests: {cpu: 1, memory: 1Gi, gpu: 1}}",
		"imagePullSecrets: [{name: regcred, namespace: x}]",
		"serviceMonitor: {labels: {release: x}}",
	}
	for _, b := range bad {
		vals, err := common.ReadValues([]byte(b))
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if _, err := renderValues(ch, vals, "msaudit", "msaudit"); err == nil {
			t.Errorf("the chart accepted %s", b)
		} else if !strings.Contains(err.Error(), "schema") {
			t.Errorf("%s: refused, but not by the schema: %v", b, err)
		}
	}
	// And accepts what deploy/README.md shows.
	for _, good := range []string{
		"settings: {tenantRate: 20, globalRate: 50, shutdownTimeout: 25s, stallAfter: 1h, reconcileEvery: \"0\"}",
		"image: {tag: v1.2.3, digest: \"sha256:" + strings.Repeat("a", 64) + "\"}",
		"redis: {url: \"rediss://cache.example.com:6380/2\", passwordSecret: {name: redis-pw, key: pw}}",
		"imagePullSecrets: [{name: regcred}]",
	} {
		vals, err := common.ReadValues([]byte(good))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := renderValues(ch, vals, "msaudit", "msaudit"); err != nil {
			t.Errorf("the chart refused %s: %v", good, err)
		}
	}
}

// additionalProperties: false on every object of the schema, so that no
// part of the values accepts a key the chart does not read.
func TestChartSchemaIsClosed(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	var walk func(at string, n map[string]any)
	walk = func(at string, n map[string]any) {
		typ := fmt.Sprint(n["type"])
		if typ == "object" || n["properties"] != nil {
			if ap, ok := n["additionalProperties"].(bool); !ok || ap {
				t.Errorf("%s: an object without additionalProperties: false", at)
			}
		}
		if props, ok := n["properties"].(map[string]any); ok {
			for k, v := range props {
				if m, ok := v.(map[string]any); ok {
					walk(at+"."+k, m)
				}
			}
		}
		if items, ok := n["items"].(map[string]any); ok {
			walk(at+"[]", items)
		}
	}
	walk("$", s)

	// Every key of values.yaml is in the schema, and the reverse.
	vals := loadChart(t).Values
	var keys func(prefix string, v map[string]any, s map[string]any)
	keys = func(prefix string, v map[string]any, s map[string]any) {
		props, _ := s["properties"].(map[string]any)
		for k := range props {
			if _, ok := v[k]; !ok {
				t.Errorf("schema has %s%s, values.yaml does not", prefix, k)
			}
		}
		for k, x := range v {
			ps, ok := props[k].(map[string]any)
			if !ok {
				t.Errorf("values.yaml has %s%s, the schema does not", prefix, k)
				continue
			}
			if m, ok := x.(map[string]any); ok {
				keys(prefix+k+".", m, ps)
			}
		}
	}
	keys("", vals, s)
}

// valueKeys lists the dotted path of every value (leaf) in values.yaml.
func valueKeys(prefix string, v map[string]any) []string {
	var out []string
	for k, x := range v {
		if m, ok := x.(map[string]any); ok && len(m) > 0 {
			out = append(out, valueKeys(prefix+k+".", m)...)
		} else {
			out = append(out, prefix+k)
		}
	}
	sort.Strings(out)
	return out
}

// deploy/README.md documents every value.
func TestChartValuesDocumented(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range valueKeys("", loadChart(t).Values) {
		if !bytes.Contains(readme, []byte("`"+k+"`")) {
			t.Errorf("value %s is not documented in deploy/README.md (as `%s`)", k, k)
		}
	}
	// And every documented combination.
	files, _ := filepath.Glob(filepath.Join(chartDir, "ci", "*.yaml"))
	for _, f := range files {
		if !bytes.Contains(readme, []byte(path.Base(f))) {
			t.Errorf("%s is not mentioned in deploy/README.md", f)
		}
	}
}

// Every template renders something in at least one case, and NOTES.txt
// says what to run next in each.
func TestEveryChartTemplateRenders(t *testing.T) {
	used := map[string]bool{}
	for _, c := range chartCases {
		r := renderChart(t, c)
		for name, text := range r.files {
			if strings.TrimSpace(text) != "" {
				used[path.Base(name)] = true
			}
		}
		notes := r.files["msaudit/templates/NOTES.txt"]
		for _, want := range []string{"kubectl", "enqueue status", c.namespace} {
			if !strings.Contains(notes, want) {
				t.Errorf("%s: NOTES.txt does not mention %q:\n%s", c.id(), want, notes)
			}
		}
		if c.want.password != "" && !strings.Contains(notes, "create secret generic msaudit-redis") {
			t.Errorf("%s: NOTES.txt does not say to create the Redis password Secret", c.id())
		}
	}
	entries, err := os.ReadDir(filepath.Join(chartDir, "templates"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "_") && !used[e.Name()] {
			t.Errorf("templates/%s renders nothing in any case of chartCases", e.Name())
		}
	}
}
