package deploy

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The environment variables the binaries read (worker --help, enqueue
// --help). A ConfigMap key or container variable outside this list is a
// typo the binary would silently ignore.
var knownEnv = []string{
	"REDIS_URL", "REDIS_PASSWORD_FILE", "REDIS_CA_FILE", "REDIS_CERT_FILE", "REDIS_KEY_FILE",
	"MSAUDIT_LOG_LEVEL", "MSAUDIT_LOG_FORMAT", "MSAUDIT_CONCURRENCY", "MSAUDIT_REALM_URL",
	"MSAUDIT_REALM_TIMEOUT", "MSAUDIT_TENANT_RATE", "MSAUDIT_GLOBAL_RATE", "MSAUDIT_INITIAL_RATE",
	"MSAUDIT_ADAPTIVE", "MSAUDIT_MAX_WAIT", "MSAUDIT_MAX_ATTEMPTS", "MSAUDIT_BACKOFF_BASE",
	"MSAUDIT_BACKOFF_MAX", "MSAUDIT_METRICS_ADDR", "MSAUDIT_SHUTDOWN_TIMEOUT", "MSAUDIT_RECONCILE_EVERY",
	"MSAUDIT_WEBHOOK_URL", "MSAUDIT_WEBHOOK_URL_FILE", "MSAUDIT_WEBHOOK_SECRET_FILE", "MSAUDIT_STALL_AFTER",
	// Not read by msaudit: KEDA's redis trigger takes its host:port from
	// the worker container's environment (addressFromEnv).
	"REDIS_ADDRESS",
}

// The enqueue Jobs' environment, besides the Redis connection.
var knownEnqueueEnv = []string{
	"REDIS_URL", "REDIS_PASSWORD_FILE", "REDIS_CA_FILE", "REDIS_CERT_FILE", "REDIS_KEY_FILE",
	"MSAUDIT_LOG_LEVEL", "MSAUDIT_LOG_FORMAT", "AZURE_TENANT_ID", "AZURE_CLIENT_ID",
}

// Trigger metadata keys KEDA v2.21 reads (pkg/scalers/redis_scaler.go,
// metrics_api_scaler.go). KEDA ignores any other key, so a misspelt
// activationListLength would silently fall back to its default.
var kedaMetadataKeys = map[string][]string{
	"redis": {"address", "addressFromEnv", "host", "hostFromEnv", "port", "portFromEnv",
		"usernameFromEnv", "databaseIndex", "listName", "listLength", "activationListLength",
		"enableTLS", "unsafeSsl"},
	"metrics-api": {"url", "format", "valueLocation", "targetValue", "activationTargetValue",
		"unsafeSsl", "timeout"},
}

const (
	workerName     = "msaudit-worker"
	openRunsKey    = "msaudit:runs:open"
	workerImage    = "ghcr.io/msaudit/msaudit-worker"
	enqueueImage   = "ghcr.io/msaudit/msaudit-enqueue"
	shutdownMargin = 5 * time.Second
)

var workerLabels = map[string]string{
	"app.kubernetes.io/name":      "msaudit",
	"app.kubernetes.io/component": "worker",
}

// ---- helpers

func find[T any](objs []object, name string) (*T, bool) {
	for _, o := range objs {
		if v, ok := o.Typed.(*T); ok && (name == "" || o.Name == name) {
			return v, true
		}
	}
	return nil, false
}

func all[T any](objs []object) []*T {
	var out []*T
	for _, o := range objs {
		if v, ok := o.Typed.(*T); ok {
			out = append(out, v)
		}
	}
	return out
}

func mustFind[T any](t *testing.T, objs []object, name string) *T {
	t.Helper()
	v, ok := find[T](objs, name)
	if !ok {
		var zero T
		t.Fatalf("no %T named %q", zero, name)
	}
	return v
}

type podTemplate struct {
	owner  string
	labels map[string]string
	spec   *corev1.PodSpec
}

func podTemplates(objs []object) []podTemplate {
	var out []podTemplate
	for _, o := range objs {
		switch v := o.Typed.(type) {
		case *appsv1.Deployment:
			out = append(out, podTemplate{o.String(), v.Spec.Template.Labels, &v.Spec.Template.Spec})
		case *appsv1.StatefulSet:
			out = append(out, podTemplate{o.String(), v.Spec.Template.Labels, &v.Spec.Template.Spec})
		case *batchv1.Job:
			out = append(out, podTemplate{o.String(), v.Spec.Template.Labels, &v.Spec.Template.Spec})
		case *batchv1.CronJob:
			out = append(out, podTemplate{o.String(), v.Spec.JobTemplate.Spec.Template.Labels, &v.Spec.JobTemplate.Spec.Template.Spec})
		}
	}
	return out
}

func selects(t *testing.T, sel *metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("selector %v: %v", sel, err)
	}
	return !s.Empty() && s.Matches(labels.Set(podLabels))
}

// containerEnv is a container's environment as the kubelet builds it:
// envFrom ConfigMaps first, then env entries (which win).
func containerEnv(t *testing.T, objs []object, c *corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil {
			t.Fatalf("container %s: envFrom other than a ConfigMap", c.Name)
		}
		cm := mustFind[corev1.ConfigMap](t, objs, from.ConfigMapRef.Name)
		for k, v := range cm.Data {
			env[from.Prefix+k] = v
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			t.Errorf("container %s: env %s from %v: secrets go in files (…_FILE), settings in the ConfigMap", c.Name, e.Name, e.ValueFrom)
			continue
		}
		env[e.Name] = e.Value
	}
	return env
}

type workerSet struct {
	deploy    *appsv1.Deployment
	container *corev1.Container
	env       map[string]string
}

