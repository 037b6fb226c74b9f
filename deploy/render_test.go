package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// The kustomizations an operator applies. TestEveryKustomizationIsChecked
// fails if a directory with a kustomization.yaml is missing here.
var (
	overlays = []string{"overlays/dev", "overlays/production", "overlays/production-webhook"}
	examples = []string{
		"examples/workload-identity",
		"examples/certificate",
		"examples/client-secret",
		"examples/monthly-cronjob",
	}
	// Rendered only through an overlay; not applied on their own.
	bases = []string{"base", "components/servicemonitor", "components/webhook", "components/alerts"}
)

func targets() []string { return slices.Concat(overlays, examples) }

// The types every rendered object must decode into. An object of any other
// kind fails the test: add its type here when a manifest needs one.
var kinds = map[string]func() any{
	"v1/Namespace":                       func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":                  func() any { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":                       func() any { return &corev1.ConfigMap{} },
	"v1/Service":                         func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                 func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                func() any { return &appsv1.StatefulSet{} },
	"batch/v1/Job":                       func() any { return &batchv1.Job{} },
	"batch/v1/CronJob":                   func() any { return &batchv1.CronJob{} },
	"policy/v1/PodDisruptionBudget":      func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy": func() any { return &networkingv1.NetworkPolicy{} },
	"keda.sh/v1alpha1/ScaledObject":      func() any { return &kedav1alpha1.ScaledObject{} },
	"keda.sh/v1alpha1/TriggerAuthentication": func() any {
		return &kedav1alpha1.TriggerAuthentication{}
	},
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &monitoringv1.ServiceMonitor{} },
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return &monitoringv1.PrometheusRule{} },
}

// object is one rendered manifest, decoded twice: generically (for scans)
// and strictly into its API type.
type object struct {
	Kind      string // apiVersion/kind
	Name      string
	Namespace string
	JSON      []byte
	Generic   map[string]any
	Typed     any
}

func (o object) String() string { return fmt.Sprintf("%s %s/%s", o.Kind, o.Namespace, o.Name) }

type rendering struct {
	yaml    []byte
	objects []object
	err     error
}

var (
	renderMu    sync.Mutex
	renderCache = map[string]*rendering{}
)

// render builds dir (relative to deploy/) with the kustomize API, as
// `kubectl kustomize` does, and decodes every object strictly.
func render(t *testing.T, dir string) []object {
	t.Helper()
	renderMu.Lock()
	r, ok := renderCache[dir]
	if !ok {
		r = doRender(dir)
		renderCache[dir] = r
	}
	renderMu.Unlock()
	if r.err != nil {
		t.Fatalf("%s: %v", dir, r.err)
	}
	return r.objects
}

func doRender(dir string) *rendering {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return &rendering{err: err}
	}
	opts := krusty.MakeDefaultOptions()
	// kubectl kustomize's order: Namespaces, ServiceAccounts and ConfigMaps
	// before the workloads that use them.
	opts.Reorder = krusty.ReorderOptionLegacy
	k := krusty.MakeKustomizer(opts)
	m, err := k.Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		return &rendering{err: fmt.Errorf("kustomize build: %w", err)}
	}
	out, err := m.AsYaml()
	if err != nil {
		return &rendering{err: err}
	}
	r := &rendering{yaml: out}
	var errs []error
	for _, res := range m.Resources() {
		j, err := res.MarshalJSON()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", res.CurId(), err))
			continue
		}
		o, err := decode(j)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", res.CurId(), err))
			continue
		}
		r.objects = append(r.objects, o)
	}
	r.err = errors.Join(errs...)
	return r
}

// decode parses one object strictly: an unknown or duplicated field, or a
// field of the wrong type, is an error, as the API server's strict field
// validation (kubectl apply's default) would make it. Field names are
// matched case-sensitively, unlike encoding/json.
func decode(j []byte) (object, error) {
	var o object
	o.JSON = j
	if err := kjson.UnmarshalCaseSensitivePreserveInts(j, &o.Generic); err != nil {
		return o, err
	}
	apiVersion, _ := o.Generic["apiVersion"].(string)
	kind, _ := o.Generic["kind"].(string)
	o.Kind = apiVersion + "/" + kind
	if md, ok := o.Generic["metadata"].(map[string]any); ok {
		o.Name, _ = md["name"].(string)
		o.Namespace, _ = md["namespace"].(string)
	}
	if o.Kind == "v1/Secret" {
		return o, errors.New("a Secret in a manifest: Secrets are created by the operator (deploy/README.md) and referenced by name")
	}
	newTyped, ok := kinds[o.Kind]
	if !ok {
		return o, fmt.Errorf("kind %s has no type in kinds (render_test.go): add it, or drop the object", o.Kind)
	}
	o.Typed = newTyped()
	strict, err := kjson.UnmarshalStrict(j, o.Typed)
	if err != nil {
		return o, fmt.Errorf("decode %s: %w", o.Kind, err)
	}
	if len(strict) > 0 {
		return o, fmt.Errorf("decode %s strictly: %w", o.Kind, errors.Join(strict...))
	}
	return o, nil
}

func TestRenderStrict(t *testing.T) {
	for _, dir := range slices.Concat(targets(), []string{"base"}) {
		t.Run(dir, func(t *testing.T) {
			objs := render(t, dir)
			if len(objs) == 0 {
				t.Fatal("renders nothing")
			}
			seen := map[string]bool{}
			for _, o := range objs {
				if o.Name == "" {
					t.Errorf("%s without a name", o.Kind)
				}
				if seen[o.String()] {
					t.Errorf("%s twice", o)
				}
				seen[o.String()] = true
			}
		})
	}
}

