//go:build k8s

package replica_test

// The gateway fleet against a real kube-apiserver and etcd (envtest): the replicas are real
// `aviary serve --source kubernetes` processes built once for the run, the versions are real
// aviary-upstream processes in a network namespace the suite makes (fleettest.NewNetns says why
// and how), the controller is k8s.Run as `aviary controller` runs it. Two stand-ins play what
// envtest does not run: the kubelet (k8stest.StandInKubelet readies ReplicaSets) and the
// EndpointSlice controller (fleettest.StandInEndpoints writes each Service's slice from the
// ReplicaSets it selects). Run with scripts/test-k8s.sh.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"aviary.dev/aviary/internal/k8s"
	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/k8s/fleettest"
	"aviary.dev/aviary/internal/k8s/k8stest"
	"aviary.dev/aviary/internal/polltest"
	"aviary.dev/aviary/internal/rollout"
)

var (
	cfg                   *rest.Config
	cl                    client.Client
	aviaryBin, upstreamBn string
	netns                 *fleettest.Netns
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var stop func() error
	var err error
	cfg, stop, err = k8stest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The control plane and the namespace are removed even when a test panics.
	defer func() {
		if err := stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop the control plane:", err)
		}
	}()
	if cl, err = client.New(cfg, client.Options{Scheme: k8s.Scheme()}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	bins, err := os.MkdirTemp("", "aviary-fleet-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(bins)
	if aviaryBin, upstreamBn, err = fleettest.Build(bins); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if netns, err = fleettest.NewNetns(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := netns.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	return m.Run()
}

var worlds atomic.Int32

// fleet is one test's namespace: the app (a Deployment, two Services), its versions' pods (real
// upstreams, by image), the controller, and the gateway replicas.
type fleet struct {
	t          *testing.T
	ns, dir    string
	ctx        context.Context
	kubeconfig string

	mu       sync.Mutex
	pods     map[string][]*fleettest.Upstream // by image
	notReady map[string]bool                  // by upstream IP
}

func newFleet(t *testing.T) *fleet {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	ns := fmt.Sprintf("fleet-%d", worlds.Add(1))
	f := &fleet{t: t, ns: ns, dir: t.TempDir(), ctx: ctx, pods: map[string][]*fleettest.Upstream{}, notReady: map[string]bool{}}
	f.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	var err error
	if f.kubeconfig, err = k8stest.WriteKubeconfig(cfg, ns, f.dir); err != nil {
		t.Fatal(err)
	}
	go k8stest.StandInKubelet(ctx, cl, ns)
	go fleettest.StandInEndpoints(ctx, cl, ns, f.endpoints)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs are in %s", f.dir)
		}
	})
	return f
}

func (f *fleet) create(obj client.Object) {
	f.t.Helper()
	if err := cl.Create(f.ctx, obj); err != nil {
		f.t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// endpoints are the pods of a ReplicaSet: the upstreams of its image.
func (f *fleet) endpoints(rs *appsv1.ReplicaSet) []fleettest.Endpoint {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fleettest.Endpoint
	for _, u := range f.pods[rs.Spec.Template.Spec.Containers[0].Image] {
		out = append(out, fleettest.Endpoint{IP: u.IP, Port: u.Port, Ready: !f.notReady[u.IP]})
	}
	return out
}

// version starts n upstreams for image, each answering its name (name-1, name-2...).
func (f *fleet) version(image, name string, n int, extra ...string) []*fleettest.Upstream {
	f.t.Helper()
	var out []*fleettest.Upstream
	for i := range n {
		u, err := netns.Upstream(upstreamBn, f.dir, fmt.Sprintf("%s-%d", name, i+1), extra...)
		if err != nil {
			f.t.Fatal(err)
		}
		f.t.Cleanup(u.Stop)
		out = append(out, u)
	}
	f.mu.Lock()
	f.pods[image] = append(f.pods[image], out...)
	f.mu.Unlock()
	return out
}

func (f *fleet) setReady(u *fleettest.Upstream, ready bool) {
	f.mu.Lock()
	f.notReady[u.IP] = !ready
	f.mu.Unlock()
}

// app creates the Deployment shop (image, 2 replicas) and the Services shop-stable and shop-canary.
func (f *fleet) app(image string) {
	labels := map[string]string{"app": "shop"}
	f.create(&appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: f.ns},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "shop", Image: image}}}}},
	})
	for _, name := range []string{"shop-stable", "shop-canary"} {
		f.create(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns},
			Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}})
	}
}

