package deploy

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/promql/parser"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// The alert rules (components/alerts): rules.yaml is the one source, a
// Prometheus rule file; prometheusrule.yaml is generated from it, and
// metrics.txt lists the worker metrics it reads.
const (
	alertsDir        = "components/alerts"
	rulesFile        = alertsDir + "/rules.yaml"
	rulesTestsFile   = alertsDir + "/tests.yaml"
	prometheusRule   = alertsDir + "/prometheusrule.yaml"
	alertMetricsFile = alertsDir + "/metrics.txt"
)

var update = flag.Bool("update", false, "rewrite "+prometheusRule+" and "+alertMetricsFile+" from "+rulesFile)

// The metrics the rules read that no worker exports, and what exports
// them (deploy/README.md, "Alerts", lists the same). Every other metric a
// rule reads is a worker's, and is listed in metrics.txt.
var externalMetrics = map[string]string{
	"kube_deployment_spec_replicas":             "kube-state-metrics",
	"kube_deployment_status_replicas_available": "kube-state-metrics",
	"keda_scaler_active":                        "KEDA's operator",
	"keda_scaler_detail_errors_total":           "KEDA's operator, 2.14 or later",
}

// The chart carries the same rules: its copy must be rules.yaml, byte for
// byte (a Helm chart can read only its own files).
const chartRulesFile = chartDir + "/files/alert-rules.yaml"

var severities = []string{"critical", "warning"}

// loadRules decodes rules.yaml strictly, as the Prometheus Operator's
// PrometheusRule spec: the same groups a plain Prometheus reads.
func loadRules(t *testing.T) monitoringv1.PrometheusRuleSpec {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var spec monitoringv1.PrometheusRuleSpec
	strict, err := kjson.UnmarshalStrict(j, &spec)
	if err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	if len(strict) > 0 {
		t.Fatalf("%s: %v", rulesFile, errors.Join(strict...))
	}
	if len(spec.Groups) == 0 {
		t.Fatalf("%s has no groups", rulesFile)
	}
	return spec
}

// generatedPrometheusRule is prometheusrule.yaml as it must be: its own
// lines up to `spec:` (the object's header, edited by hand), then rules.yaml
// from its first line that is not a comment, indented under spec.
func generatedPrometheusRule(current, rules []byte) ([]byte, error) {
	var out bytes.Buffer
	lines := strings.SplitAfter(string(current), "\n")
	i := slices.IndexFunc(lines, func(l string) bool { return strings.TrimRight(l, "\n") == "spec:" })
	if i < 0 {
		return nil, fmt.Errorf("%s has no line `spec:`", prometheusRule)
	}
	for _, l := range lines[:i+1] {
		out.WriteString(l)
	}
	body := false
	for _, l := range strings.SplitAfter(string(rules), "\n") {
		trimmed := strings.TrimSpace(l)
		if !body && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		body = true
		if trimmed == "" {
			out.WriteString(strings.TrimLeft(l, " \t"))
			continue
		}
		out.WriteString("  " + l)
	}
	return out.Bytes(), nil
}

