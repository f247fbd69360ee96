package k8s

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/rollout"
)

// HandoverFinalizer keeps a deleted Rollout until its traffic is handed back to the Deployment.
const HandoverFinalizer = "aviary.dev/handover"

// keepUntilHandedOver adds the finalizer to a Rollout that lacks it (true: it was added).
func (r *Reconciler) keepUntilHandedOver(ctx context.Context, ro *v1alpha1.Rollout) (bool, error) {
	if controllerutil.ContainsFinalizer(ro, HandoverFinalizer) {
		return false, nil
	}
	before := ro.DeepCopy()
	controllerutil.AddFinalizer(ro, HandoverFinalizer)
	if err := r.Client.Patch(ctx, ro, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return false, fmt.Errorf("add the %s finalizer: %w", HandoverFinalizer, err)
	}
	return true, nil
}

// handOver gives a deleted Rollout's traffic back to what it found: the Deployment runs its pods
// again (scaled to the Rollout's count if it was at 0), the Services select the app's pods without
// Aviary's labels, and the HTTPRoute sends everything to the stable Service. The finalizer goes
// once the Deployment's pods are available, so the Rollout's ReplicaSets (deleted with it) serve
// until then. A Deployment whose template the Rollout rolled back is not handed anything (see
// holdHandover).
// handoverReplicas is how many pods the Deployment takes the traffic back with: the Rollout's
// replicas, or the Deployment's own; for a Deployment that only held the template, as many pods
// as the Rollout runs.
func (r *Reconciler) handoverReplicas(ctx context.Context, ro *v1alpha1.Rollout, dep *appsv1.Deployment) (int32, error) {
	want := ptr.Deref(ro.Spec.Replicas, deploymentReplicas(dep))
	if want != 0 {
		return want, nil
	}
	vs, err := r.versions(ctx, ro)
	if err != nil {
		return 0, err
	}
	for _, v := range vs {
		want = max(want, ptr.Deref(v.rs.Spec.Replicas, 0))
	}
	return want, nil
}

func (r *Reconciler) handOver(ctx context.Context, ro *v1alpha1.Rollout) (ctrl.Result, error) {
	r.dropJudges(types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}) // its analyses and gates are over
	if !controllerutil.ContainsFinalizer(ro, HandoverFinalizer) {
		return ctrl.Result{}, nil
	}
	var dep appsv1.Deployment
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: ro.Spec.WorkloadRef.Name}, &dep)
	switch {
	case apierrors.IsNotFound(err): // nothing to hand back to
		r.forgetHold(types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name})
	case err != nil:
		return ctrl.Result{}, err
	default:
		held, err := r.holdHandover(ctx, ro, &dep)
		if err != nil {
			return ctrl.Result{}, err
		}
		if held {
			return ctrl.Result{RequeueAfter: handoverRecheck}, nil
		}
		want, err := r.handoverReplicas(ctx, ro, &dep)
		if err != nil {
			return ctrl.Result{}, err
		}
		if ptr.Deref(dep.Spec.Replicas, 1) == 0 && want > 0 {
			before := dep.DeepCopy()
			dep.Spec.Replicas = ptr.To(want)
			delete(dep.Annotations, ReplicasAnnotation)
			if err := r.Client.Patch(ctx, &dep, client.MergeFrom(before)); err != nil {
				return ctrl.Result{}, fmt.Errorf("scale Deployment %s back to %d for the Rollout's deletion: %w", dep.Name, want, err)
			}
			r.event(ro, corev1.EventTypeNormal, "HandingOver", fmt.Sprintf("Deployment %s scaled to %d to take the traffic back", dep.Name, want))
		}
		if dep.Status.AvailableReplicas < ptr.Deref(dep.Spec.Replicas, 1) {
			return ctrl.Result{RequeueAfter: time.Second}, nil // its pods are starting; ours serve meanwhile
		}
	}
	for _, name := range []string{ro.Spec.StableService, ro.Spec.CanaryService} {
		if err := r.unselect(ctx, ro.Namespace, name); err != nil {
			return ctrl.Result{}, err
		}
	}
	if routeName(ro) != "" {
		if err := r.route(ctx, ro, rollout.Plan{Stable: "-"}); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, err
		}
	}
	before := ro.DeepCopy()
	controllerutil.RemoveFinalizer(ro, HandoverFinalizer)
	if err := r.Client.Patch(ctx, ro, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	r.Logger.Info("rollout deleted; traffic handed back to the Deployment", "rollout", ro.Namespace+"/"+ro.Name)
	return ctrl.Result{}, nil
}

// HandoverAnnotation on a deleted Rollout set to "force" hands its traffic over even to a template
// the Rollout rolled back.
const HandoverAnnotation = "aviary.dev/handover"