// rollout creates the Rollout shop, served by the gateway fleet "edge" with these settings.
func (f *fleet) rollout(strategy v1alpha1.Strategy, gateway string) {
	f.create(&v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: f.ns},
		Spec: v1alpha1.RolloutSpec{WorkloadRef: v1alpha1.WorkloadRef{Name: "shop"}, StableService: "shop-stable",
			CanaryService: "shop-canary", Strategy: strategy,
			TrafficRouting: &v1alpha1.TrafficRouting{Aviary: &v1alpha1.AviaryRouting{Gateway: "edge"}},
			Gateway:        &apiextensionsv1.JSON{Raw: []byte(gateway)}}})
}

// controller runs the controller for the namespace until the test ends.
func (f *fleet) controller() {
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() {
		done <- k8s.Run(ctx, k8s.Options{Config: cfg, Namespace: f.ns, MetricsAddr: "0", ProbeAddr: "0",
			Interval: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	}()
	f.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.t.Errorf("controller: %v", err)
		}
	})
}

// replica starts a gateway replica of the fleet "edge" and waits until it is ready.
func (f *fleet) replica(name string, extra ...string) *fleettest.Replica {
	f.t.Helper()
	return f.replicaWith(name, f.kubeconfig, extra...)
}

func (f *fleet) replicaWith(name, kubeconfig string, extra ...string) *fleettest.Replica {
	f.t.Helper()
	r, err := fleettest.StartReplica(aviaryBin, kubeconfig, f.dir, name, f.ns, "edge", extra...)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(r.Stop)
	if !polltest.Until(30*time.Second, 20*time.Millisecond, r.Ready) {
		f.t.Fatalf("replica %s not ready within 30 s:\n%s", name, fleettest.LastLines(r.Output(), 30))
	}
	return r
}

func (f *fleet) get(name string, obj client.Object) {
	f.t.Helper()
	if err := cl.Get(f.ctx, types.NamespacedName{Namespace: f.ns, Name: name}, obj); err != nil {
		f.t.Fatalf("get %T %s: %v", obj, name, err)
	}
}

// waitFor polls the Rollout until ok says yes.
func (f *fleet) waitFor(what string, ok func(ro *v1alpha1.Rollout) bool) *v1alpha1.Rollout {
	f.t.Helper()
	ro := &v1alpha1.Rollout{}
	if !polltest.Until(60*time.Second, 50*time.Millisecond, func() bool {
		return cl.Get(f.ctx, types.NamespacedName{Namespace: f.ns, Name: "shop"}, ro) == nil && ok(ro)
	}) {
		f.t.Fatalf("waiting for %s: phase=%s stable=%s canary=%s weight=%d routing=%+v message=%q",
			what, ro.Status.Phase, ro.Status.StableVersion, ro.Status.CanaryVersion, ro.Status.CanaryWeight, ro.Status.Routing, ro.Status.Message)
	}
	return ro
}

func (f *fleet) setImage(image string) {
	f.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var d appsv1.Deployment
		f.get("shop", &d)
		d.Spec.Template.Spec.Containers[0].Image = image
		return cl.Update(f.ctx, &d)
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *fleet) command(kind rollout.CommandKind) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, 20*time.Second)
	defer cancel()
	if _, err := k8s.Command(ctx, cl, types.NamespacedName{Namespace: f.ns, Name: "shop"}, rollout.Command{Kind: kind, By: "test"}); err != nil {
		f.t.Fatalf("%s: %v", kind, err)
	}
}

