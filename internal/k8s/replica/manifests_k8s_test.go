//go:build k8s

package replica_test

// deploy/gateway.yaml and deploy/examples/shop-aviary.yaml against the real API server: created
// with strict field validation, then a real replica runs as the gateway's ServiceAccount
// (impersonated; envtest's API server authorizes by RBAC) and serves a Rollout, so a permission
// missing from gateway.yaml fails here; and the ServiceAccount may do nothing else of note.

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"aviary.dev/aviary/internal/k8s"
	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/k8s/k8stest"
)

var deployDir = filepath.Join("..", "..", "..", "deploy")

func createAll(f *fleet, path string, objs []*unstructured.Unstructured) {
	f.t.Helper()
	for _, u := range objs {
		if err := cl.Create(f.ctx, u, client.FieldValidation(metav1.FieldValidationStrict)); err != nil {
			f.t.Fatalf("%s: create %s %s: %v", path, u.GetKind(), u.GetName(), err)
		}
	}
}

// impersonating writes a kubeconfig that acts as user.
func impersonating(t *testing.T, user, ns string) string {
	c := clientcmdapi.NewConfig()
	c.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	c.AuthInfos["as"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken,
		Impersonate: user}
	c.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "as", Namespace: ns}
	c.CurrentContext = "envtest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*c, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTheGatewayManifestsInstallAndAReplicaRunsOnItsRBAC(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	path := filepath.Join(deployDir, "gateway.yaml")
	objs := k8stest.ReadManifests(t, path)
	if err := cl.Create(f.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "aviary-system"}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	createAll(f, path, objs)

	deps := k8stest.Find(objs, "Deployment")
	if len(deps) != 1 {
		t.Fatalf("gateway.yaml has %d Deployments, want 1", len(deps))
	}
	var dep appsv1.Deployment
	k8stest.Typed(t, deps[0], &dep)
	c := dep.Spec.Template.Spec.Containers[0]
	if n := ptr.Deref(dep.Spec.Replicas, 1); n < 2 {
		t.Errorf("the gateway runs %d replicas, want at least 2", n)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe == nil || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("the gateway's container lacks probes or limits: %+v", c)
	}
	if strings.Join(c.Args, " ") != "serve --source=kubernetes --gateway=aviary --config=/etc/aviary/gateway.yaml --log-format=json" {
		t.Errorf("the gateway's args: %v", c.Args)
	}
	svcs := k8stest.Find(objs, "Service")
	if len(svcs) != 1 {
		t.Fatalf("gateway.yaml has %d Services, want 1", len(svcs))
	}
	var svc corev1.Service
	k8stest.Typed(t, svcs[0], &svc)
	var ports []string
	for _, p := range svc.Spec.Ports {
		ports = append(ports, p.Name+"->"+p.TargetPort.String())
	}
	if strings.Join(ports, ",") != "http->http,admin->admin" {
		t.Errorf("the gateway's Service ports: %v", ports)
	}
	pdbs := k8stest.Find(objs, "PodDisruptionBudget")
	if len(pdbs) != 1 {
		t.Fatalf("gateway.yaml has %d PodDisruptionBudgets, want 1", len(pdbs))
	}
	var pdb policyv1.PodDisruptionBudget
	k8stest.Typed(t, pdbs[0], &pdb)
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("the PodDisruptionBudget allows %v unavailable, want 1", pdb.Spec.MaxUnavailable)
	}
	user := fmt.Sprintf("system:serviceaccount:%s:%s", dep.Namespace, dep.Spec.Template.Spec.ServiceAccountName)

	// Least privilege: reads of Rollouts and EndpointSlices, nothing else.
	imp := rest.CopyConfig(cfg)
	imp.Impersonate = rest.ImpersonationConfig{UserName: user}
	icl, err := client.New(imp, client.Options{Scheme: k8s.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ra      authorizationv1.ResourceAttributes
		allowed bool
	}{
		{authorizationv1.ResourceAttributes{Verb: "watch", Group: "aviary.dev", Resource: "rollouts"}, true},
		{authorizationv1.ResourceAttributes{Verb: "list", Group: "discovery.k8s.io", Resource: "endpointslices"}, true},
		{authorizationv1.ResourceAttributes{Verb: "list", Resource: "secrets"}, false},
		{authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: "aviary-system"}, false},
		{authorizationv1.ResourceAttributes{Verb: "list", Resource: "services"}, false},
		{authorizationv1.ResourceAttributes{Verb: "list", Resource: "pods"}, false},
		{authorizationv1.ResourceAttributes{Verb: "patch", Group: "aviary.dev", Resource: "rollouts", Namespace: f.ns}, false},
		{authorizationv1.ResourceAttributes{Verb: "update", Group: "aviary.dev", Resource: "rollouts", Subresource: "status", Namespace: f.ns}, false},
		{authorizationv1.ResourceAttributes{Verb: "update", Group: "discovery.k8s.io", Resource: "endpointslices", Namespace: f.ns}, false},
		{authorizationv1.ResourceAttributes{Verb: "create", Group: "events.k8s.io", Resource: "events", Namespace: f.ns}, false},
		{authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "serviceaccounts"}, false},
	} {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &c.ra}}
		if err := icl.Create(f.ctx, review); err != nil {
			t.Fatalf("access review: %v", err)
		}
		if review.Status.Allowed != c.allowed {
			t.Errorf("%s may %s %s.%s/%s in %q: %v, want %v", user, c.ra.Verb, c.ra.Resource, c.ra.Group, c.ra.Subresource, c.ra.Namespace, review.Status.Allowed, c.allowed)
		}
	}

	// A real replica as that ServiceAccount serves a Rollout.
	f.version("shop:1", "v1", 1)
	f.app("shop:1")
	f.rollout(steps(weight(50), pauseStep()), `{"match": {"pathPrefix": "/"}}`)
	f.controller()
	f.waitFor("the first version to be stable", func(ro *v1alpha1.Rollout) bool { return ro.Status.Phase == "Healthy" })
	r := f.replicaWith("as-sa", impersonating(t, user, f.ns))
	f.waitServes("v1", nil, r)
}

