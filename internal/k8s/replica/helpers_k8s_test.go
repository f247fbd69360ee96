//go:build k8s

package replica_test

// The harness of the gateway fleet's suite (the scenarios are in fleet_k8s_test.go): a real
// kube-apiserver and etcd (envtest), the aviary and aviary-upstream binaries built once for the
// run, the network namespace of the upstreams, and a fleet per test — its namespace, app, versions,
// controller and replicas — with the clients that talk to them.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

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
	ctrllog.SetLogger(logr.Discard()) // the test's own clients; the replicas log to their files
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
func ask(r *fleettest.Replica, header http.Header) (string, error) { return askPath(r, "/", header) }

func askPath(r *fleettest.Replica, path string, header http.Header) (string, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+r.Gateway+path, nil)
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

func (f *fleet) updateRollout(mod func(ro *v1alpha1.Rollout)) {
	f.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var ro v1alpha1.Rollout
		f.get("shop", &ro)
		mod(&ro)
		return cl.Update(f.ctx, &ro)
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// rolloutState is a replica's aviary_source_rollouts{state} for state.
func rolloutState(t *testing.T, r *fleettest.Replica, state string) string {
	return metric(t, r, `aviary_source_rollouts{state="`+state+`"}`)
}