// The decoder must reject what the API server would: prove it once.
func TestDecodeIsStrict(t *testing.T) {
	for _, bad := range []string{
		`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":{"replica":1}}`,
		`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":{"Replicas":1}}`,
		`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":{"replicas":"1"}}`,
		`{"apiVersion":"keda.sh/v1alpha1","kind":"ScaledObject","metadata":{"name":"x"},"spec":{"minReplicas":1}}`,
		`{"apiVersion":"keda.sh/v1alpha1","kind":"ScaledObject","metadata":{"name":"x"},"spec":{"advanced":{"horizontalPodAutoscalerConfig":{"behaviour":{}}}}}`,
		`{"apiVersion":"monitoring.coreos.com/v1","kind":"ServiceMonitor","metadata":{"name":"x"},"spec":{"endpoint":[]}}`,
		`{"apiVersion":"monitoring.coreos.com/v1","kind":"PrometheusRule","metadata":{"name":"x"},"spec":{"groups":[{"name":"g","rules":[{"alert":"A","expr":"1","annotation":{}}]}]}}`,
		`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}`,
		`{"apiVersion":"example.com/v1","kind":"Thing","metadata":{"name":"x"}}`,
	} {
		if _, err := decode([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	if _, err := decode([]byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":{"replicas":1}}`)); err != nil {
		t.Errorf("rejected a valid Deployment: %v", err)
	}
}

// kubectl's embedded kustomize (the one operators run) must build the same
// objects as the kustomize API above.
func TestKubectlKustomizeAgrees(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not on PATH")
	}
	for _, dir := range targets() {
		t.Run(dir, func(t *testing.T) {
			render(t, dir)
			renderMu.Lock()
			want := renderCache[dir].yaml
			renderMu.Unlock()
			abs, _ := filepath.Abs(dir)
			var stderr bytes.Buffer
			cmd := exec.Command(kubectl, "kustomize", abs)
			cmd.Stderr = &stderr
			got, err := cmd.Output()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
			}
			g, err := yamlDocs(got)
			if err != nil {
				t.Fatal(err)
			}
			w, err := yamlDocs(want)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("kubectl kustomize %s differs from the kustomize API's build:\n--- kubectl\n%s\n--- api\n%s", dir, got, want)
			}
		})
	}
}

func yamlDocs(b []byte) ([]any, error) {
	var docs []any
	for _, d := range bytes.Split(b, []byte("\n---\n")) {
		if len(bytes.TrimSpace(d)) == 0 {
			continue
		}
		var v any
		if err := yaml.Unmarshal(d, &v); err != nil {
			return nil, err
		}
		docs = append(docs, v)
	}
	return docs, nil
}

func TestEveryKustomizationIsChecked(t *testing.T) {
	var found []string
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && p != "." {
			return filepath.SkipDir
		}
		if !d.IsDir() && (d.Name() == "kustomization.yaml" || d.Name() == "kustomization.yml" || d.Name() == "Kustomization") {
			found = append(found, filepath.ToSlash(filepath.Dir(p)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	known := slices.Concat(targets(), bases)
	sort.Strings(found)
	for _, f := range found {
		if !slices.Contains(known, f) {
			t.Errorf("%s has a kustomization that no test renders: add it to overlays or examples in render_test.go", f)
		}
	}
	for _, k := range known {
		if !slices.Contains(found, k) {
			t.Errorf("%s is listed in render_test.go but has no kustomization.yaml", k)
		}
	}
}

// YAML files under deploy/ that are not Kubernetes objects, and what they are.
var notManifests = map[string]string{
	"components/alerts/rules.yaml": "the alert rules as a Prometheus rule file (prometheusrule.yaml is generated from it)",
	"components/alerts/tests.yaml": "promtool unit tests of the alert rules",
}

// Every YAML file under deploy/ (but the chart's) is part of some
// rendering: a file no kustomization lists would be a manifest nobody
// applies. The few that are no manifest at all are listed in notManifests,
// and must not look like one.
func TestNoStrayManifests(t *testing.T) {
	listed := map[string]bool{}
	for p := range notManifests {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("notManifests: %v", err)
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(b, &head); err != nil || head.APIVersion != "" || head.Kind != "" {
			t.Errorf("%s is listed in notManifests but looks like a Kubernetes object (%v)", p, err)
		}
		listed[filepath.Clean(p)] = true
	}
	var walkKust func(dir string)
	walkKust = func(dir string) {
		b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
		if err != nil {
			return
		}
		listed[filepath.Join(dir, "kustomization.yaml")] = true
		var k struct {
			Resources  []string `json:"resources"`
			Components []string `json:"components"`
			Patches    []struct {
				Path string `json:"path"`
			} `json:"patches"`
		}
		if err := yaml.Unmarshal(b, &k); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		for _, r := range slices.Concat(k.Resources, k.Components) {
			p := filepath.Join(dir, r)
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				walkKust(p)
				continue
			}
			listed[p] = true
		}
		for _, p := range k.Patches {
			if p.Path != "" {
				listed[filepath.Join(dir, p.Path)] = true
			}
		}
	}
	for _, d := range slices.Concat(targets(), bases) {
		walkKust(d)
	}
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// The Helm chart's files are Helm's: chart_test.go renders them.
		if d.IsDir() && p == filepath.Clean(chartDir) {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return nil
		}
		if ext := filepath.Ext(p); (ext == ".yaml" || ext == ".yml") && !listed[filepath.Clean(p)] {
			t.Errorf("%s is in no kustomization", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
