//go:build k8s

package k8s

// The Kubernetes-mode suite: a real kube-apiserver and etcd (built by scripts/k8s-assets.sh,
// started by envtest), the real Rollout CRD from deploy/crds and the Gateway API CRDs from
// sigs.k8s.io/gateway-api, and the controller as `aviary controller` runs it. Run it with
// scripts/test-k8s.sh.
//
// No kubelet and no kube-controller-manager run here, so pods never start: k8stest.StandInKubelet
// plays their part by setting each ReplicaSet's status (replicas, ready, available) to its spec.
// That is the only thing faked; everything else is the API server's own behaviour.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/k8s/k8stest"
	"aviary.dev/aviary/internal/polltest"
	"aviary.dev/aviary/internal/rollout"
)

var (
	cfg *rest.Config
	cl  client.Client
)

func TestMain(m *testing.M) {
	var stop func() error
	var err error
	cfg, stop, err = k8stest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		// The control plane is stopped even when a test panics.
		defer func() {
			if err := stop(); err != nil {
				fmt.Fprintln(os.Stderr, "stop the control plane:", err)
			}
		}()
		cl, err = client.New(cfg, client.Options{Scheme: Scheme()})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

var worlds atomic.Int32

// world is one test's namespace with a Deployment, two Services and an HTTPRoute.
type world struct {
	t   *testing.T
	ns  string
	ctx context.Context
}

func newWorld(t *testing.T) *world { return newWorldWith(t, nil) }

// newWorldWith is newWorld whose stand-in kubelet readies the pods ready says.
func newWorldWith(t *testing.T, ready func(rs *appsv1.ReplicaSet) int32) *world {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	ns := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(ns) > 45 {
		ns = ns[:45]
	}
	ns = fmt.Sprintf("%s-%d", strings.Trim(ns, "-"), worlds.Add(1)) // -count=N runs a test again
	w := &world{t: t, ns: ns, ctx: ctx}
	w.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	go k8stest.StandInKubeletWith(ctx, cl, ns, ready)
	return w
}

func (w *world) create(obj client.Object) {
	w.t.Helper()
	if err := cl.Create(w.ctx, obj); err != nil {
		w.t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// app creates the user's side: a Deployment shop running image, Services shop-stable and
// shop-canary, and an HTTPRoute shop that sends everything to shop-stable.
func (w *world) app(image string) {
	labels := map[string]string{"app": "shop"}
	w.create(&appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: w.ns},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](4), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "shop", Image: image}}}}},
	})
	for _, name := range []string{"shop-stable", "shop-canary"} {
		w.create(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: w.ns},
			Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80}}}})
	}
	w.create(&gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: w.ns},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "gateway"}}},
			Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
				BackendObjectReference: gatewayv1.BackendObjectReference{Name: "shop-stable", Port: ptr.To[gatewayv1.PortNumber](80)}}}}}},
		}})
}

// rollout creates the Rollout shop with a strategy, routed through the HTTPRoute.
func (w *world) rollout(strategy v1alpha1.Strategy, analysis *v1alpha1.Analysis) {
	w.create(&v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: w.ns},
		Spec: v1alpha1.RolloutSpec{WorkloadRef: v1alpha1.WorkloadRef{Name: "shop"}, StableService: "shop-stable",
			CanaryService: "shop-canary", Strategy: strategy, Analysis: analysis,
			TrafficRouting: &v1alpha1.TrafficRouting{GatewayAPI: &v1alpha1.GatewayAPIRouting{HTTPRoute: "shop"}}}})
}

// controller runs the controller for the test's namespace until the returned stop is called (or
// the test ends).
func (w *world) controller() (stop func()) { return w.controllerWith(nil) }