func TestTheFleetExampleIsValid(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	path := filepath.Join(deployDir, "examples", "shop-aviary.yaml")
	objs := k8stest.ReadManifests(t, path)
	for _, u := range objs {
		u.SetNamespace(f.ns)
	}
	createAll(f, path, objs)
	ros := k8stest.Find(objs, "Rollout")
	if len(ros) != 1 {
		t.Fatalf("the example has %d Rollouts", len(ros))
	}
	var ro v1alpha1.Rollout
	k8stest.Typed(t, ros[0], &ro)
	ro.Namespace = f.ns
	ro.Status.Routing = &v1alpha1.RoutingStatus{Stable: "aaa", Canary: "bbb", Weight: 10}
	svc, err := k8s.GatewayService(&ro, map[string][]k8s.Endpoint{"shop-stable": {{URL: "http://10.0.0.1:8080"}}, "shop-canary": {{URL: "http://10.0.0.2:8080"}}})
	if err != nil {
		t.Fatalf("a replica refuses the example Rollout: %v", err)
	}
	if svc.Stickiness == nil || len(svc.Match.Hosts) != 1 {
		t.Errorf("the example's gateway settings: %+v", svc)
	}

	// The API server refuses both routers at once, with the field.
	both := ro.DeepCopy()
	both.ResourceVersion, both.Name, both.Status = "", "both", v1alpha1.RolloutStatus{}
	both.Spec.TrafficRouting.GatewayAPI = &v1alpha1.GatewayAPIRouting{HTTPRoute: "shop"}
	if err := cl.Create(f.ctx, both); err == nil || !strings.Contains(err.Error(), "spec.trafficRouting") || !strings.Contains(err.Error(), "exactly one") {
		t.Errorf("a Rollout with both routers: %v", err)
	}
}