// handoverRecheck is how often a held handover looks again (a change to the Deployment or the
// Rollout also wakes it).
const handoverRecheck = 30 * time.Second

// holdHandover reports whether a deleted Rollout must keep its traffic: when the Deployment's
// template is a release the Rollout turned away (aborted, failed its analysis, or undone), handing
// over would roll that version out to everyone through the Deployment. It holds until the
// template is changed (back to the stable one, or to a fix), the Rollout is annotated
// aviary.dev/handover=force, or the Deployment goes; and never when the stable version has no
// available pods left (a foreground deletion removes its ReplicaSet first): holding would then
// serve nothing. Each turn is told once by a Warning Event.
func (r *Reconciler) holdHandover(ctx context.Context, ro *v1alpha1.Rollout, dep *appsv1.Deployment) (bool, error) {
	key := types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}
	away, stable, err := r.turnedAway(ctx, ro, dep)
	if err != nil || away == "" {
		r.forgetHold(key)
		return false, err
	}
	decision, reason, note := "held", "HandoverHeld", fmt.Sprintf("Deployment %s holds version %s, which was turned away "+
		"(aborted or undone); handing traffic over would roll it out to everyone, so stable %s keeps serving. Set the "+
		"Deployment's template back (or to a fix), or annotate the Rollout %s=force to hand over anyway",
		dep.Name, away, ro.Status.StableVersion, HandoverAnnotation)
	if stable == nil || stable.rs.DeletionTimestamp != nil || stable.rs.Status.AvailableReplicas == 0 {
		decision, reason, note = "forced", "HandoverForced", fmt.Sprintf("Deployment %s holds version %s, which was turned "+
			"away, but the stable version has no available pods left (a foreground deletion removes them first): handing "+
			"over to it rather than serving nothing", dep.Name, away)
	}
	r.mu.Lock()
	if r.held == nil {
		r.held = map[types.NamespacedName]string{}
	}
	told := r.held[key] == decision
	r.held[key] = decision
	r.mu.Unlock()
	if !told {
		r.event(ro, corev1.EventTypeWarning, reason, note)
		// The status says so too, for `aviary rollout status` and `kubectl get rollout -o yaml`.
		meta.SetStatusCondition(&ro.Status.Conditions, metav1.Condition{Type: HandoverCondition, Status: metav1.ConditionFalse,
			Reason: reason, Message: note, ObservedGeneration: ro.Generation})
		if err := r.Client.Status().Update(ctx, ro); err != nil {
			r.forgetHold(key) // tell again on the next pass
			return decision == "held", client.IgnoreNotFound(err)
		}
	}
	return decision == "held", nil
}

// HandoverCondition is the status condition of a deleted Rollout whose handover is held (reason
// HandoverHeld) or forced (HandoverForced).
const HandoverCondition = "Handover"

func (r *Reconciler) forgetHold(key types.NamespacedName) {
	r.mu.Lock()
	delete(r.held, key)
	r.mu.Unlock()
}

// turnedAway returns the Deployment's template's version when it is a release the Rollout turned
// away and no force annotation overrides that ("" otherwise), with the stable version's ReplicaSet.
func (r *Reconciler) turnedAway(ctx context.Context, ro *v1alpha1.Rollout, dep *appsv1.Deployment) (string, *version, error) {
	if ro.Annotations[HandoverAnnotation] == "force" || dep.DeletionTimestamp != nil {
		return "", nil, nil
	}
	st, ok, err := stateOf(ro)
	if err != nil || !ok || st.InFlight() || st.SpecRelease == "" || st.SpecRelease == st.Stable {
		return "", nil, nil // a broken status is not a reason to keep a deleted Rollout
	}
	vs, err := r.versions(ctx, ro)
	if err != nil {
		return "", nil, err
	}
	if versionOf(dep.Spec.Template, vs) != st.SpecRelease {
		return "", nil, nil
	}
	return st.SpecRelease, findVersion(vs, st.Stable), nil
}

// unselect removes Aviary's labels from a Service's selector.
func (r *Reconciler) unselect(ctx context.Context, ns, name string) error {
	if name == "" {
		return nil
	}
	var svc corev1.Service
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &svc); err != nil {
		return client.IgnoreNotFound(err)
	}
	if _, a := svc.Spec.Selector[RolloutLabel]; !a {
		if _, b := svc.Spec.Selector[HashLabel]; !b {
			return nil
		}
	}
	before := svc.DeepCopy()
	delete(svc.Spec.Selector, RolloutLabel)
	delete(svc.Spec.Selector, HashLabel)
	if err := r.Client.Patch(ctx, &svc, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("give Service %s its own selector back: %w", name, err)
	}
	return nil
}

func (r *Reconciler) event(ro *v1alpha1.Rollout, typ, reason, note string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(ro, nil, typ, reason, reason, "%s", note)
	}
}