// controllerWith runs a controller whose options mod changes.
func (w *world) controllerWith(mod func(*Options)) (stop func()) {
	ctx, cancel := context.WithCancel(w.ctx)
	done := make(chan error, 1)
	o := Options{Config: cfg, Namespace: w.ns, MetricsAddr: "0", ProbeAddr: "0",
		Interval: 100 * time.Millisecond, Logger: testLogger(w.t)}
	if mod != nil {
		mod(&o)
	}
	go func() { done <- Run(ctx, o) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				w.t.Errorf("controller: %v", err)
			}
		})
	}
	w.t.Cleanup(stop)
	return stop
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// eventually polls ok every 20 ms until it holds or timeout passes, and reports whether it held.
func eventually(timeout time.Duration, ok func() bool) bool {
	return polltest.Until(timeout, 20*time.Millisecond, ok)
}

// lookedAt returns once the controller has reconciled the Rollout after this call: it changes a
// spec field that changes nothing else (one more old ReplicaSet kept) and waits for the status to
// observe that generation.
func (w *world) lookedAt() {
	w.t.Helper()
	var gen int64
	w.updateRollout(func(ro *v1alpha1.Rollout) {
		ro.Spec.RevisionHistoryLimit = ptr.To(ptr.Deref(ro.Spec.RevisionHistoryLimit, 10) + 1)
	})
	var ro v1alpha1.Rollout
	w.get("shop", &ro)
	gen = ro.Generation
	w.waitFor(fmt.Sprintf("a reconcile of generation %d", gen), func(ro *v1alpha1.Rollout) bool { return ro.Status.ObservedGeneration >= gen })
}

// versionWith is the version the Deployment's template would be with image: its hash.
func (w *world) versionWith(image string) string {
	w.t.Helper()
	var d appsv1.Deployment
	w.get("shop", &d)
	d.Spec.Template.Spec.Containers[0].Image = image
	return templateHash(d.Spec.Template)
}

// expectEvents checks that the Rollout's namespace has Kubernetes Events of these reasons.
func (w *world) expectEvents(reasons ...string) {
	w.t.Helper()
	got := w.eventReasons()
	for _, want := range reasons {
		if !slices.Contains(got, want) {
			w.t.Errorf("no Kubernetes Event %s among %v", want, got)
		}
	}
}