// ask sends one request to a replica and returns the upstream that answered ("": it failed).
func ask(r *fleettest.Replica, header http.Header) (string, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+r.Gateway+"/", nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d from %s", resp.StatusCode, resp.Header.Get("X-Aviary-Upstream"))
	}
	return resp.Header.Get("X-Aviary-Upstream"), nil
}

// version is the version of an upstream's name: "v2-1" is v2.
func version(upstream string) string {
	v, _, _ := strings.Cut(upstream, "-")
	return v
}

// waitServes waits until every replica sends requests with header to version want.
func (f *fleet) waitServes(want string, header http.Header, rs ...*fleettest.Replica) {
	f.t.Helper()
	for _, r := range rs {
		var got string
		var err error
		if !polltest.Until(30*time.Second, 20*time.Millisecond, func() bool {
			got, err = ask(r, header)
			return err == nil && version(got) == want
		}) {
			f.t.Fatalf("replica %s sends %v to %q (err %v), want %s\n%s", r.Gateway, header, got, err, want, fleettest.LastLines(r.Output(), 20))
		}
	}
}

// source is a replica's /readyz answer.
type readyz struct {
	Status string `json:"status"`
	Source struct {
		Connected bool   `json:"connected"`
		Synced    bool   `json:"synced"`
		Note      string `json:"note"`
		Rollouts  []struct {
			Name, Service, Error string
			Served               bool
		} `json:"rollouts"`
	} `json:"source"`
}

func readyzOf(r *fleettest.Replica) (readyz, int, error) {
	var out readyz
	resp, err := http.Get("http://" + r.Admin + "/readyz")
	if err != nil {
		return out, 0, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&out)
	return out, resp.StatusCode, err
}

func weight(w int32) v1alpha1.CanaryStep { return v1alpha1.CanaryStep{SetWeight: &w} }

func pauseStep() v1alpha1.CanaryStep { return v1alpha1.CanaryStep{Pause: &v1alpha1.PauseStep{}} }

func headerRoute(name, value string) v1alpha1.CanaryStep {
	return v1alpha1.CanaryStep{SetHeaderRoute: &v1alpha1.HeaderRouteStep{Match: &v1alpha1.Match{
		Header: &v1alpha1.KeyMatch{Name: name, StringMatch: v1alpha1.StringMatch{Value: value}}}}}
}

func steps(s ...v1alpha1.CanaryStep) v1alpha1.Strategy {
	return v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{Steps: s}}
}

const stickyByUser = `{"match": {"pathPrefix": "/"}, "stickiness": {"header": "X-User"}}`

func TestTwoReplicasRouteACanaryAlike(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	f.version("shop:1", "v1", 2)
	f.version("shop:2", "v2", 1)
	f.app("shop:1")
	f.rollout(steps(weight(30), headerRoute("X-Beta", "1"), pauseStep()), stickyByUser)
	f.controller()
	f.waitFor("the first version to be stable", func(ro *v1alpha1.Rollout) bool { return ro.Status.Phase == "Healthy" })
	a, b := f.replica("a"), f.replica("b")
	f.waitServes("v1", nil, a, b)

	f.setImage("shop:2")
	ro := f.waitFor("the canary paused at 30% with its header route", func(ro *v1alpha1.Rollout) bool {
		r := ro.Status.Routing
		return ro.Status.Phase == "Paused" && r != nil && r.Weight == 30 && r.Route != nil && r.Canary != ""
	})
	t.Logf("status.routing: %+v", *ro.Status.Routing)
	beta := http.Header{"X-Beta": {"1"}}
	f.waitServes("v2", beta, a, b)

	// Requests without a sticky key: each replica splits 30/70 by its own sequence.
	for _, r := range []*fleettest.Replica{a, b} {
		canary := 0
		const n = 200
		for range n {
			got, err := ask(r, nil)
			if err != nil {
				t.Fatal(err)
			}
			if version(got) == "v2" {
				canary++
			}
		}
		if share := float64(canary) / n; share < 0.25 || share > 0.35 {
			t.Errorf("replica %s sent %.0f%% of %d anonymous requests to the canary, want 30%%", r.Gateway, 100*share, n)
		}
	}
	// A sticky user gets the same version whichever replica serves it, every time.
	users, onCanary := 100, 0
	for i := range users {
		h := http.Header{"X-User": {fmt.Sprintf("user-%d", i)}}
		first, err := ask(a, h)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []*fleettest.Replica{b, a, b} {
			got, err := ask(r, h)
			if err != nil {
				t.Fatal(err)
			}
			if version(got) != version(first) {
				t.Fatalf("user-%d got %s from one replica and %s from another", i, version(first), version(got))
			}
		}
		if version(first) == "v2" {
			onCanary++
		}
	}
	if onCanary < 15 || onCanary > 45 {
		t.Errorf("%d of %d sticky users are on the 30%% canary", onCanary, users)
	}
	t.Logf("sticky users on the canary: %d of %d, each the same on both replicas", onCanary, users)

	f.command(rollout.Promote)
	f.waitFor("the canary promoted", func(ro *v1alpha1.Rollout) bool {
		return ro.Status.Phase == "Healthy" && ro.Status.Routing != nil && ro.Status.Routing.Canary == "" && ro.Status.StableVersion == ro.Status.Routing.Stable &&
			ro.Status.StableVersion != ""
	})
	f.waitServes("v2", nil, a, b)
}

