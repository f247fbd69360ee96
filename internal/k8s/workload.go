package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/rollout"
)

// Labels and annotations Aviary puts on the ReplicaSets it makes and on their pods.
const (
	// RolloutLabel names the Rollout a ReplicaSet (and its pods) belong to.
	RolloutLabel = "aviary.dev/rollout"
	// HashLabel is the pod-template-hash: a version's name, and what the Services select.
	HashLabel = "aviary.dev/pod-template-hash"
	// RevisionAnnotation counts the templates a Rollout has seen, 1 first.
	RevisionAnnotation = "aviary.dev/revision"
	// ReplicasAnnotation keeps a Deployment's replicas when Aviary scales it to 0.
	ReplicasAnnotation = "aviary.dev/replicas"
)

// templateHash names a pod template: ten characters from an FNV-32a hash of its JSON form, as
// Kubernetes names ReplicaSets of a Deployment.
func templateHash(t corev1.PodTemplateSpec) string {
	b, _ := json.Marshal(t) // a PodTemplateSpec always marshals
	h := fnv.New32a()
	h.Write(b)
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

// versionOf names the version of a Deployment's template: the version of a ReplicaSet made from
// the same template (compared as the API server serves both, without Aviary's labels), else the
// template's hash. Comparing templates, not hashes, keeps a version's name when the hash of an
// unchanged template changes (a field newly defaulted by an upgraded API server or client).
func versionOf(t corev1.PodTemplateSpec, vs []version) string {
	for _, v := range vs {
		own := *v.rs.Spec.Template.DeepCopy()
		own.Labels = maps.Clone(own.Labels)
		delete(own.Labels, RolloutLabel)
		delete(own.Labels, HashLabel)
		if len(own.Labels) == 0 {
			own.Labels = nil
		}
		want := t
		if len(want.Labels) == 0 {
			want.Labels = nil
		}
		if equality.Semantic.DeepEqual(own, want) {
			return v.hash
		}
	}
	return templateHash(t)
}

// version is one ReplicaSet of a Rollout.
type version struct {
	hash     string
	revision int64
	rs       *appsv1.ReplicaSet
}

// versions lists a Rollout's ReplicaSets, newest revision first.
func (r *Reconciler) versions(ctx context.Context, ro *v1alpha1.Rollout) ([]version, error) {
	var list appsv1.ReplicaSetList
	if err := r.Client.List(ctx, &list, client.InNamespace(ro.Namespace), client.MatchingLabels{RolloutLabel: ro.Name}); err != nil {
		return nil, fmt.Errorf("list the ReplicaSets of %s: %w", ro.Name, err)
	}
	var out []version
	for i := range list.Items {
		rs := &list.Items[i]
		if !metav1.IsControlledBy(rs, ro) {
			continue
		}
		rev, _ := strconv.ParseInt(rs.Annotations[RevisionAnnotation], 10, 64)
		out = append(out, version{hash: rs.Labels[HashLabel], revision: rev, rs: rs})
	}
	slices.SortFunc(out, func(a, b version) int { return int(b.revision - a.revision) })
	return out, nil
}

// ensureVersion makes the ReplicaSet of the Deployment's current template, with no replicas,
// unless it is there.
func (r *Reconciler) ensureVersion(ctx context.Context, ro *v1alpha1.Rollout, dep *appsv1.Deployment, hash string, vs []version) ([]version, error) {
	if slices.ContainsFunc(vs, func(v version) bool { return v.hash == hash }) {
		return vs, nil
	}
	rev := int64(1)
	if len(vs) > 0 {
		rev = vs[0].revision + 1
	}
	tmpl := *dep.Spec.Template.DeepCopy()
	tmpl.Labels = maps.Clone(tmpl.Labels)
	if tmpl.Labels == nil {
		tmpl.Labels = map[string]string{}
	}
	tmpl.Labels[RolloutLabel], tmpl.Labels[HashLabel] = ro.Name, hash
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{RolloutLabel: ro.Name, HashLabel: hash}}
	if dep.Spec.Selector != nil {
		sel = dep.Spec.Selector.DeepCopy()
		if sel.MatchLabels == nil {
			sel.MatchLabels = map[string]string{}
		}
		sel.MatchLabels[RolloutLabel], sel.MatchLabels[HashLabel] = ro.Name, hash
	}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: ro.Name + "-" + hash, Namespace: ro.Namespace,
			Labels:      map[string]string{RolloutLabel: ro.Name, HashLabel: hash},
			Annotations: map[string]string{RevisionAnnotation: strconv.FormatInt(rev, 10)},
		},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](0), Selector: sel, Template: tmpl,
			MinReadySeconds: dep.Spec.MinReadySeconds},
	}
	if err := controllerutil.SetControllerReference(ro, rs, r.Client.Scheme()); err != nil {
		return nil, err
	}
	if err := r.Client.Create(ctx, rs); err != nil {
		return nil, fmt.Errorf("create ReplicaSet %s: %w", rs.Name, err)
	}
	return append([]version{{hash: hash, revision: rev, rs: rs}}, vs...), nil
}