// worker finds the worker Deployment by its component label: the chart
// names it after the release.
func worker(t *testing.T, objs []object) workerSet {
	t.Helper()
	var d *appsv1.Deployment
	for _, v := range all[appsv1.Deployment](objs) {
		if v.Spec.Template.Labels["app.kubernetes.io/component"] == "worker" {
			if d != nil {
				t.Fatalf("two worker Deployments: %s and %s", d.Name, v.Name)
			}
			d = v
		}
	}
	if d == nil {
		t.Fatal("no worker Deployment (pods labelled app.kubernetes.io/component=worker)")
	}
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("worker pod has %d containers, want 1", n)
	}
	c := &d.Spec.Template.Spec.Containers[0]
	return workerSet{d, c, containerEnv(t, objs, c)}
}

// ---- every pod

func TestPodsAreHardened(t *testing.T) {
	for _, in := range installs() {
		t.Run(in.name, func(t *testing.T) {
			objs := in.objs(t)
			pts := podTemplates(objs)
			if len(pts) == 0 {
				t.Fatal("no pod template")
			}
			for _, pt := range pts {
				checkPod(t, objs, pt)
			}
		})
	}
}

func checkPod(t *testing.T, objs []object, pt podTemplate) {
	t.Helper()
	ps := pt.spec
	psc := ps.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if ps.HostNetwork || ps.HostPID || ps.HostIPC {
		t.Errorf("%s: shares a host namespace", pt.owner)
	}
	if ps.EnableServiceLinks == nil || *ps.EnableServiceLinks {
		t.Errorf("%s: enableServiceLinks must be false (service links inject REDIS_*/MSAUDIT_* variables)", pt.owner)
	}
	// The Kubernetes API token: off in the pod, or on its ServiceAccount.
	automount := ps.AutomountServiceAccountToken
	if automount == nil {
		sa := ps.ServiceAccountName
		if sa == "" {
			sa = "default"
		}
		if v, ok := find[corev1.ServiceAccount](objs, sa); ok {
			automount = v.AutomountServiceAccountToken
		}
	}
	if automount == nil || *automount {
		t.Errorf("%s: mounts a Kubernetes API token it never uses", pt.owner)
	}
	for _, v := range ps.Volumes {
		if v.HostPath != nil {
			t.Errorf("%s: hostPath volume %s", pt.owner, v.Name)
		}
	}
	for _, c := range slices.Concat(ps.InitContainers, ps.Containers) {
		where := pt.owner + " container " + c.Name
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("%s: no securityContext", where)
			continue
		}
		nonRoot := sc.RunAsNonRoot
		if nonRoot == nil {
			nonRoot = psc.RunAsNonRoot
		}
		uid := sc.RunAsUser
		if uid == nil {
			uid = psc.RunAsUser
		}
		if nonRoot == nil || !*nonRoot {
			t.Errorf("%s: runAsNonRoot not true", where)
		}
		if uid == nil || *uid == 0 {
			t.Errorf("%s: no non-zero runAsUser (a named USER cannot be checked by runAsNonRoot)", where)
		}
		if strings.HasPrefix(c.Image, workerImage) || strings.HasPrefix(c.Image, enqueueImage) {
			if *uid != 65532 {
				t.Errorf("%s: runAsUser %d, the distroless nonroot image's user is 65532", where, *uid)
			}
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: root filesystem not read-only", where)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation not false", where)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("%s: privileged", where)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			t.Errorf("%s: capabilities must drop ALL and add none", where)
		}
		seccomp := sc.SeccompProfile
		if seccomp == nil {
			seccomp = psc.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: seccompProfile not RuntimeDefault", where)
		}
		if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
			t.Errorf("%s: needs cpu and memory requests and a memory limit", where)
		}
		checkFiles(t, ps, &c, where)
	}
}

// checkFiles: every file a container is told to read (…_FILE variables,
// --…-file= arguments) lies under a volume mounted read-only from a Secret,
// and, where the volume lists its items, is one of them.
func checkFiles(t *testing.T, ps *corev1.PodSpec, c *corev1.Container, where string) {
	t.Helper()
	var files []string
	for _, e := range c.Env {
		if strings.HasSuffix(e.Name, "_FILE") && e.Value != "" {
			files = append(files, e.Value)
		}
	}
	for _, a := range c.Args {
		if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "--") && strings.HasSuffix(k, "-file") {
			files = append(files, v)
		}
	}
	for _, f := range files {
		ok := false
		for _, m := range c.VolumeMounts {
			rel, under := strings.CutPrefix(f, strings.TrimSuffix(m.MountPath, "/")+"/")
			if !under {
				continue
			}
			if !m.ReadOnly {
				t.Errorf("%s: %s is on a writable mount", where, f)
			}
			for _, v := range ps.Volumes {
				if v.Name != m.Name {
					continue
				}
				if v.Secret == nil {
					t.Errorf("%s: %s is not on a Secret volume", where, f)
					break
				}
				if len(v.Secret.Items) == 0 {
					ok = true
				}
				for _, it := range v.Secret.Items {
					if it.Path == rel {
						ok = true
					}
				}
			}
		}
		if !ok {
			t.Errorf("%s: reads %s, which no Secret volume provides", where, f)
		}
	}
}

// ---- secrets