// servedEndpoints are the endpoints a replica's admin API says it serves for a version.
func servedEndpoints(t *testing.T, r *fleettest.Replica, service, version string) []string {
	t.Helper()
	resp, err := http.Get("http://" + r.Admin + "/api/v1/services/" + service)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var svc struct {
		Versions []struct {
			Name      string `json:"name"`
			Endpoints []struct {
				URL string `json:"url"`
			} `json:"endpoints"`
		} `json:"versions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&svc); err != nil {
		t.Fatalf("GET /api/v1/services/%s: %v", service, err)
	}
	var out []string
	for _, v := range svc.Versions {
		if v.Name == version {
			for _, e := range v.Endpoints {
				out = append(out, e.URL)
			}
		}
	}
	return out
}

func TestAnEndpointThatTurnsNotReadyLeavesTheSnapshot(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	pods := f.version("shop:1", "v1", 2)
	f.app("shop:1")
	f.rollout(steps(weight(50), pauseStep()), `{"match": {"pathPrefix": "/"}}`)
	f.controller()
	stable := f.waitFor("the first version to be stable", func(ro *v1alpha1.Rollout) bool { return ro.Status.Phase == "Healthy" }).Status.StableVersion
	r := f.replica("a")
	service := k8s.GatewayServiceName(f.ns, "shop")
	both := []string{"http://" + pods[0].IP + ":8080", "http://" + pods[1].IP + ":8080"}
	polltest.Wait(t, 30*time.Second, "both pods in the snapshot", func() bool {
		return slices.Equal(servedEndpoints(t, r, service, stable), both)
	})

	f.setReady(pods[1], false)
	polltest.Wait(t, 30*time.Second, "the not-ready pod out of the snapshot", func() bool {
		return slices.Equal(servedEndpoints(t, r, service, stable), both[:1])
	})
	for range 20 {
		if got, err := ask(r, nil); err != nil || got != "v1-1" {
			t.Fatalf("a request went to %q (err %v) with v1-2 not ready", got, err)
		}
	}
	f.setReady(pods[1], true)
	polltest.Wait(t, 30*time.Second, "the pod back once ready", func() bool {
		return slices.Equal(servedEndpoints(t, r, service, stable), both)
	})
}

// cuttable is a TCP proxy to the API server that the test can cut and mend: the replica's only
// way to its cluster.
type cuttable struct {
	t      *testing.T
	addr   string // host:port it listens on, the same after a mend
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
}

func newCuttable(t *testing.T, target string) *cuttable {
	c := &cuttable{t: t, addr: "127.0.0.1:0", target: target, conns: map[net.Conn]bool{}}
	c.mend()
	t.Cleanup(c.cut)
	return c
}

// mend listens again (on the same port) and forwards every connection.
func (c *cuttable) mend() {
	c.t.Helper()
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		c.t.Fatalf("listen again on %s: %v", c.addr, err)
	}
	c.mu.Lock()
	c.ln, c.addr = ln, ln.Addr().String()
	c.mu.Unlock()
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", c.target)
			if err != nil {
				in.Close()
				continue
			}
			c.mu.Lock()
			c.conns[in], c.conns[out] = true, true
			c.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
}

// cut closes the listener and every connection through it.
func (c *cuttable) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ln != nil {
		c.ln.Close()
		c.ln = nil
	}
	for conn := range c.conns {
		conn.Close()
	}
	clear(c.conns)
}

// metric reads a gauge without labels from a replica's /metrics.
func metric(t *testing.T, r *fleettest.Replica, name string) string {
	t.Helper()
	resp, err := http.Get("http://" + r.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

func TestAReplicaCutOffFromTheAPIServerKeepsServingAndSaysSo(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	f.version("shop:1", "v1", 1)
	f.version("shop:2", "v2", 1)
	f.app("shop:1")
	f.rollout(steps(headerRoute("X-Beta", "1"), pauseStep()), stickyByUser)
	f.controller()
	f.waitFor("the first version to be stable", func(ro *v1alpha1.Rollout) bool { return ro.Status.Phase == "Healthy" })
	u, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCuttable(t, u.Host)
	viaProxy := rest.CopyConfig(cfg)
	viaProxy.Host = "https://" + proxy.addr
	dir := t.TempDir()
	kubeconfig, err := k8stest.WriteKubeconfig(viaProxy, f.ns, dir)
	if err != nil {
		t.Fatal(err)
	}
	r := f.replicaWith("a", kubeconfig, "--probe-interval", "200ms")
	f.waitServes("v1", nil, r)
	if got := metric(t, r, "aviary_source_connected"); got != "1" {
		t.Errorf("aviary_source_connected is %q while connected", got)
	}

	proxy.cut()
	var rz readyz
	var code int
	polltest.Wait(t, 30*time.Second, "/readyz to say the replica is cut off", func() bool {
		rz, code, err = readyzOf(r)
		return err == nil && !rz.Source.Connected
	})
	if code != http.StatusOK || rz.Status != "ready" || !strings.Contains(rz.Source.Note, "cut off") {
		t.Errorf("/readyz while cut off: %d %+v", code, rz)
	}
	if got := metric(t, r, "aviary_source_connected"); got != "0" {
		t.Errorf("aviary_source_connected is %q while cut off", got)
	}
	t.Logf("/readyz while cut off: %d, %s", code, rz.Source.Note)
	// The controller moves on meanwhile; the replica serves its last snapshot: v1 to everyone.
	f.setImage("shop:2")
	f.waitFor("the canary's header route", func(ro *v1alpha1.Rollout) bool {
		return ro.Status.Routing != nil && ro.Status.Routing.Route != nil
	})
	beta := http.Header{"X-Beta": {"1"}}
	for range 20 {
		if got, err := ask(r, beta); err != nil || version(got) != "v1" {
			t.Fatalf("cut off, a request got %q (err %v), want the last snapshot's v1", got, err)
		}
	}

	proxy.mend()
	polltest.Wait(t, 60*time.Second, "the replica to reconnect", func() bool {
		rz, _, err = readyzOf(r)
		return err == nil && rz.Source.Connected
	})
	f.waitServes("v2", beta, r)
	if got := metric(t, r, "aviary_source_connected"); got != "1" {
		t.Errorf("aviary_source_connected is %q once back", got)
	}
}

// balancer is a client that spreads requests over the replicas and, as a load balancer does,
// retries a request that failed on one replica on another, and sends no more to a replica that
// failed (each worker for itself).
type balancer struct {
	replicas []*fleettest.Replica
	ok       atomic.Int64 // requests answered 200
	firstTry atomic.Int64 // attempts that failed and were tried again on another replica
	refused  atomic.Int64 // of which refused a connection (sent after the kill, never in flight)
	failed   atomic.Int64 // requests that failed on every replica
	versions sync.Map     // version -> *atomic.Int64
}

// run sends requests from workers until ctx ends.
func (b *balancer) run(ctx context.Context, workers int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			down := map[int]bool{}
			for i := w; ctx.Err() == nil; i++ {
				b.one(i, down)
			}
		}()
	}
	return &wg
}

func (b *balancer) one(i int, down map[int]bool) {
	for try := range len(b.replicas) {
		k := (i + try) % len(b.replicas)
		if down[k] {
			continue
		}
		got, err := ask(b.replicas[k], nil)
		if err == nil {
			b.ok.Add(1)
			n, _ := b.versions.LoadOrStore(version(got), new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
			return
		}
		down[k] = true
		b.firstTry.Add(1)
		if errors.Is(err, syscall.ECONNREFUSED) {
			b.refused.Add(1)
		}
	}
	b.failed.Add(1)
}

func TestAReplicaKilledMidRolloutLosesNoRequestBeyondItsOwnInFlight(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	f.version("shop:1", "v1", 2)
	f.version("shop:2", "v2", 1)
	f.app("shop:1")
	f.rollout(steps(weight(30), pauseStep(), weight(60), pauseStep()), `{"match": {"pathPrefix": "/"}}`)
	f.controller()
	f.waitFor("the first version to be stable", func(ro *v1alpha1.Rollout) bool { return ro.Status.Phase == "Healthy" })
	a, b := f.replica("a"), f.replica("b")
	f.waitServes("v1", nil, a, b)

	ctx, stop := context.WithCancel(f.ctx)
	defer stop()
	lb := &balancer{replicas: []*fleettest.Replica{a, b}}
	const workers = 4
	done := lb.run(ctx, workers)
	f.setImage("shop:2")
	f.waitFor("the canary paused at 30%", func(ro *v1alpha1.Rollout) bool {
		return ro.Status.Phase == "Paused" && ro.Status.Routing != nil && ro.Status.Routing.Weight == 30
	})
	before := lb.ok.Load()
	polltest.Wait(t, 30*time.Second, "traffic through both replicas at 30%", func() bool { return lb.ok.Load() > before+200 })

	a.Kill() // SIGKILL: no drain
	killedAt := lb.ok.Load()
	polltest.Wait(t, 30*time.Second, "traffic on the survivor", func() bool { return lb.ok.Load() > killedAt+200 })
	f.command(rollout.Promote)
	f.waitFor("the canary at 60%", func(ro *v1alpha1.Rollout) bool {
		return ro.Status.Routing != nil && ro.Status.Routing.Weight == 60
	})
	f.command(rollout.Promote)
	f.waitFor("the canary promoted", func(ro *v1alpha1.Rollout) bool {
		return ro.Status.Phase == "Healthy" && ro.Status.Routing != nil && ro.Status.Routing.Canary == ""
	})
	f.waitServes("v2", nil, b)
	stop()
	done.Wait()

	var v1, v2 int64
	if n, ok := lb.versions.Load("v1"); ok {
		v1 = n.(*atomic.Int64).Load()
	}
	if n, ok := lb.versions.Load("v2"); ok {
		v2 = n.(*atomic.Int64).Load()
	}
	t.Logf("%d requests answered (v1 %d, v2 %d); %d attempts failed on the killed replica and were retried on the other (%d of them in flight, %d refused a connection); %d failed on both",
		lb.ok.Load(), v1, v2, lb.firstTry.Load(), lb.firstTry.Load()-lb.refused.Load(), lb.refused.Load(), lb.failed.Load())
	if lb.failed.Load() != 0 {
		t.Errorf("%d requests failed on every replica", lb.failed.Load())
	}
	// Each worker has at most one request in flight, and after a failure sends no more to the
	// replica that failed it: at most one lost attempt per worker.
	if n := lb.firstTry.Load(); n > workers {
		t.Errorf("%d attempts failed, more than the %d that can be in flight on the killed replica", n, workers)
	}
	if v2 == 0 || v1 == 0 {
		t.Errorf("the rollout served v1 %d and v2 %d times", v1, v2)
	}
}