// setImage changes the Deployment's template, as `kubectl set image` or a GitOps sync would.
// The controller may write the Deployment meanwhile (its replicas), so a conflict is tried again.
func (w *world) setImage(image string) {
	w.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var d appsv1.Deployment
		w.get("shop", &d)
		d.Spec.Template.Spec.Containers[0].Image = image
		return cl.Update(w.ctx, &d)
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

// updateRollout changes the Rollout as read now; the controller writes it too (its status), so a
// conflict is tried again.
func (w *world) updateRollout(mod func(ro *v1alpha1.Rollout)) {
	w.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var ro v1alpha1.Rollout
		w.get("shop", &ro)
		mod(&ro)
		return cl.Update(w.ctx, &ro)
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) get(name string, obj client.Object) {
	w.t.Helper()
	if err := cl.Get(w.ctx, types.NamespacedName{Namespace: w.ns, Name: name}, obj); err != nil {
		w.t.Fatalf("get %T %s: %v", obj, name, err)
	}
}

// waitFor polls the Rollout until ok says yes, and fails the test with what it last saw.
func (w *world) waitFor(what string, ok func(ro *v1alpha1.Rollout) bool) *v1alpha1.Rollout {
	w.t.Helper()
	ro := &v1alpha1.Rollout{}
	var err error
	if !polltest.Until(60*time.Second, 50*time.Millisecond, func() bool {
		err = cl.Get(w.ctx, types.NamespacedName{Namespace: w.ns, Name: "shop"}, ro)
		return err == nil && ok(ro)
	}) {
		w.t.Fatalf("waiting for %s: rollout is phase=%s stable=%s canary=%s weight=%d step=%d message=%q conditions=%+v (err %v)",
			what, ro.Status.Phase, ro.Status.StableVersion, ro.Status.CanaryVersion, ro.Status.CanaryWeight,
			ro.Status.CurrentStepIndex, ro.Status.Message, ro.Status.Conditions, err)
	}
	return ro
}

// weights reads the HTTPRoute's stable and canary weights in its first rule to the stable Service.
func (w *world) weights() (stable, canary int32) {
	w.t.Helper()
	var hr gatewayv1.HTTPRoute
	w.get("shop", &hr)
	for _, rule := range hr.Spec.Rules {
		if rule.Name != nil {
			continue
		}
		for _, b := range rule.BackendRefs {
			switch b.Name {
			case "shop-stable":
				stable = ptr.Deref(b.Weight, 1)
			case "shop-canary":
				canary = ptr.Deref(b.Weight, 1)
			}
		}
		return stable, canary
	}
	w.t.Fatal("the HTTPRoute lost its rule")
	return 0, 0
}

func (w *world) waitWeights(stable, canary int32) {
	w.t.Helper()
	var s, c int32
	if !polltest.Until(30*time.Second, 50*time.Millisecond, func() bool {
		s, c = w.weights()
		return s == stable && c == canary
	}) {
		w.t.Fatalf("HTTPRoute weights are stable %d, canary %d; want %d, %d", s, c, stable, canary)
	}
}

func (w *world) selector(service string) string {
	var svc corev1.Service
	w.get(service, &svc)
	return svc.Spec.Selector[HashLabel]
}

// waitSelector waits until a Service selects a version's pods: the controller points a Service
// at a version once it has an available pod, after the status says where traffic goes.
func (w *world) waitSelector(service, hash string) {
	w.t.Helper()
	if !polltest.Until(30*time.Second, 20*time.Millisecond, func() bool { return w.selector(service) == hash }) {
		w.t.Fatalf("%s selects %q, want %q", service, w.selector(service), hash)
	}
}

func (w *world) command(kind rollout.CommandKind) *v1alpha1.Rollout {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
	defer cancel()
	ro, err := Command(ctx, cl, types.NamespacedName{Namespace: w.ns, Name: "shop"}, rollout.Command{Kind: kind, By: "test"})
	if err != nil {
		w.t.Fatalf("%s: %v", kind, err)
	}
	return ro
}

func (w *world) replicas(hash string) int32 {
	var rs appsv1.ReplicaSet
	w.get("shop-"+hash, &rs)
	return ptr.Deref(rs.Spec.Replicas, 0)
}

func (w *world) eventReasons() []string {
	var list eventsv1.EventList
	if err := cl.List(w.ctx, &list, client.InNamespace(w.ns)); err != nil {
		w.t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Reason)
	}
	return out
}

func canarySteps(steps ...v1alpha1.CanaryStep) v1alpha1.Strategy {
	return v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{Steps: steps}}
}

func weight(w int32) v1alpha1.CanaryStep { return v1alpha1.CanaryStep{SetWeight: &w} }

func pause(d time.Duration) v1alpha1.CanaryStep {
	p := &v1alpha1.PauseStep{}
	if d > 0 {
		p.Duration = &metav1.Duration{Duration: d}
	}
	return v1alpha1.CanaryStep{Pause: p}
}

func healthy(ro *v1alpha1.Rollout) bool { return ro.Status.Phase == "Healthy" }