// health is each version's pods as the core sees endpoints.
func health(vs []version) map[string]rollout.Health {
	out := map[string]rollout.Health{}
	for _, v := range vs {
		out[v.hash] = rollout.Health{Endpoints: int(ptr.Deref(v.rs.Spec.Replicas, 0)),
			Available: int(v.rs.Status.AvailableReplicas), Ready: int(v.rs.Status.ReadyReplicas)}
	}
	return out
}

// scale gives each ReplicaSet its replicas, and deletes ReplicaSets beyond the history limit
// (never one that the plan still names, nor the Deployment's current template's).
func (r *Reconciler) scale(ctx context.Context, ro *v1alpha1.Rollout, vs []version, want map[string]int32, current string) error {
	limit := int(ptr.Deref(ro.Spec.RevisionHistoryLimit, 10))
	kept := 0
	for _, v := range vs { // newest first
		n := want[v.hash]
		if _, named := want[v.hash]; !named && v.hash != current {
			if kept >= limit {
				if err := r.Client.Delete(ctx, v.rs); client.IgnoreNotFound(err) != nil {
					return fmt.Errorf("delete old ReplicaSet %s: %w", v.rs.Name, err)
				}
				continue
			}
			kept++
		}
		if ptr.Deref(v.rs.Spec.Replicas, 0) == n {
			continue
		}
		patch := client.MergeFrom(v.rs.DeepCopy())
		v.rs.Spec.Replicas = ptr.To(n)
		if err := r.Client.Patch(ctx, v.rs, patch); err != nil {
			return fmt.Errorf("scale ReplicaSet %s to %d: %w", v.rs.Name, n, err)
		}
	}
	return nil
}

// replicas says how many pods each version gets under a plan: the stable its full count; the
// canary enough for its share (all of them for a blue-green preview), none once aborted; the
// previous stable all of them while it is kept warm (with a router only: without one, its pods
// would take traffic); a new template waiting for its rollout one; every other version none.
// Without a traffic router the pods are the traffic: the canary's replicas stand for its weight
// and the stable's shrink to match.
func replicas(total int32, p rollout.Plan, s rollout.State, routed bool, waiting string) map[string]int32 {
	want := map[string]int32{p.Stable: total}
	if p.Warm != "" && routed {
		want[p.Warm] = total
	}
	if c := p.Canary; c != "" && c != p.Stable {
		share := max(float64(p.Weight), p.Mirror)
		var n int32
		switch {
		case !s.InFlight():
			n = 0 // aborted: the canary keeps no pods
		case s.Strategy == rollout.StrategyBlueGreen:
			n = total
		case routed:
			n = max(1, int32((share*float64(total)+99)/100))
		default:
			n = int32(share*float64(total)/100 + 0.5)
			if p.Weight > 0 {
				n = max(1, n)
			}
			want[p.Stable] = max(0, total-n)
			if p.Weight < 100 {
				want[p.Stable] = max(1, want[p.Stable])
			}
		}
		want[c] = n
	}
	if waiting != "" && waiting != p.Stable {
		want[waiting] = max(want[waiting], 1) // a new template gets a pod before its rollout starts
	}
	return want
}
