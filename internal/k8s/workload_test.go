package k8s

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"aviary.dev/aviary/internal/rollout"
)

func rawJSON(s string) *apiextensionsv1.JSON { return &apiextensionsv1.JSON{Raw: []byte(s)} }

func TestATemplatesHashIsItsVersionName(t *testing.T) {
	a := corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "shop", Image: "shop:1"}}}}
	b := *a.DeepCopy()
	b.Spec.Containers[0].Image = "shop:2"
	if templateHash(a) != templateHash(*a.DeepCopy()) {
		t.Error("the same template hashes differently")
	}
	if templateHash(a) == templateHash(b) {
		t.Error("two templates share a hash")
	}
	if h := templateHash(a); len(h) < 8 || len(h) > 10 {
		t.Errorf("hash %q", h)
	}
}

func TestReplicasFollowThePlan(t *testing.T) {
	inFlight := rollout.State{Phase: rollout.Progressing, Strategy: "canary"}
	cases := []struct {
		name    string
		p       rollout.Plan
		s       rollout.State
		routed  bool
		waiting string
		want    map[string]int32
	}{
		{"no rollout", rollout.Plan{Stable: "a"}, rollout.State{Phase: rollout.Healthy}, true, "", map[string]int32{"a": 10}},
		{"warm previous", rollout.Plan{Stable: "b", Warm: "a"}, rollout.State{Phase: rollout.Healthy}, true, "", map[string]int32{"a": 10, "b": 10}},
		{"no warm pods without a router", rollout.Plan{Stable: "b", Warm: "a"}, rollout.State{Phase: rollout.Healthy}, false, "", map[string]int32{"b": 10}},
		{"a fix after an abort gets its pod, the aborted none", rollout.Plan{Stable: "a", Canary: "b"}, rollout.State{Phase: rollout.Degraded}, false, "c",
			map[string]int32{"a": 10, "b": 0, "c": 1}},
		{"a template waiting behind a rollout in flight", rollout.Plan{Stable: "a", Canary: "b", Weight: 20}, inFlight, true, "c",
			map[string]int32{"a": 10, "b": 2, "c": 1}},
		{"routed 25%", rollout.Plan{Stable: "a", Canary: "b", Weight: 25}, inFlight, true, "", map[string]int32{"a": 10, "b": 3}},
		{"routed 0% still gets a pod", rollout.Plan{Stable: "a", Canary: "b"}, inFlight, true, "", map[string]int32{"a": 10, "b": 1}},
		{"routed mirror 50%", rollout.Plan{Stable: "a", Canary: "b", Mirror: 50}, inFlight, true, "", map[string]int32{"a": 10, "b": 5}},
		{"replicas 25%", rollout.Plan{Stable: "a", Canary: "b", Weight: 25}, inFlight, false, "", map[string]int32{"a": 7, "b": 3}},
		{"replicas 1% rounds up to a pod", rollout.Plan{Stable: "a", Canary: "b", Weight: 1}, inFlight, false, "", map[string]int32{"a": 9, "b": 1}},
		{"replicas 100%", rollout.Plan{Stable: "a", Canary: "b", Weight: 100}, inFlight, false, "", map[string]int32{"a": 0, "b": 10}},
		{"blue-green preview", rollout.Plan{Stable: "a", Canary: "b"}, rollout.State{Phase: rollout.Paused, Strategy: "blueGreen"}, true, "", map[string]int32{"a": 10, "b": 10}},
		{"aborted", rollout.Plan{Stable: "a", Canary: "b"}, rollout.State{Phase: rollout.Degraded}, true, "", map[string]int32{"a": 10, "b": 0}},
		{"a new template waits with one pod", rollout.Plan{Stable: "a"}, rollout.State{Phase: rollout.Healthy}, true, "b", map[string]int32{"a": 10, "b": 1}},
	}
	for _, c := range cases {
		got := replicas(10, c.p, c.s, c.routed, c.waiting)
		if len(got) != len(c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
			continue
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("%s: %v, want %v", c.name, got, c.want)
				break
			}
		}
	}
}

func TestADeploymentScaledToZeroByAviaryKeepsItsCount(t *testing.T) {
	dep := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3)}}
	if n := deploymentReplicas(dep); n != 3 {
		t.Errorf("replicas 3: %d", n)
	}
	dep.Spec.Replicas = ptr.To[int32](0)
	dep.Annotations = map[string]string{ReplicasAnnotation: "3"}
	if n := deploymentReplicas(dep); n != 3 {
		t.Errorf("scaled to 0 by Aviary from 3: %d", n)
	}
	dep.Spec.Replicas = ptr.To[int32](6) // a GitOps sync sets it again: that is the new intent
	if n := deploymentReplicas(dep); n != 6 {
		t.Errorf("set back to 6: %d", n)
	}
	if n := deploymentReplicas(&appsv1.Deployment{}); n != 1 {
		t.Errorf("no replicas field: %d, want Kubernetes' default 1", n)
	}
}

func TestATemplateKeepsItsVersionWhenItsHashChanges(t *testing.T) {
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "shop"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "shop", Image: "shop:1"}}}}
	own := *tmpl.DeepCopy()
	own.Labels = map[string]string{"app": "shop", RolloutLabel: "shop", HashLabel: "oldhash"}
	vs := []version{{hash: "oldhash", rs: &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Template: own}}}}
	if got := versionOf(tmpl, vs); got != "oldhash" {
		t.Errorf("the same template is version %q, want the ReplicaSet's oldhash", got)
	}
	changed := *tmpl.DeepCopy()
	changed.Spec.Containers[0].Image = "shop:2"
	if got := versionOf(changed, vs); got != templateHash(changed) {
		t.Errorf("a changed template is version %q, want its own hash", got)
	}
}