func TestACanaryWalksItsStepsOnTheHTTPRouteAndIsPromoted(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.app("shop:1")
	w.rollout(canarySteps(weight(20), pause(0), weight(50), pause(500*time.Millisecond)), nil)
	w.controller()
	first := w.waitFor("the first version to be stable", healthy).Status.StableVersion
	w.waitWeights(100, 0)
	w.waitSelector("shop-stable", first)
	// At rest, reconciles write nothing: the route the API server stored is the route planned.
	var hr gatewayv1.HTTPRoute
	w.get("shop", &hr)
	time.Sleep(time.Second) // ten looks
	var again gatewayv1.HTTPRoute
	w.get("shop", &again)
	if again.ResourceVersion != hr.ResourceVersion {
		t.Errorf("the HTTPRoute was written again at rest (resourceVersion %s then %s)", hr.ResourceVersion, again.ResourceVersion)
	}
	// At rest means with the stable's pods available, which the status says once the stand-in
	// kubelet has caught up.
	w.waitFor("the stable's pods to be available", func(ro *v1alpha1.Rollout) bool {
		return meta.IsStatusConditionTrue(ro.Status.Conditions, "Available")
	})
	var ro1, ro2 v1alpha1.Rollout
	w.get("shop", &ro1)
	time.Sleep(500 * time.Millisecond) // five looks
	w.get("shop", &ro2)
	if ro1.ResourceVersion != ro2.ResourceVersion {
		t.Errorf("the Rollout's status was written again at rest (resourceVersion %s then %s)", ro1.ResourceVersion, ro2.ResourceVersion)
	}

	w.setImage("shop:2")
	ro := w.waitFor("the canary paused at 20%", func(ro *v1alpha1.Rollout) bool {
		return ro.Status.Phase == "Paused" && ro.Status.CanaryWeight == 20
	})
	second := ro.Status.CanaryVersion
	if second == "" || second == first || ro.Status.ReleaseVersion != second || ro.Status.CanaryRevision != 2 {
		t.Fatalf("canary %q (revision %d), release %q, stable %q", second, ro.Status.CanaryRevision, ro.Status.ReleaseVersion, first)
	}
	w.waitWeights(80, 20)
	w.waitSelector("shop-canary", second)
	if n := w.replicas(second); n != 1 { // ceil(4 × 20%)
		t.Errorf("canary has %d replicas at 20%% of 4, want 1", n)
	}

	w.command(rollout.Promote)
	w.waitFor("the rollout to complete", func(ro *v1alpha1.Rollout) bool {
		return healthy(ro) && ro.Status.StableVersion == second
	})
	w.waitWeights(100, 0)
	w.waitSelector("shop-stable", second)
	if n := w.replicas(second); n != 4 {
		t.Errorf("the new stable has %d replicas, want 4", n)
	}
	w.expectEvents("RolloutStarted", "StepStarted", "Promoted", "Completed")
}

func TestAnAbortPutsTheWeightsBackOnStableAtOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.app("shop:1")
	w.rollout(canarySteps(weight(40), pause(0)), nil)
	w.controller()
	first := w.waitFor("the first version to be stable", healthy).Status.StableVersion
	w.setImage("shop:2")
	second := w.waitFor("the canary at 40%", func(ro *v1alpha1.Rollout) bool { return ro.Status.CanaryWeight == 40 }).Status.CanaryVersion
	w.waitWeights(60, 40)

	asked := time.Now()
	ro := w.command(rollout.Abort)
	if ro.Status.Phase != "Degraded" || ro.Status.CanaryWeight != 0 {
		t.Errorf("after abort: phase %s, weight %d", ro.Status.Phase, ro.Status.CanaryWeight)
	}
	w.waitWeights(100, 0)
	t.Logf("abort: the HTTPRoute sent everything to stable %s after the command was written (the CLI's path: annotation, reconcile, status, HTTPRoute, with 50 ms polls)",
		time.Since(asked).Round(time.Millisecond))
	w.waitSelector("shop-stable", first)
	eventually(10*time.Second, func() bool { return w.replicas(second) == 0 })
	if n := w.replicas(second); n != 0 {
		t.Errorf("the aborted canary keeps %d replicas", n)
	}

	// A fix pushed after the abort starts a rollout of its own.
	w.setImage("shop:3")
	third := w.waitFor("the fix at 40%", func(ro *v1alpha1.Rollout) bool {
		return ro.Status.CanaryWeight == 40 && ro.Status.CanaryVersion != second
	}).Status.CanaryVersion
	if third == first {
		t.Errorf("the fix is the stable %s", first)
	}
	w.waitWeights(60, 40)
}
