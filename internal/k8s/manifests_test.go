//go:build k8s

package k8s

// The install manifests in deploy/ against the real API server of envtest_test.go: every object
// is created with strict server-side field validation, then the controller runs as the
// ServiceAccount they define (impersonated; envtest's API server authorizes by RBAC) and walks a
// canary rollout to its end, so a permission missing from deploy/rbac.yaml fails here. The
// controller's own Deployment is created but does not run: there is no kubelet.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/k8s/k8stest"
	"aviary.dev/aviary/internal/rollout"
)

var deployDir = filepath.Join("..", "..", "deploy")

// createAll creates objects as an administrator would apply them, with strict field validation
// (an unknown or duplicate field is an error, not a warning).
func createAll(w *world, path string, objs []*unstructured.Unstructured) {
	w.t.Helper()
	for _, u := range objs {
		err := cl.Create(w.ctx, u, client.FieldValidation(metav1.FieldValidationStrict))
		if apierrors.IsAlreadyExists(err) && u.GetKind() == "Namespace" {
			continue
		}
		if err != nil {
			w.t.Fatalf("%s: create %s %s: %v", path, u.GetKind(), u.GetName(), err)
		}
	}
}

// TestManifestsInstallAndTheControllerRunsOnItsRBAC: the kustomization names every manifest; the
// install and the example are valid to the API server; the controller, as its ServiceAccount,
// elects a leader and takes a canary through its steps to promotion (ReplicaSets created, scaled
// and deleted, Services and the HTTPRoute written, the Deployment scaled down, status and events
// written); and that ServiceAccount can do nothing else of note.
func TestManifestsInstallAndTheControllerRunsOnItsRBAC(t *testing.T) {
	t.Parallel()
	w := newWorld(t)

	// The kustomize base lists exactly the manifests there are.
	var kust struct {
		Resources []string `json:"resources"`
	}
	kb, err := os.ReadFile(filepath.Join(deployDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(kb), 4096).Decode(&kust); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	var files []string
	for _, pattern := range []string{"*.yaml", "crds/*.yaml"} {
		m, _ := filepath.Glob(filepath.Join(deployDir, pattern))
		for _, f := range m {
			if rel, _ := filepath.Rel(deployDir, f); rel != "kustomization.yaml" {
				files = append(files, filepath.ToSlash(rel))
			}
		}
	}
	if got, want := slices.Sorted(slices.Values(kust.Resources)), slices.Sorted(slices.Values(files)); !slices.Equal(got, want) {
		t.Errorf("kustomization.yaml lists %v; deploy/ holds %v", got, want)
	}

	// The install, as `kubectl apply -k deploy/` makes it (the CRD is installed by TestMain).
	rbacPath, controllerPath := filepath.Join(deployDir, "rbac.yaml"), filepath.Join(deployDir, "controller.yaml")
	rbac, ctrlObjs := k8stest.ReadManifests(t, rbacPath), k8stest.ReadManifests(t, controllerPath)
	createAll(w, rbacPath, rbac)
	createAll(w, controllerPath, ctrlObjs)

	// Who the controller runs as, and where it elects its leader, read from the manifests.
	deps := k8stest.Find(ctrlObjs, "Deployment")
	if len(deps) != 1 {
		t.Fatalf("controller.yaml has %d Deployments, want 1", len(deps))
	}
	var dep appsv1.Deployment
	k8stest.Typed(t, deps[0], &dep)
	if n := ptr.Deref(dep.Spec.Replicas, 1); n < 2 {
		t.Errorf("the controller runs %d replicas; with leader election 2 keep one ready to take over", n)
	}
	sa, ns := dep.Spec.Template.Spec.ServiceAccountName, dep.Namespace
	if sa == "" {
		t.Fatal("the controller's Deployment names no serviceAccountName")
	}
	args := dep.Spec.Template.Spec.Containers[0].Args
	if len(args) == 0 || args[0] != "controller" {
		t.Errorf("the controller's args %v do not start with the controller subcommand", args)
	}
	leaseNS := ""
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--leader-election-namespace="); ok {
			leaseNS = v
		}
	}
	if leaseNS == "" {
		t.Fatalf("the controller's args %v set no --leader-election-namespace", args)
	}
	if i := slices.IndexFunc(k8stest.Find(rbac, "ServiceAccount"), func(u *unstructured.Unstructured) bool {
		return u.GetName() == sa && u.GetNamespace() == ns
	}); i < 0 {
		t.Fatalf("rbac.yaml has no ServiceAccount %s/%s, which the controller's Deployment runs as", ns, sa)
	}
	user := fmt.Sprintf("system:serviceaccount:%s:%s", ns, sa)

	// The example: valid to the API server, and to the controller's own validation.
	examplePath := filepath.Join(deployDir, "examples", "shop.yaml")
	example := k8stest.ReadManifests(t, examplePath)
	exampleNS := "aviary-example-shop"
	w.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: exampleNS}})
	for _, u := range example {
		u.SetNamespace(exampleNS)
	}
	createAll(w, examplePath, example)
	for _, kind := range []string{"Deployment", "Service", "HTTPRoute", "Rollout"} {
		if len(k8stest.Find(example, kind)) == 0 {
			t.Errorf("the example has no %s", kind)
		}
	}
	for _, u := range k8stest.Find(example, "Rollout") {
		var ro v1alpha1.Rollout
		k8stest.Typed(t, u, &ro)
		if _, err := specOf(&ro, []string{"stable", "canary"}, "canary"); err != nil {
			t.Errorf("the controller refuses the example Rollout %s: %v", ro.Name, err)
		}
		if err := checkRouting(&ro); err != nil {
			t.Errorf("the controller refuses the example Rollout %s: %v", ro.Name, err)
		}
		if c := ro.Spec.Strategy.Canary; c == nil || !slices.ContainsFunc(c.Steps, func(s v1alpha1.CanaryStep) bool { return s.Analysis != nil }) {
			t.Errorf("the example Rollout %s has no canary analysis step", ro.Name)
		}
	}

	// From here on the controller's calls are made as its ServiceAccount.
	imp := rest.CopyConfig(cfg)
	imp.Impersonate = rest.ImpersonationConfig{UserName: user}
	icl, err := client.New(imp, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}

	// Least privilege: no Secrets, and nothing the controller does not do.
	if err := icl.List(w.ctx, &corev1.SecretList{}); !apierrors.IsForbidden(err) {
		t.Errorf("%s lists Secrets in all namespaces (err %v); want Forbidden", user, err)
	}
	if err := icl.List(w.ctx, &corev1.SecretList{}, client.InNamespace(ns)); !apierrors.IsForbidden(err) {
		t.Errorf("%s lists Secrets in its own namespace %s (err %v); want Forbidden", user, ns, err)
	}
	denied := []authorizationv1.ResourceAttributes{
		{Verb: "get", Resource: "secrets", Namespace: w.ns},
		{Verb: "watch", Resource: "secrets"},
		{Verb: "list", Resource: "configmaps"},
		{Verb: "create", Resource: "pods", Namespace: w.ns},
		{Verb: "delete", Resource: "pods", Namespace: w.ns},
		{Verb: "update", Resource: "services", Namespace: w.ns},
		{Verb: "delete", Resource: "services", Namespace: w.ns},
		{Verb: "create", Group: "apps", Resource: "deployments", Namespace: w.ns},
		{Verb: "update", Group: "apps", Resource: "deployments", Namespace: w.ns},
		{Verb: "delete", Group: "apps", Resource: "deployments", Namespace: w.ns},
		{Verb: "create", Group: "aviary.dev", Resource: "rollouts", Namespace: w.ns},
		{Verb: "delete", Group: "aviary.dev", Resource: "rollouts", Namespace: w.ns},
		{Verb: "create", Group: "gateway.networking.k8s.io", Resource: "httproutes", Namespace: w.ns},
		{Verb: "delete", Group: "gateway.networking.k8s.io", Resource: "httproutes", Namespace: w.ns},
		{Verb: "update", Group: "gateway.networking.k8s.io", Resource: "gateways", Namespace: w.ns},
		{Verb: "create", Group: "coordination.k8s.io", Resource: "leases", Namespace: w.ns},
		{Verb: "delete", Group: "coordination.k8s.io", Resource: "leases", Namespace: leaseNS},
		{Verb: "create", Resource: "events", Namespace: w.ns},
		{Verb: "delete", Group: "events.k8s.io", Resource: "events", Namespace: w.ns},
		{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "rolebindings", Namespace: w.ns},
		{Verb: "escalate", Group: "rbac.authorization.k8s.io", Resource: "clusterroles"},
		{Verb: "impersonate", Resource: "serviceaccounts"},
	}
	for _, ra := range denied {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &ra}}
		if err := icl.Create(w.ctx, review); err != nil {
			t.Fatalf("access review: %v", err)
		}
		if review.Status.Allowed {
			t.Errorf("%s may %s %s.%s in %q: more than the controller needs", user, ra.Verb, ra.Resource, ra.Group, ra.Namespace)
		}
	}

	// The controller as its ServiceAccount, with leader election, through a whole canary: the
	// Deployment is scaled down once the Rollout serves (scaleDown: onsuccess), and the old stable
	// ReplicaSet is deleted after its scale-down delay (revisionHistoryLimit: 0).
	w.app("shop:1")
	strategy := canarySteps(weight(20), pause(0), weight(50), pause(500*time.Millisecond))
	strategy.ScaleDownDelay = &metav1.Duration{Duration: 300 * time.Millisecond}
	w.rollout(strategy, nil)
	ro := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "shop"}}
	patch := []byte(`{"spec":{"replicas":4,"revisionHistoryLimit":0,"workloadRef":{"name":"shop","scaleDown":"onsuccess"}}}`)
	if err := cl.Patch(w.ctx, ro, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatal(err)
	}
	leaseID := "aviary-controller-" + w.ns
	elected := make(chan struct{})
	var electedOnce sync.Once
	ctx, cancel := context.WithCancel(w.ctx)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Config: imp, Namespace: w.ns, MetricsAddr: "0", ProbeAddr: "0",
			Interval: 100 * time.Millisecond, LeaderElection: true, LeaderElectionNamespace: leaseNS,
			LeaderElectionID: leaseID, Logger: testLogger(t), Elected: func() { electedOnce.Do(func() { close(elected) }) }})
	}()
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("controller: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-elected:
	case err := <-done:
		t.Fatalf("the controller stopped before it was elected: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatalf("the controller was not elected leader through Lease %s/%s in 30s (can %s get, create and update it?)", leaseNS, leaseID, user)
	}

	first := w.waitFor("the first version to be stable", healthy).Status.StableVersion
	w.waitWeights(100, 0)
	waitUntil(t, "the Deployment to be scaled to 0 (workloadRef.scaleDown: onsuccess)", func() bool {
		var d appsv1.Deployment
		w.get("shop", &d)
		return ptr.Deref(d.Spec.Replicas, 1) == 0
	})
	if n := w.replicas(first); n != 4 {
		t.Fatalf("the stable has %d replicas after the Deployment was scaled down, want the Rollout's 4", n)
	}

	w.setImage("shop:2")
	second := w.waitFor("the canary paused at 20%", func(ro *v1alpha1.Rollout) bool {
		return ro.Status.Phase == "Paused" && ro.Status.CanaryWeight == 20
	}).Status.CanaryVersion
	w.waitWeights(80, 20)
	w.waitSelector("shop-canary", second)
	w.command(rollout.Promote)
	w.waitFor("the rollout to complete", func(ro *v1alpha1.Rollout) bool {
		return healthy(ro) && ro.Status.StableVersion == second
	})
	w.waitFor("the controller to clear the command it took", func(ro *v1alpha1.Rollout) bool {
		_, ok := ro.Annotations[v1alpha1.CommandAnnotation]
		return !ok
	})
	w.waitWeights(100, 0)
	w.waitSelector("shop-stable", second)
	waitUntil(t, "the old stable ReplicaSet to be deleted (revisionHistoryLimit: 0)", func() bool {
		var rs appsv1.ReplicaSet
		err := cl.Get(w.ctx, types.NamespacedName{Namespace: w.ns, Name: "shop-" + first}, &rs)
		return apierrors.IsNotFound(err)
	})
	if n := w.replicas(second); n != 4 {
		t.Errorf("the new stable has %d replicas, want 4", n)
	}

	// Events: the rollout's (events.k8s.io) in its namespace, leader election's (core) on the Lease.
	w.expectEvents("RolloutStarted", "StepStarted", "Promoted", "Completed")
	var lease coordinationv1.Lease
	if err := cl.Get(w.ctx, types.NamespacedName{Namespace: leaseNS, Name: leaseID}, &lease); err != nil {
		t.Fatalf("the Lease: %v", err)
	}
	if ptr.Deref(lease.Spec.HolderIdentity, "") == "" {
		t.Errorf("the Lease %s/%s has no holder", leaseNS, leaseID)
	}
	waitUntil(t, "the leader election Event on the Lease", func() bool {
		var list corev1.EventList
		if err := cl.List(w.ctx, &list, client.InNamespace(leaseNS)); err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(list.Items, func(e corev1.Event) bool {
			return e.Reason == "LeaderElection" && e.InvolvedObject.Kind == "Lease" && e.InvolvedObject.Name == leaseID
		})
	})

	// A stopping leader releases its Lease (an update).
	stop()
	if err := cl.Get(w.ctx, types.NamespacedName{Namespace: leaseNS, Name: leaseID}, &lease); err != nil {
		t.Fatal(err)
	}
	if h := ptr.Deref(lease.Spec.HolderIdentity, ""); h != "" {
		t.Errorf("the stopped leader kept its Lease (holder %q)", h)
	}
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	if !eventually(20*time.Second, ok) {
		t.Fatalf("waiting for %s: not in 20s", what)
	}
}