var (
	secretKey   = regexp.MustCompile(`(?i)(password|passwd|secret|token|apikey|api_key|connectionstring)`)
	passwordURL = regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@`)
)

// No Secret object, and no value that looks like one, in anything rendered.
func TestNoSecretValues(t *testing.T) {
	for _, in := range installs() {
		t.Run(in.name, func(t *testing.T) {
			objs := in.objs(t)
			for _, o := range objs {
				scanSecrets(t, o.String(), "", o.Generic)
				switch v := o.Typed.(type) {
				case *corev1.ConfigMap:
					for k, val := range v.Data {
						if secretKey.MatchString(k) && !strings.HasSuffix(k, "_FILE") && val != "" {
							t.Errorf("%s: %s holds a literal secret; mount a Secret and name the file", o, k)
						}
					}
				}
			}
			for _, pt := range podTemplates(objs) {
				for _, c := range pt.spec.Containers {
					for _, e := range c.Env {
						if secretKey.MatchString(e.Name) && !strings.HasSuffix(e.Name, "_FILE") && e.Value != "" {
							t.Errorf("%s: env %s holds a literal secret", pt.owner, e.Name)
						}
					}
					for _, f := range c.EnvFrom {
						if f.SecretRef != nil {
							t.Errorf("%s: envFrom a Secret puts it in the environment; mount it as files", pt.owner)
						}
					}
				}
			}
		})
	}
}

// scanSecrets walks a decoded object: a key named like a secret with a
// literal string value, or a URL with a password, fails.
func scanSecrets(t *testing.T, where, at string, v any) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			p := at + "." + k
			if s, ok := x.(string); ok && s != "" && secretKey.MatchString(k) && !allowedSecretKey(k) {
				t.Errorf("%s: %s has a literal value", where, p)
			}
			scanSecrets(t, where, p, x)
		}
	case []any:
		for i, x := range v {
			scanSecrets(t, where, fmt.Sprintf("%s[%d]", at, i), x)
		}
	case string:
		if passwordURL.MatchString(v) {
			t.Errorf("%s: %s holds a URL with a password", where, at)
		}
	}
}

// Keys that name a secret (or the file holding it) rather than hold one.
func allowedSecretKey(k string) bool {
	if strings.HasSuffix(k, "_FILE") {
		return true
	}
	switch k {
	case "secretName", // volume source: the Secret's name
		"secretTargetRef": // KEDA: references
		return true
	}
	return false
}

// ---- the worker, per installation

func TestWorkerDeployment(t *testing.T) {
	for _, in := range workerInstalls() {
		t.Run(in.name, func(t *testing.T) {
			objs := in.objs(t)
			w := worker(t, objs)
			d, c := w.deploy, w.container
			if in.want.maxReplicas > 0 && d.Spec.Replicas != nil {
				t.Error("the Deployment sets replicas: KEDA owns the count, and every apply would reset it")
			}
			if in.want.maxReplicas == 0 && (d.Spec.Replicas == nil || *d.Spec.Replicas != in.want.replicas) {
				t.Errorf("without KEDA, replicas %s, want %d", ptrString(d.Spec.Replicas), in.want.replicas)
			}
			if !selects(t, d.Spec.Selector, d.Spec.Template.Labels) {
				t.Error("the Deployment's selector does not match its pods")
			}
			for k, v := range workerLabels {
				if d.Spec.Template.Labels[k] != v {
					t.Errorf("worker pods lack label %s=%s", k, v)
				}
			}
			if !strings.HasPrefix(c.Image, workerImage+":") && !strings.HasPrefix(c.Image, workerImage+"@") {
				t.Errorf("worker image %s, want %s", c.Image, workerImage)
			}
			rs := d.Spec.Strategy
			if rs.Type != appsv1.RollingUpdateDeploymentStrategyType || rs.RollingUpdate == nil ||
				rs.RollingUpdate.MaxUnavailable == nil || rs.RollingUpdate.MaxUnavailable.IntValue() != 0 ||
				rs.RollingUpdate.MaxSurge == nil || rs.RollingUpdate.MaxSurge.IntValue() != 1 {
				t.Errorf("strategy %+v: want RollingUpdate, maxUnavailable 0, maxSurge 1", rs)
			}
			port := containerPort(t, c, "metrics")
			if port != 9090 {
				t.Errorf("metrics port %d, want 9090", port)
			}
			if addr := w.env["MSAUDIT_METRICS_ADDR"]; addr != "" {
				if _, p, err := net.SplitHostPort(addr); err != nil || p != strconv.Itoa(int(port)) {
					t.Errorf("MSAUDIT_METRICS_ADDR %q does not serve the container port %d", addr, port)
				}
			}
			checkProbe(t, c, c.LivenessProbe, "liveness", "/healthz", port)
			checkProbe(t, c, c.ReadinessProbe, "readiness", "/readyz", port)
			if a := d.Spec.Template.Annotations; a["prometheus.io/scrape"] != "true" ||
				a["prometheus.io/port"] != strconv.Itoa(int(port)) || a["prometheus.io/path"] != "/metrics" {
				t.Errorf("prometheus.io annotations %v", a)
			}

			// SIGTERM to exit: the process drains within MSAUDIT_SHUTDOWN_TIMEOUT,
			// then closes its HTTP server and Redis; the kubelet must wait.
			timeout := 20 * time.Second // the binary's default
			if s, ok := w.env["MSAUDIT_SHUTDOWN_TIMEOUT"]; ok {
				var err error
				if timeout, err = time.ParseDuration(s); err != nil {
					t.Fatalf("MSAUDIT_SHUTDOWN_TIMEOUT %q: %v", s, err)
				}
			}
			grace := d.Spec.Template.Spec.TerminationGracePeriodSeconds
			if grace == nil {
				t.Error("no terminationGracePeriodSeconds")
			} else if g := time.Duration(*grace) * time.Second; g < timeout+shutdownMargin {
				t.Errorf("terminationGracePeriodSeconds %v must exceed MSAUDIT_SHUTDOWN_TIMEOUT %v by %v", g, timeout, shutdownMargin)
			}

			for k := range w.env {
				if !slices.Contains(knownEnv, k) {
					t.Errorf("worker environment has %s, which nothing reads", k)
				}
			}
			for _, cm := range all[corev1.ConfigMap](objs) {
				for k := range cm.Data {
					if !slices.Contains(knownEnv, k) {
						t.Errorf("ConfigMap %s: key %s is not a known variable", cm.Name, k)
					}
				}
			}
			for _, k := range []string{"REDIS_URL", "REDIS_ADDRESS", "MSAUDIT_LOG_FORMAT"} {
				if w.env[k] == "" {
					t.Errorf("worker environment lacks %s", k)
				}
			}
			if w.env["MSAUDIT_LOG_FORMAT"] != "json" {
				t.Error("MSAUDIT_LOG_FORMAT must be json in a cluster")
			}
			checkRedisURL(t, in.want, w)

			sa := mustFind[corev1.ServiceAccount](t, objs, d.Spec.Template.Spec.ServiceAccountName)
			if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
				t.Error("the worker ServiceAccount must set automountServiceAccountToken: false")
			}
		})
	}
}

func containerPort(t *testing.T, c *corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %s", c.Name, name)
	return 0
}

func resolvePort(t *testing.T, c *corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.String {
		return containerPort(t, c, p.StrVal)
	}
	return p.IntVal
}

func checkProbe(t *testing.T, c *corev1.Container, p *corev1.Probe, what, path string, port int32) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("no HTTP %s probe", what)
		return
	}
	if p.HTTPGet.Path != path || resolvePort(t, c, p.HTTPGet.Port) != port {
		t.Errorf("%s probe GET %s on %v, want %s on %d", what, p.HTTPGet.Path, p.HTTPGet.Port, path, port)
	}
}

func checkRedisURL(t *testing.T, want want, w workerSet) {
	t.Helper()
	u, err := url.Parse(w.env["REDIS_URL"])
	if err != nil {
		t.Fatalf("REDIS_URL: %v", err)
	}
	if u.User != nil {
		t.Error("REDIS_URL carries credentials: use REDIS_PASSWORD_FILE")
	}
	if (u.Scheme == "rediss") != want.tls || (u.Scheme != "redis" && u.Scheme != "rediss") {
		t.Errorf("REDIS_URL scheme %s (TLS wanted: %v)", u.Scheme, want.tls)
	}
	if u.Host != w.env["REDIS_ADDRESS"] {
		t.Errorf("REDIS_ADDRESS %q is not REDIS_URL's host:port %q: KEDA would count open runs elsewhere", w.env["REDIS_ADDRESS"], u.Host)
	}
	if want.tls && w.env["REDIS_PASSWORD_FILE"] == "" {
		t.Error("a TLS Redis without REDIS_PASSWORD_FILE")
	}
	var got []string
	if w.env["REDIS_PASSWORD_FILE"] != "" {
		got = workerSecrets(w)
		if len(got) == 0 {
			t.Errorf("REDIS_PASSWORD_FILE %s is on no Secret volume", w.env["REDIS_PASSWORD_FILE"])
		}
	}
	if want.password == "" && len(got) > 0 || want.password != "" && !slices.Equal(got, []string{want.password}) {
		t.Errorf("REDIS_PASSWORD_FILE comes from %v, want %q", got, want.password)
	}
}

func TestWorkerService(t *testing.T) {
	for _, in := range workerInstalls() {
		t.Run(in.name, func(t *testing.T) {
			objs := in.objs(t)
			w := worker(t, objs)
			svc := mustFind[corev1.Service](t, objs, w.deploy.Name)
			if !selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, w.deploy.Spec.Template.Labels) {
				t.Error("the Service does not select the worker pods")
			}
			if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 9090 || svc.Spec.Ports[0].Name != "metrics" ||
				resolvePort(t, w.container, svc.Spec.Ports[0].TargetPort) != 9090 {
				t.Errorf("Service ports %+v: want metrics 9090 → the container's 9090", svc.Spec.Ports)
			}
			for k, v := range workerLabels {
				if svc.Labels[k] != v {
					t.Errorf("Service lacks label %s=%s (the ServiceMonitor selects on it)", k, v)
				}
			}
		})
	}
}

func TestPodDisruptionBudget(t *testing.T) {
	for _, in := range workerInstalls() {
		t.Run(in.name, func(t *testing.T) {
			objs := in.objs(t)
			w := worker(t, objs)
			var n int
			for _, pdb := range all[policyv1.PodDisruptionBudget](objs) {
				if !selects(t, pdb.Spec.Selector, w.deploy.Spec.Template.Labels) {
					continue
				}
				n++
				if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil {
					t.Errorf("PDB %s: want maxUnavailable 1", pdb.Name)
				}
				for _, pt := range podTemplates(objs) {
					if pt.owner != "apps/v1/Deployment "+w.deploy.Namespace+"/"+w.deploy.Name && selects(t, pdb.Spec.Selector, pt.labels) {
						t.Errorf("PDB %s also selects %s", pdb.Name, pt.owner)
					}
				}
			}
			if n != 1 {
				t.Errorf("%d PodDisruptionBudgets select the workers, want 1", n)
			}
		})
	}
}

type portProto struct {
	port  int32
	proto corev1.Protocol
}

func ruleports(t *testing.T, ports []networkingv1.NetworkPolicyPort, where string) []portProto {
	t.Helper()
	if len(ports) == 0 {
		t.Errorf("%s: a rule without ports allows every port", where)
	}
	var out []portProto
	for _, p := range ports {
		if p.Port == nil || p.Port.Type != intstr.Int || p.EndPort != nil {
			t.Errorf("%s: port %v must be one numbered port", where, p.Port)
			continue
		}
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		out = append(out, portProto{p.Port.IntVal, proto})
	}
	return out
}

func TestWorkerNetworkPolicy(t *testing.T) {
	allowedEgress := []portProto{{53, corev1.ProtocolUDP}, {53, corev1.ProtocolTCP}, {6379, corev1.ProtocolTCP}, {6380, corev1.ProtocolTCP}, {443, corev1.ProtocolTCP}}
	for _, in := range workerInstalls() {
		t.Run(in.name, func(t *testing.T) {
			objs := in.objs(t)
			w := worker(t, objs)
			var n int
			for _, np := range all[networkingv1.NetworkPolicy](objs) {
				if !selects(t, &np.Spec.PodSelector, w.deploy.Spec.Template.Labels) {
					continue
				}
				n++
				if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
					t.Errorf("NetworkPolicy %s must restrict both ingress and egress", np.Name)
				}
				var egress []portProto
				for _, r := range np.Spec.Egress {
					egress = append(egress, ruleports(t, r.Ports, "egress of "+np.Name)...)
				}
				for _, p := range egress {
					if !slices.Contains(allowedEgress, p) {
						t.Errorf("NetworkPolicy %s lets workers out on %d/%s", np.Name, p.port, p.proto)
					}
				}
				if n == 1 {
					for _, p := range allowedEgress {
						if !slices.Contains(egress, p) {
							t.Errorf("NetworkPolicy %s blocks %d/%s, which workers need", np.Name, p.port, p.proto)
						}
					}
				}
				for _, r := range np.Spec.Ingress {
					for _, p := range ruleports(t, r.Ports, "ingress of "+np.Name) {
						if p != (portProto{9090, corev1.ProtocolTCP}) {
							t.Errorf("NetworkPolicy %s lets in %d/%s; only the metrics port 9090", np.Name, p.port, p.proto)
						}
					}
				}
			}
			if n == 0 {
				t.Error("no NetworkPolicy selects the worker pods")
			}
		})
	}
}

// ---- autoscaling

func trigger(so *kedav1alpha1.ScaledObject, typ string) (kedav1alpha1.ScaleTriggers, int) {
	var found kedav1alpha1.ScaleTriggers
	n := 0
	for _, tr := range so.Spec.Triggers {
		if tr.Type == typ {
			found, n = tr, n+1
		}
	}
	return found, n
}

func TestScaledObject(t *testing.T) {
	for _, in := range workerInstalls() {
		t.Run(in.name, func(t *testing.T) {
			objs := in.objs(t)
			want := in.want
			w := worker(t, objs)
			sos := all[kedav1alpha1.ScaledObject](objs)
			if want.maxReplicas == 0 {
				if len(sos) > 0 || len(all[kedav1alpha1.TriggerAuthentication](objs)) > 0 {
					t.Error("KEDA objects rendered with KEDA switched off")
				}
				return
			}
			if len(sos) != 1 {
				t.Fatalf("%d ScaledObjects, want one", len(sos))
			}
			so := sos[0]
			spec := so.Spec

			// KEDA's own admission checks that need no cluster.
			if err := kedav1alpha1.ValidateTriggers(spec.Triggers); err != nil {
				t.Error(err)
			}
			if err := kedav1alpha1.CheckReplicaCountBoundsAreValid(so); err != nil {
				t.Error(err)
			}
			if err := kedav1alpha1.CheckFallbackValid(so); err != nil {
				t.Error(err)
			}

			ref := spec.ScaleTargetRef
			if ref == nil || ref.Name != w.deploy.Name || (ref.Kind != "" && ref.Kind != "Deployment") ||
				(ref.APIVersion != "" && ref.APIVersion != "apps/v1") || so.Namespace != w.deploy.Namespace {
				t.Errorf("scaleTargetRef %+v does not name the worker Deployment", ref)
			}
			if spec.MaxReplicaCount == nil || *spec.MaxReplicaCount != want.maxReplicas {
				t.Errorf("maxReplicaCount %s, want %d", ptrString(spec.MaxReplicaCount), want.maxReplicas)
			}
			if spec.PollingInterval == nil || *spec.PollingInterval != 15 || spec.CooldownPeriod == nil || *spec.CooldownPeriod != 300 {
				t.Errorf("pollingInterval %s, cooldownPeriod %s: want 15 and 300", ptrString(spec.PollingInterval), ptrString(spec.CooldownPeriod))
			}
			// The metrics-api trigger is answered by the workers themselves,
			// so it fails whenever no worker runs. KEDA >= 2.19 counts a
			// trigger in fallback as active: a fallback here would start
			// workers every few minutes with no run open.
			if spec.Fallback != nil {
				t.Error("fallback is set: with the /scaler trigger served by the workers, it would wake them at zero replicas (see the comment in base/scaledobject.yaml)")
			}

			// Trap 2: nothing counts asynq's queues (pending alone strands
			// retries; the queue size counts dead letters forever).
			for _, tr := range spec.Triggers {
				for k, v := range tr.Metadata {
					if strings.Contains(strings.ToLower(v), "asynq") {
						t.Errorf("trigger %s scales on %s=%s: asynq's queues are the wrong signal (deploy/README.md)", tr.Name, k, v)
					}
				}
				if tr.MetricType != autoscalingv2.AverageValueMetricType {
					t.Errorf("trigger %s: metricType %q, want AverageValue (replicas = value / target)", tr.Name, tr.MetricType)
				}
				keys, known := kedaMetadataKeys[tr.Type]
				if !known {
					t.Errorf("trigger type %s: unexpected", tr.Type)
				}
				for k := range tr.Metadata {
					if !slices.Contains(keys, k) {
						t.Errorf("trigger %s: metadata key %s is not one KEDA's %s scaler reads (or must not be used here)", tr.Name, k, tr.Type)
					}
				}
			}

			// Trap 1: never zero while a run is open.
			min := int32(0)
			if spec.MinReplicaCount != nil {
				min = *spec.MinReplicaCount
			}
			var openRuns *kedav1alpha1.ScaleTriggers
			for i, tr := range spec.Triggers {
				if tr.Type == "redis" && tr.Metadata["listName"] == openRunsKey {
					openRuns = &spec.Triggers[i]
				}
			}
			if min < 1 && (openRuns == nil || openRuns.Metadata["activationListLength"] != "0") {
				t.Errorf("minReplicaCount %d and no redis trigger on %s with activationListLength \"0\": the workers could reach zero with batches waiting in the retry set", min, openRunsKey)
			}
			if openRuns != nil {
				checkRedisTrigger(t, objs, w, *openRuns, want.tls)
			}

			mt, nAPI := trigger(so, "metrics-api")
			if nAPI != 1 {
				t.Fatalf("%d metrics-api triggers, want one on /scaler", nAPI)
			}
			checkScalerTrigger(t, objs, w, so, mt)

			adv := spec.Advanced
			if adv == nil || adv.HorizontalPodAutoscalerConfig == nil || adv.HorizontalPodAutoscalerConfig.Behavior == nil ||
				adv.HorizontalPodAutoscalerConfig.Behavior.ScaleDown == nil {
				t.Fatal("no HPA scaleDown behavior: a throttle pause would make replicas flap")
			}
			down := adv.HorizontalPodAutoscalerConfig.Behavior.ScaleDown
			if w := down.StabilizationWindowSeconds; w == nil || *w < 60 {
				t.Errorf("scaleDown stabilizationWindowSeconds %s, want >= 60", ptrString(w))
			}
			if len(down.Policies) == 0 {
				t.Error("no scaleDown policy")
			}
			if adv.ScalingModifiers.Formula != "" {
				t.Error("scalingModifiers: the design is the HPA's max of the two triggers")
			}
		})
	}
}

func checkRedisTrigger(t *testing.T, objs []object, w workerSet, tr kedav1alpha1.ScaleTriggers, tls bool) {
	t.Helper()
	md := tr.Metadata
	if n, err := strconv.ParseInt(md["listLength"], 10, 64); err != nil || n < 1000 {
		t.Errorf("listLength %q: want a huge target, so any number of open runs asks for exactly one replica", md["listLength"])
	}
	env := md["addressFromEnv"]
	addr := md["address"]
	if env != "" {
		addr = w.env[env]
		if addr == "" {
			t.Errorf("addressFromEnv %s: not in the worker container's environment", env)
		}
	}
	u, _ := url.Parse(w.env["REDIS_URL"])
	if u != nil && addr != u.Host {
		t.Errorf("redis trigger address %q, but the workers use %q", addr, u.Host)
	}
	db := "0"
	if u != nil && strings.Trim(u.Path, "/") != "" {
		db = strings.Trim(u.Path, "/")
	}
	if got := md["databaseIndex"]; got != db && !(got == "" && db == "0") {
		t.Errorf("databaseIndex %q, REDIS_URL's database %s", got, db)
	}
	if (md["enableTLS"] == "true") != tls {
		t.Errorf("enableTLS %q, want %v (as REDIS_URL)", md["enableTLS"], tls)
	}
	// The workers authenticate with a password file; KEDA then needs the
	// same password from a TriggerAuthentication.
	if w.env["REDIS_PASSWORD_FILE"] == "" {
		return
	}
	if tr.AuthenticationRef == nil {
		t.Fatal("workers use REDIS_PASSWORD_FILE but the redis trigger has no authenticationRef")
	}
	ta := mustFind[kedav1alpha1.TriggerAuthentication](t, objs, tr.AuthenticationRef.Name)
	mounted := workerSecrets(w)
	ok := false
	for _, ref := range ta.Spec.SecretTargetRef {
		if ref.Parameter == "password" {
			ok = true
			if !slices.Contains(mounted, ref.Name+"/"+ref.Key) {
				t.Errorf("KEDA reads the password from %s/%s, the workers from %v", ref.Name, ref.Key, mounted)
			}
		}
	}
	if !ok {
		t.Errorf("TriggerAuthentication %s gives no password", ta.Name)
	}
}

// workerSecrets lists secret/key of the file REDIS_PASSWORD_FILE names.
func workerSecrets(w workerSet) []string { return secretOfFile(w, w.env["REDIS_PASSWORD_FILE"]) }

// secretOfFile names the Secret keys mounted where the file f is, as
// secret/key.
func secretOfFile(w workerSet, f string) []string {
	var out []string
	for _, m := range w.container.VolumeMounts {
		rel, ok := strings.CutPrefix(f, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok {
			continue
		}
		for _, v := range w.deploy.Spec.Template.Spec.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			if len(v.Secret.Items) == 0 {
				out = append(out, v.Secret.SecretName+"/"+rel)
			}
			for _, it := range v.Secret.Items {
				if it.Path == rel {
					out = append(out, v.Secret.SecretName+"/"+it.Key)
				}
			}
		}
	}
	return out
}

func checkScalerTrigger(t *testing.T, objs []object, w workerSet, so *kedav1alpha1.ScaledObject, tr kedav1alpha1.ScaleTriggers) {
	t.Helper()
	md := tr.Metadata
	u, err := url.Parse(md["url"])
	if err != nil {
		t.Fatalf("metrics-api url: %v", err)
	}
	svc := mustFind[corev1.Service](t, objs, w.deploy.Name)
	// KEDA's operator runs in its own namespace: a short name would not
	// resolve there.
	wantHost := svc.Name + "." + so.Namespace + ".svc.cluster.local"
	if u.Scheme != "http" || u.Hostname() != wantHost || u.Port() != "9090" || path.Clean(u.Path) != "/scaler" {
		t.Errorf("metrics-api url %s, want http://%s:9090/scaler", u, wantHost)
	}
	if md["valueLocation"] != "desired_workers" || md["targetValue"] != "1" || (md["format"] != "" && md["format"] != "json") {
		t.Errorf("metrics-api metadata %v: want valueLocation desired_workers, targetValue 1, json", md)
	}
}

// ---- what differs between installations

// TestTopologySpread: production spreads workers over zones, then nodes.
func TestTopologySpread(t *testing.T) {
	for _, in := range workerInstalls() {
		t.Run(in.name, func(t *testing.T) {
			w := worker(t, in.objs(t))
			ps := w.deploy.Spec.Template.Spec
			keys := map[string]bool{}
			for _, c := range ps.TopologySpreadConstraints {
				keys[c.TopologyKey] = true
				if !selects(t, c.LabelSelector, w.deploy.Spec.Template.Labels) {
					t.Errorf("topology spread on %s does not select the workers", c.TopologyKey)
				}
				if c.WhenUnsatisfiable != corev1.ScheduleAnyway {
					t.Errorf("topology spread on %s is hard: a run would wait for a node", c.TopologyKey)
				}
			}
			if in.want.spread && (!keys["topology.kubernetes.io/zone"] || !keys["kubernetes.io/hostname"]) {
				t.Errorf("topology spread keys %v: want zones and nodes", keys)
			}
			if !in.want.spread && len(keys) > 0 {
				t.Errorf("topology spread keys %v: want none", keys)
			}
		})
	}
}

func TestServiceMonitor(t *testing.T) {
	for _, in := range workerInstalls() {
		t.Run(in.name, func(t *testing.T) {
			objs := in.objs(t)
			w := worker(t, objs)
			sms := all[monitoringv1.ServiceMonitor](objs)
			if !in.want.monitor {
				if len(sms) > 0 {
					t.Error("a ServiceMonitor, which this installation does not promise")
				}
				return
			}
			if len(sms) != 1 {
				t.Fatalf("%d ServiceMonitors, want one", len(sms))
			}
			sm := sms[0]
			svc := mustFind[corev1.Service](t, objs, w.deploy.Name)
			if !selects(t, &sm.Spec.Selector, svc.Labels) {
				t.Error("the ServiceMonitor does not select the worker Service")
			}
			if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" || sm.Spec.Endpoints[0].Path != "/metrics" {
				t.Errorf("ServiceMonitor endpoints %+v", sm.Spec.Endpoints)
			}
			if sm.Labels["release"] == "" {
				t.Error("no release label: kube-prometheus-stack selects ServiceMonitors by it")
			}
		})
	}
}

// TestNamespace: everything in the installation's namespace; an overlay
// creates its Namespace, enforcing the restricted Pod Security Standard.
func TestNamespace(t *testing.T) {
	for _, in := range installs() {
		t.Run(in.name, func(t *testing.T) {
			objs := in.objs(t)
			ns := in.want.namespace
			if in.want.namespaceObject {
				n := mustFind[corev1.Namespace](t, objs, ns)
				if n.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
					t.Errorf("namespace %s does not enforce the restricted Pod Security Standard", ns)
				}
			} else if _, ok := find[corev1.Namespace](objs, ""); ok {
				t.Error("renders a Namespace")
			}
			for _, o := range objs {
				if o.Kind != "v1/Namespace" && o.Namespace != ns {
					t.Errorf("%s is not in namespace %s", o, ns)
				}
			}
		})
	}
}

// TestWebhook: the webhook gives the worker its URL and signing secret as
// files of the Secret msaudit-webhook, read-only, the URL never as a plain
// variable.
func TestWebhook(t *testing.T) {
	for _, in := range workerInstalls() {
		t.Run(in.name, func(t *testing.T) {
			w := worker(t, in.objs(t))
			if _, ok := w.env["MSAUDIT_WEBHOOK_URL"]; ok {
				t.Error("the webhook URL, a credential, is in the environment")
			}
			if !in.want.webhook {
				for k := range w.env {
					if strings.HasPrefix(k, "MSAUDIT_WEBHOOK_") {
						t.Errorf("%s set, but this installation sends no run events", k)
					}
				}
				return
			}
			if got := secretOfFile(w, w.env["MSAUDIT_WEBHOOK_URL_FILE"]); !slices.Equal(got, []string{"msaudit-webhook/url"}) {
				t.Errorf("MSAUDIT_WEBHOOK_URL_FILE comes from %v, want the Secret msaudit-webhook, key url", got)
			}
			if got := secretOfFile(w, w.env["MSAUDIT_WEBHOOK_SECRET_FILE"]); !slices.Equal(got, []string{"msaudit-webhook/signing-secret"}) {
				t.Errorf("MSAUDIT_WEBHOOK_SECRET_FILE comes from %v, want the Secret msaudit-webhook, key signing-secret", got)
			}
			for _, m := range w.container.VolumeMounts {
				if m.Name == "webhook" && !m.ReadOnly {
					t.Error("the webhook Secret is mounted writable")
				}
			}
		})
	}
}

// TestDevRedis: the development Redis, where there is one, is a single
// AOF-persisted, non-evicting primary that the workers (and KEDA) reach and
// nothing else in the namespace does.
func TestDevRedis(t *testing.T) {
	for _, in := range workerInstalls() {
		t.Run(in.name, func(t *testing.T) {
			objs := in.objs(t)
			w := worker(t, objs)
			var sts *appsv1.StatefulSet
			for _, s := range all[appsv1.StatefulSet](objs) {
				if s.Spec.Template.Labels["app.kubernetes.io/component"] == "queue-store" {
					sts = s
				}
			}
			if !in.want.devRedis {
				if sts != nil {
					t.Errorf("an in-cluster Redis (%s), which this installation does not promise", sts.Name)
				}
				return
			}
			if sts == nil {
				t.Fatal("no Redis StatefulSet (pods labelled app.kubernetes.io/component=queue-store)")
			}
			checkDevRedis(t, objs, w, sts)
		})
	}
}

func checkDevRedis(t *testing.T, objs []object, w workerSet, sts *appsv1.StatefulSet) {
	t.Helper()
	svc := mustFind[corev1.Service](t, objs, sts.Spec.ServiceName)
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Error("Redis needs its headless Service, named in the StatefulSet")
	}
	if !selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, sts.Spec.Template.Labels) {
		t.Error("the redis Service does not select the Redis pod")
	}
	u, _ := url.Parse(w.env["REDIS_URL"])
	if u == nil || u.Hostname() != svc.Name || u.Port() != "6379" {
		t.Errorf("REDIS_URL %s does not point at the redis Service", w.env["REDIS_URL"])
	}
	c := sts.Spec.Template.Spec.Containers[0]
	if c.Image != "redis:7.4" {
		t.Errorf("Redis image %s", c.Image)
	}
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"} {
		if !strings.Contains(args, want) {
			t.Errorf("Redis args %q lack %q", args, want)
		}
	}
	if len(sts.Spec.VolumeClaimTemplates) != 1 || len(c.VolumeMounts) != 1 ||
		c.VolumeMounts[0].Name != sts.Spec.VolumeClaimTemplates[0].Name || c.VolumeMounts[0].MountPath != "/data" {
		t.Error("Redis must keep /data on its PersistentVolumeClaim (the AOF)")
	}
	if sc := sts.Spec.Template.Spec.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 999 || sc.FSGroup == nil || *sc.FSGroup != 999 {
		t.Error("Redis must run as the image's redis user 999, with fsGroup 999 for its volume")
	}
	// Workers (and enqueue Jobs) may reach Redis; nothing else in the namespace.
	var allowsWorkers bool
	for _, np := range all[networkingv1.NetworkPolicy](objs) {
		if !selects(t, &np.Spec.PodSelector, sts.Spec.Template.Labels) {
			continue
		}
		for _, r := range np.Spec.Ingress {
			for _, p := range ruleports(t, r.Ports, "ingress of "+np.Name) {
				if p != (portProto{6379, corev1.ProtocolTCP}) {
					t.Errorf("NetworkPolicy %s lets Redis be reached on %d", np.Name, p.port)
				}
			}
			if len(r.From) == 0 {
				t.Errorf("NetworkPolicy %s lets anyone reach Redis", np.Name)
			}
			for _, f := range r.From {
				if f.PodSelector != nil && selects(t, f.PodSelector, w.deploy.Spec.Template.Labels) {
					allowsWorkers = true
				}
			}
		}
	}
	if !allowsWorkers {
		t.Error("no NetworkPolicy lets the workers reach Redis")
	}
}

// ---- submitting runs: the examples and the chart's Job and CronJob

func TestSubmitJobs(t *testing.T) {
	for _, in := range installs() {
		t.Run(in.name, func(t *testing.T) {
			objs := in.objs(t)
			var pts []podTemplate
			for _, pt := range podTemplates(objs) {
				if pt.labels["app.kubernetes.io/component"] == "enqueue" {
					pts = append(pts, pt)
				}
			}
			if len(pts) != in.want.submit {
				t.Fatalf("%d enqueue pod templates, want %d", len(pts), in.want.submit)
			}
			for _, pt := range pts {
				checkSubmit(t, objs, pt)
			}
			for _, j := range all[batchv1.Job](objs) {
				if j.Spec.BackoffLimit == nil || *j.Spec.BackoffLimit != 0 {
					t.Error("backoffLimit must be 0: a retried submit starts a second run")
				}
			}
			for _, cj := range all[batchv1.CronJob](objs) {
				if cj.Spec.Schedule != "0 3 1 * *" || cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
					t.Errorf("CronJob %s: schedule %q, concurrencyPolicy %s; want monthly and Forbid", cj.Name, cj.Spec.Schedule, cj.Spec.ConcurrencyPolicy)
				}
				// A re-audit, whose baseline (last month's run) the store
				// still keeps when it starts.
				c := cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0]
				if !slices.Contains(c.Args, "--since=latest") {
					t.Errorf("CronJob %s: args %v, want a re-audit (--since=latest)", cj.Name, c.Args)
				}
				retention := 30 * 24 * time.Hour // submit's default
				for _, a := range c.Args {
					if v, ok := strings.CutPrefix(a, "--retention="); ok {
						retention, _ = time.ParseDuration(v)
					}
				}
				if retention < 40*24*time.Hour {
					t.Errorf("CronJob %s: retention %s would let a month's run expire before the next one reads it", cj.Name, retention)
				}
				if b := cj.Spec.JobTemplate.Spec.BackoffLimit; b == nil || *b != 0 {
					t.Error("backoffLimit must be 0: a retried submit starts a second run")
				}
			}
		})
	}
}

func checkSubmit(t *testing.T, objs []object, pt podTemplate) {
	t.Helper()
	ps := pt.spec
	if ps.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("%s: restartPolicy must be Never: a restarted submit starts a second run", pt.owner)
	}
	c := ps.Containers[0]
	if !strings.HasPrefix(c.Image, enqueueImage+":") && !strings.HasPrefix(c.Image, enqueueImage+"@") {
		t.Errorf("image %s, want %s", c.Image, enqueueImage)
	}
	if len(c.Args) == 0 || c.Args[0] != "submit" || !slices.Contains(c.Args, "--output=json") {
		t.Errorf("args %v: want submit … --output=json", c.Args)
	}
	env := containerEnv(t, objs, &c)
	for k := range env {
		if !slices.Contains(knownEnqueueEnv, k) {
			t.Errorf("env %s is not one enqueue reads", k)
		}
	}
	// $(VAR) in args expands only variables the container defines.
	for _, a := range c.Args {
		for _, m := range regexp.MustCompile(`\$\(([A-Z_]+)\)`).FindAllStringSubmatch(a, -1) {
			if _, ok := env[m[1]]; !ok {
				t.Errorf("arg %s uses $(%s), which the container does not define", a, m[1])
			}
		}
	}
	if env["REDIS_URL"] == "" {
		t.Error("no REDIS_URL")
	}
	auth := ""
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--auth="); ok {
			auth = v
		}
	}
	switch auth {
	case "workload-identity":
		if pt.labels["azure.workload.identity/use"] != "true" {
			t.Error("workload identity needs the pod label azure.workload.identity/use: \"true\"")
		}
		sa := mustFind[corev1.ServiceAccount](t, objs, ps.ServiceAccountName)
		if sa.Annotations["azure.workload.identity/client-id"] == "" {
			t.Error("the ServiceAccount lacks azure.workload.identity/client-id")
		}
		if sa.Annotations["azure.workload.identity/client-id"] != env["AZURE_CLIENT_ID"] {
			t.Error("AZURE_CLIENT_ID differs from the ServiceAccount's client-id annotation")
		}
	case "certificate":
		if !hasArgPrefix(c.Args, "--certificate-file=") {
			t.Error("--auth=certificate without --certificate-file")
		}
	case "client-secret":
		if !hasArgPrefix(c.Args, "--client-secret-file=") {
			t.Error("--auth=client-secret without --client-secret-file")
		}
	default:
		t.Errorf("--auth=%q: want workload-identity, certificate or client-secret", auth)
	}
}

func ptrString[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

func hasArgPrefix(args []string, p string) bool {
	return slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, p) })
}