// TestAlertRulesPrometheusRule: the PrometheusRule carries rules.yaml's
// groups, byte for byte (comments included), and every overlay with the
// component renders it with that spec.
func TestAlertRulesPrometheusRule(t *testing.T) {
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	current, err := os.ReadFile(prometheusRule)
	if err != nil {
		t.Fatal(err)
	}
	want, err := generatedPrometheusRule(current, rules)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(current, want) {
		if *update {
			if err := os.WriteFile(prometheusRule, want, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("rewrote %s", prometheusRule)
		} else {
			t.Errorf("%s is not %s indented under spec: edit rules.yaml only, then run\n\tcd deploy && go test -run TestAlertRules . -update", prometheusRule, rulesFile)
		}
	}

	chartRules, err := os.ReadFile(chartRulesFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(chartRules, rules) {
		if *update {
			if err := os.WriteFile(chartRulesFile, rules, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("rewrote %s", chartRulesFile)
		} else {
			t.Errorf("%s is not %s: edit rules.yaml only, then run\n\tcd deploy && go test -run TestAlertRules . -update", chartRulesFile, rulesFile)
		}
	}

	// Every installation that promises the alerts (the overlays with the
	// component, the chart with alerts.enabled) renders them with that spec.
	spec := loadRules(t)
	for _, in := range workerInstalls() {
		t.Run(in.name, func(t *testing.T) {
			prs := all[monitoringv1.PrometheusRule](in.objs(t))
			if ok := len(prs) > 0; ok != in.want.alerts {
				t.Fatalf("renders %d PrometheusRules, want alerts: %v", len(prs), in.want.alerts)
			}
			if len(prs) > 1 {
				t.Fatalf("%d PrometheusRules, want one", len(prs))
			}
			ok := len(prs) == 1
			var pr *monitoringv1.PrometheusRule
			if ok {
				pr = prs[0]
			}
			if !ok {
				return
			}
			if !reflect.DeepEqual(pr.Spec, spec) {
				t.Errorf("the rendered PrometheusRule's spec differs from %s", rulesFile)
			}
			if pr.Labels["release"] == "" {
				t.Error("no release label: kube-prometheus-stack selects rules by it")
			}
		})
	}
}

// TestAlertRulesAreActionable: what an on-call reader needs on every alert.
func TestAlertRulesAreActionable(t *testing.T) {
	spec := loadRules(t)
	seen := map[string]bool{}
	command := regexp.MustCompile("`(enqueue|kubectl) [^`]+`")
	for _, g := range spec.Groups {
		if len(g.Rules) == 0 {
			t.Errorf("group %s has no rules", g.Name)
		}
		for _, r := range g.Rules {
			name := r.Alert
			if name == "" {
				t.Errorf("group %s: a recording rule (%s); the alerts test only alerts", g.Name, r.Record)
				continue
			}
			if !strings.HasPrefix(name, "Msaudit") {
				t.Errorf("%s: alert names start with Msaudit", name)
			}
			if seen[name] {
				t.Errorf("%s twice", name)
			}
			seen[name] = true
			if r.For == nil {
				t.Errorf("%s: no `for`: a single bad scrape would page", name)
			} else if d, err := time.ParseDuration(string(*r.For)); err != nil || d < 5*time.Minute {
				// time.ParseDuration reads the units used here (m, h).
				t.Errorf("%s: for %s, want 5m or more", name, *r.For)
			}
			if !slices.Contains(severities, r.Labels["severity"]) {
				t.Errorf("%s: severity %q, want one of %v", name, r.Labels["severity"], severities)
			}
			if len(r.Labels) != 1 {
				t.Errorf("%s: labels %v, want only severity", name, r.Labels)
			}
			if keys := slices.Sorted(maps.Keys(r.Annotations)); !slices.Equal(keys, []string{"description", "summary"}) {
				t.Errorf("%s: annotations %v, want summary and description", name, keys)
			}
			if strings.Contains(r.Annotations["summary"], "\n") {
				t.Errorf("%s: a summary is one line", name)
			}
			if !command.MatchString(r.Annotations["description"]) {
				t.Errorf("%s: the description names no command to run next (`enqueue …` or `kubectl …`)", name)
			}
		}
	}
}

// exprMetrics returns the metric names a PromQL expression reads.
func exprMetrics(expr string) ([]string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	var errs []error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		if vs.Name == "" {
			errs = append(errs, fmt.Errorf("selector %s names no metric: name each one, so that the metrics read can be listed", vs))
			return nil
		}
		if !slices.Contains(names, vs.Name) {
			names = append(names, vs.Name)
		}
		return nil
	})
	return names, errors.Join(errs...)
}

func TestExprMetrics(t *testing.T) {
	got, err := exprMetrics(`sum by (ns) (rate(a_total{x="y"}[5m])) / on (ns) b unless absent(c{d="e"}) or a_total`)
	if err != nil || !slices.Equal(got, []string{"a_total", "b", "c"}) {
		t.Errorf("got %v, %v", got, err)
	}
	if _, err := exprMetrics(`{__name__=~"msaudit_.+"}`); err == nil {
		t.Error("a selector without a metric name was accepted")
	}
	if _, err := exprMetrics(`sum(rate(x[5m])`); err == nil {
		t.Error("a syntax error was accepted")
	}
}

// TestAlertRulesMetricsList: metrics.txt lists the metrics the rules read,
// the external ones aside, sorted, one a line. The end-to-end tests check
// that a worker exports every one.
func TestAlertRulesMetricsList(t *testing.T) {
	spec := loadRules(t)
	used := map[string]bool{}
	for _, g := range spec.Groups {
		for _, r := range g.Rules {
			names, err := exprMetrics(r.Expr.String())
			if err != nil {
				t.Errorf("%s: %v", r.Alert, err)
			}
			for _, n := range names {
				used[n] = true
			}
		}
	}
	var worker []string
	for n := range used {
		if _, ok := externalMetrics[n]; !ok {
			worker = append(worker, n)
		}
	}
	sort.Strings(worker)
	for n := range externalMetrics {
		if !used[n] {
			t.Errorf("externalMetrics lists %s, which no rule reads: drop it (and from deploy/README.md)", n)
		}
		if strings.HasPrefix(n, "msaudit_") {
			t.Errorf("externalMetrics lists %s, a worker's metric", n)
		}
	}
	want := strings.Join(worker, "\n") + "\n"
	got, err := os.ReadFile(alertMetricsFile)
	if err != nil && !(errors.Is(err, os.ErrNotExist) && *update) {
		t.Fatal(err)
	}
	if string(got) == want {
		return
	}
	if *update {
		if err := os.WriteFile(alertMetricsFile, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", alertMetricsFile)
		return
	}
	have := strings.Fields(string(got))
	var lacks, extra []string
	for _, n := range worker {
		if !slices.Contains(have, n) {
			lacks = append(lacks, n)
		}
	}
	for _, n := range have {
		if !slices.Contains(worker, n) {
			extra = append(extra, n)
		}
	}
	t.Errorf("%s is not the worker metrics the rules read, sorted, one a line: it lacks %v and has %v no rule reads "+
		"(a metric that no worker exports goes in externalMetrics instead); run\n\tcd deploy && go test -run TestAlertRules . -update",
		alertMetricsFile, lacks, extra)
}

// promtool runs promtool (Debian's prometheus package provides it) in the
// alerts directory, and returns its output if it succeeded.
func promtool(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not on PATH: install the prometheus package (apt-get install prometheus), which provides it")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = alertsDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		return ""
	}
	return string(out)
}

// TestAlertRulesPromtool: Prometheus accepts the rules, and their unit
// tests pass.
func TestAlertRulesPromtool(t *testing.T) {
	for _, args := range [][]string{
		{"check", "rules", "--lint=all", "--lint-fatal", filepath.Base(rulesFile)},
		{"test", "rules", filepath.Base(rulesTestsFile)},
	} {
		if out := promtool(t, args...); out != "" {
			t.Log(out)
		}
	}
}

// The parts of a promtool test file this package reads.
type promtoolTests struct {
	RuleFiles []string `json:"rule_files"`
	Tests     []struct {
		Name      string `json:"name"`
		RuleTests []struct {
			Alertname string `json:"alertname"`
			ExpAlerts []any  `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

// TestAlertRulesAreTested: tests.yaml tests rules.yaml, and sees every
// alert both fire and stay quiet.
func TestAlertRulesAreTested(t *testing.T) {
	b, err := os.ReadFile(rulesTestsFile)
	if err != nil {
		t.Fatal(err)
	}
	var tests promtoolTests
	if err := yaml.Unmarshal(b, &tests); err != nil {
		t.Fatalf("%s: %v", rulesTestsFile, err)
	}
	if !slices.Equal(tests.RuleFiles, []string{filepath.Base(rulesFile)}) {
		t.Errorf("%s tests %v, want %s", rulesTestsFile, tests.RuleFiles, filepath.Base(rulesFile))
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, rt := range tc.RuleTests {
			if len(rt.ExpAlerts) > 0 {
				fires[rt.Alertname] = true
			} else {
				quiet[rt.Alertname] = true
			}
		}
	}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if !fires[r.Alert] {
				t.Errorf("%s: no test in %s sees it fire", r.Alert, rulesTestsFile)
			}
			if !quiet[r.Alert] {
				t.Errorf("%s: no test in %s sees it stay quiet", r.Alert, rulesTestsFile)
			}
		}
	}
}

// TestAlertsDocumented: the guide names every alert and every metric from
// elsewhere.
func TestAlertsDocumented(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if !strings.Contains(doc, "`"+r.Alert+"`") {
				t.Errorf("deploy/README.md does not describe %s", r.Alert)
			}
		}
	}
	for n := range externalMetrics {
		if !strings.Contains(doc, "`"+n+"`") {
			t.Errorf("deploy/README.md does not list %s among the metrics from elsewhere", n)
		}
	}
}
