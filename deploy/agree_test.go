package deploy

import (
	"reflect"
	"testing"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
)

// The chart's default render and the kustomize production overlay are two
// ways to install the same thing: they agree on what matters. Names and
// labels differ (the chart names objects after its release and labels them
// with it); nothing else may.
func TestChartAgreesWithProductionOverlay(t *testing.T) {
	kz := render(t, "overlays/production")
	hc := renderChart(t, chartCases[0]).objects
	kw, hw := worker(t, kz), worker(t, hc)
	same := func(what string, k, h any) {
		t.Helper()
		if !reflect.DeepEqual(k, h) {
			t.Errorf("%s differs:\n  kustomize: %+v\n  chart:     %+v", what, k, h)
		}
	}
	kp, hp := kw.deploy.Spec.Template.Spec, hw.deploy.Spec.Template.Spec
	same("pod securityContext", kp.SecurityContext, hp.SecurityContext)
	same("container securityContext", kw.container.SecurityContext, hw.container.SecurityContext)
	same("liveness probe", kw.container.LivenessProbe, hw.container.LivenessProbe)
	same("readiness probe", kw.container.ReadinessProbe, hw.container.ReadinessProbe)
	same("terminationGracePeriodSeconds", kp.TerminationGracePeriodSeconds, hp.TerminationGracePeriodSeconds)
	same("settings (the worker's environment)", kw.env, hw.env)
	same("image", kw.container.Image, hw.container.Image)
	same("ports", kw.container.Ports, hw.container.Ports)
	same("resources", kw.container.Resources, hw.container.Resources)
	same("volume mounts", kw.container.VolumeMounts, hw.container.VolumeMounts)
	same("volumes", kp.Volumes, hp.Volumes)
	same("update strategy", kw.deploy.Spec.Strategy, hw.deploy.Spec.Strategy)
	same("replicas", kw.deploy.Spec.Replicas, hw.deploy.Spec.Replicas)
	same("automountServiceAccountToken", kp.AutomountServiceAccountToken, hp.AutomountServiceAccountToken)
	same("enableServiceLinks", kp.EnableServiceLinks, hp.EnableServiceLinks)
	same("prometheus annotations", promAnnotations(kw.deploy.Spec.Template.Annotations), promAnnotations(hw.deploy.Spec.Template.Annotations))
	spread := func(cs []corev1.TopologySpreadConstraint) []corev1.TopologySpreadConstraint {
		var out []corev1.TopologySpreadConstraint
		for _, c := range cs {
			c.LabelSelector = nil // the chart's also names the release
			out = append(out, c)
		}
		return out
	}
	same("topology spread", spread(kp.TopologySpreadConstraints), spread(hp.TopologySpreadConstraints))

	kso := mustFind[kedav1alpha1.ScaledObject](t, kz, kw.deploy.Name)
	hso := mustFind[kedav1alpha1.ScaledObject](t, hc, hw.deploy.Name)
	same("ScaledObject triggers", kso.Spec.Triggers, hso.Spec.Triggers)
	same("ScaledObject replica bounds", []*int32{kso.Spec.MinReplicaCount, kso.Spec.MaxReplicaCount}, []*int32{hso.Spec.MinReplicaCount, hso.Spec.MaxReplicaCount})
	same("ScaledObject polling and cooldown", []*int32{kso.Spec.PollingInterval, kso.Spec.CooldownPeriod}, []*int32{hso.Spec.PollingInterval, hso.Spec.CooldownPeriod})
	same("ScaledObject advanced", kso.Spec.Advanced, hso.Spec.Advanced)
	same("ScaledObject fallback", kso.Spec.Fallback, hso.Spec.Fallback)
	kta := all[kedav1alpha1.TriggerAuthentication](kz)
	hta := all[kedav1alpha1.TriggerAuthentication](hc)
	if len(kta) != 1 || len(hta) != 1 {
		t.Fatalf("TriggerAuthentications: %d in the overlay, %d in the chart; want one each", len(kta), len(hta))
	}
	same("TriggerAuthentication", kta[0].Spec, hta[0].Spec)

	knp := mustFind[networkingv1.NetworkPolicy](t, kz, kw.deploy.Name)
	hnp := mustFind[networkingv1.NetworkPolicy](t, hc, hw.deploy.Name)
	same("NetworkPolicy rules", []any{knp.Spec.PolicyTypes, knp.Spec.Ingress, knp.Spec.Egress}, []any{hnp.Spec.PolicyTypes, hnp.Spec.Ingress, hnp.Spec.Egress})
	kpdb := mustFind[policyv1.PodDisruptionBudget](t, kz, kw.deploy.Name)
	hpdb := mustFind[policyv1.PodDisruptionBudget](t, hc, hw.deploy.Name)
	same("PodDisruptionBudget", []any{kpdb.Spec.MaxUnavailable, kpdb.Spec.MinAvailable, kpdb.Spec.UnhealthyPodEvictionPolicy},
		[]any{hpdb.Spec.MaxUnavailable, hpdb.Spec.MinAvailable, hpdb.Spec.UnhealthyPodEvictionPolicy})
	ksvc := mustFind[corev1.Service](t, kz, kw.deploy.Name)
	hsvc := mustFind[corev1.Service](t, hc, hw.deploy.Name)
	same("Service ports", ksvc.Spec.Ports, hsvc.Spec.Ports)
}

func promAnnotations(a map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		if len(k) > len("prometheus.io/") && k[:len("prometheus.io/")] == "prometheus.io/" {
			out[k] = v
		}
	}
	return out
}
