package deploy

import (
	"slices"
	"testing"
)

// want is what one installation promises beyond the checks every
// installation shares. The same assertions (manifests_test.go) run over
// each kustomize overlay and example and each render of the Helm chart.
type want struct {
	namespace string
	// The worker Deployment and what goes with it (Service, PDB,
	// NetworkPolicy); false for the examples, which only submit.
	worker bool
	// maxReplicas of the KEDA ScaledObject; 0: no KEDA, and the Deployment
	// sets replicas itself.
	maxReplicas int32
	replicas    int32
	tls         bool   // rediss://, a password file, KEDA over TLS
	password    string // secret/key of REDIS_PASSWORD_FILE, "" for none
	spread      bool   // topology spread over zones and nodes
	monitor     bool   // a ServiceMonitor
	alerts      bool   // the alert rules, as a PrometheusRule
	webhook     bool   // the webhook URL and signing secret from msaudit-webhook
	devRedis    bool   // an in-cluster Redis
	// The installation creates its Namespace (kustomize overlays); a Helm
	// release is installed into one.
	namespaceObject bool
	submit          int // enqueue pod templates (Jobs and CronJobs)
}

// install is one rendered installation.
type install struct {
	name string
	objs func(t *testing.T) []object
	want want
}

var production = want{
	namespace: "msaudit", worker: true, maxReplicas: 20, tls: true,
	password: "msaudit-redis/password", spread: true,
}

func with(w want, f func(*want)) want { f(&w); return w }

// The kustomizations, with what each promises. TestEveryKustomizationIsChecked
// fails if a directory with a kustomization.yaml is missing here.
var kustomizeWants = map[string]want{
	"overlays/dev": {namespace: "msaudit-dev", worker: true, maxReplicas: 3, devRedis: true, namespaceObject: true},
	"overlays/production": with(production, func(w *want) {
		w.monitor, w.alerts, w.namespaceObject = true, true, true
	}),
	"overlays/production-webhook": with(production, func(w *want) {
		w.monitor, w.alerts, w.namespaceObject, w.webhook = true, true, true, true
	}),
	"examples/workload-identity": {namespace: "msaudit", submit: 1},
	"examples/certificate":       {namespace: "msaudit", submit: 1},
	"examples/client-secret":     {namespace: "msaudit", submit: 1},
	"examples/monthly-cronjob":   {namespace: "msaudit", submit: 1},
}

// The chart's renders: its defaults and every values file under
// chart/msaudit/ci/ (the combinations deploy/README.md documents).
// TestEveryChartCombinationIsChecked fails if a file is missing here.
var chartCases = []chartCase{
	{name: "chart", release: "msaudit", namespace: "msaudit", want: production},
	{values: "ci/dev-values.yaml", release: "audit", namespace: "msaudit-dev",
		want: want{namespace: "msaudit-dev", worker: true, maxReplicas: 3, devRedis: true}},
	{values: "ci/webhook-monitoring-values.yaml", release: "msaudit", namespace: "msaudit",
		want: with(production, func(w *want) { w.webhook, w.monitor, w.alerts = true, true, true })},
	{values: "ci/no-keda-values.yaml", release: "msaudit", namespace: "msaudit",
		want: with(production, func(w *want) { w.maxReplicas, w.replicas = 0, 2 })},
	{values: "ci/submit-workload-identity-values.yaml", release: "msaudit", namespace: "msaudit",
		want: with(production, func(w *want) { w.submit = 2 })},
	{values: "ci/submit-certificate-values.yaml", release: "msaudit", namespace: "msaudit",
		want: with(production, func(w *want) { w.submit = 1 })},
	{values: "ci/submit-client-secret-values.yaml", release: "msaudit", namespace: "msaudit",
		want: want{namespace: "msaudit", worker: true, maxReplicas: 20, spread: true, devRedis: true, submit: 1}},
}

// installs lists every installation the shared assertions run over.
func installs() []install {
	var out []install
	for _, dir := range targets() {
		out = append(out, install{dir, func(t *testing.T) []object { return render(t, dir) }, kustomizeWants[dir]})
	}
	for _, c := range chartCases {
		out = append(out, install{c.id(), func(t *testing.T) []object { return renderChart(t, c).objects }, c.want})
	}
	return out
}

// workerInstalls: those that run the workers.
func workerInstalls() []install {
	return slices.DeleteFunc(installs(), func(in install) bool { return !in.want.worker })
}

func TestEveryInstallHasWants(t *testing.T) {
	for _, dir := range targets() {
		if _, ok := kustomizeWants[dir]; !ok {
			t.Errorf("%s: no entry in kustomizeWants", dir)
		}
	}
	if len(kustomizeWants) != len(targets()) {
		t.Errorf("kustomizeWants has %d entries for %d kustomizations", len(kustomizeWants), len(targets()))
	}
}
