// Package fleettest runs Aviary's gateway fleet for the Kubernetes-mode tests, with real
// processes: gateway replicas are `aviary serve --source kubernetes`, versions are
// `aviary-upstream` servers, and a stand-in plays the EndpointSlice controller (which does not run
// under envtest) by writing each Service's EndpointSlice from what it selects.
//
// The API server refuses loopback addresses in an EndpointSlice (ValidateEndpointIP in
// k8s.io/kubernetes pkg/apis/core/validation: "may not be in the loopback range"), so the
// upstreams listen in a network namespace the test makes (NewNetns): a veth pair joins it to the
// host's namespace, the host end is 10.A.B.1/24 and each upstream gets an address of its own,
// 10.A.B.2 and up, on port 8080, as pods would. Making it needs root and iproute2's ip.
package fleettest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"aviary.dev/aviary/internal/k8s"
	"aviary.dev/aviary/internal/polltest"
)

// Build builds the aviary and aviary-upstream binaries into dir (once per test run: the callers'
// TestMain), as the k8s suite builds (CGO_ENABLED=0, the caller's environment).
func Build(dir string) (aviary, upstream string, err error) {
	root, err := moduleRoot()
	if err != nil {
		return "", "", err
	}
	aviary, upstream = filepath.Join(dir, "aviary"), filepath.Join(dir, "aviary-upstream")
	for bin, pkg := range map[string]string{aviary: "./cmd/aviary", upstream: "./cmd/aviary-upstream"} {
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
		}
	}
	return aviary, upstream, nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	mod := strings.TrimSpace(string(out))
	if err != nil || mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("find the module root with `go env GOMOD`: %v %q", err, mod)
	}
	return filepath.Dir(mod), nil
}

// Netns is a network namespace for upstreams, reachable from the host's namespace at addresses
// an EndpointSlice may carry.
type Netns struct {
	Name   string
	veth   string // the host's end
	prefix string // "10.A.B."
	next   atomic.Int32
}

var netnsCount atomic.Int32

// NewNetns makes a network namespace joined to the host by a veth pair. The subnet comes from
// the process ID, so that suites running at once (one test binary per package) do not collide.
func NewNetns() (*Netns, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the fleet tests make a network namespace for their upstreams (the API server refuses loopback addresses in EndpointSlices): run them as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, errors.New("the fleet tests need iproute2's ip to make a network namespace: apt-get install iproute2")
	}
	n := int(netnsCount.Add(1))
	pid := os.Getpid()
	ns := &Netns{Name: fmt.Sprintf("aviary-fleet-%d-%d", pid, n), veth: fmt.Sprintf("avf%d%d", pid%100000, n),
		prefix: fmt.Sprintf("10.%d.%d.", 100+pid%100, (pid/100+n)%250)}
	ns.next.Store(1)
	peer := ns.veth + "p"
	steps := [][]string{
		{"netns", "add", ns.Name},
		{"link", "add", ns.veth, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", ns.Name},
		{"addr", "add", ns.prefix + "1/24", "dev", ns.veth},
		{"link", "set", ns.veth, "up"},
		{"-n", ns.Name, "link", "set", peer, "up"},
		{"-n", ns.Name, "link", "set", "lo", "up"},
	}
	for _, args := range steps {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			ns.Close()
			return nil, fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return ns, nil
}

// Close deletes the namespace (and with it the veth pair). Stop the processes in it first.
func (n *Netns) Close() error {
	out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput()
	_ = exec.Command("ip", "link", "del", n.veth).Run() // gone with the namespace, normally
	if err != nil {
		return fmt.Errorf("ip netns del %s: %w: %s", n.Name, err, out)
	}
	return nil
}

// addr gives the next upstream an address of its own in the namespace.
func (n *Netns) addr() (string, error) {
	ip := fmt.Sprintf("%s%d", n.prefix, n.next.Add(1))
	if out, err := exec.Command("ip", "-n", n.Name, "addr", "add", ip+"/24", "dev", n.veth+"p").CombinedOutput(); err != nil {
		return "", fmt.Errorf("ip -n %s addr add %s: %w: %s", n.Name, ip, err, out)
	}
	return ip, nil
}

// Proc is a child process a test started, stopped by its own PID.
type Proc struct {
	Cmd  *exec.Cmd
	Log  string
	Done chan struct{} // closed once it has ended
	stop sync.Once
}

func start(logPath, bin string, args ...string) (*Proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &Proc{Cmd: cmd, Log: logPath, Done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.Done) }()
	return p, nil
}

// Stop ends the process with SIGINT (SIGKILL after 10 s) and waits for its end.
func (p *Proc) Stop() {
	p.stop.Do(func() {
		_ = p.Cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.Done:
		case <-time.After(10 * time.Second):
			_ = p.Cmd.Process.Kill()
			<-p.Done
		}
	})
}

// Kill ends the process with SIGKILL, as a node failure would, and waits for its end.
func (p *Proc) Kill() {
	p.stop.Do(func() {
		_ = p.Cmd.Process.Kill()
		<-p.Done
	})
}

// Output is what the process wrote so far.
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}

// Upstream is a version's pod: an aviary-upstream server in the namespace.
type Upstream struct {
	*Proc
	IP   string
	Port int32
	Name string // what it answers in X-Aviary-Upstream
}

// Upstream starts aviary-upstream named name on an address of its own, port 8080, with extra
// flags (such as --error-percent 5), and waits until it listens.
func (n *Netns) Upstream(bin, logDir, name string, extra ...string) (*Upstream, error) {
	ip, err := n.addr()
	if err != nil {
		return nil, err
	}
	portFile := filepath.Join(logDir, "upstream-"+ip+".addr")
	args := append([]string{"netns", "exec", n.Name, bin, "--listen", ip + ":8080", "--name", name, "--port-file", portFile}, extra...)
	p, err := start(filepath.Join(logDir, "upstream-"+name+"-"+ip+".log"), "ip", args...)
	if err != nil {
		return nil, err
	}
	u := &Upstream{Proc: p, IP: ip, Port: 8080, Name: name}
	if !until(10*time.Second, func() bool { _, err := os.Stat(portFile); return err == nil }) {
		p.Kill()
		return nil, fmt.Errorf("upstream %s did not listen on %s:8080 within 10 s:\n%s", name, ip, p.Output())
	}
	return u, nil
}

// Replica is a gateway replica: aviary serve --source kubernetes.
type Replica struct {
	*Proc
	Gateway, Admin string // host:port of the proxy and of the admin API
}

var serving = regexp.MustCompile(`msg="aviary gateway replica serving" gateway=(\S+) admin=(\S+)`)

// StartReplica starts a replica of the gateway fleet named gateway, for the Rollouts of ns,
// against the cluster of kubeconfig; extra flags follow (such as --probe-interval 200ms). Its
// listeners are on free loopback ports, read back from its log. It is ready to take traffic
// once WaitReady returns.
func StartReplica(bin, kubeconfig, logDir, name, ns, gateway string, extra ...string) (*Replica, error) {
	cfg := filepath.Join(logDir, name+".yaml")
	if err := os.WriteFile(cfg, []byte("gateway: {listen: 127.0.0.1:0}\nadmin: {listen: 127.0.0.1:0}\n"), 0o644); err != nil {
		return nil, err
	}
	args := append([]string{"serve", "--source", "kubernetes", "--gateway", gateway, "-n", ns, "--kubeconfig", kubeconfig, "-c", cfg}, extra...)
	p, err := start(filepath.Join(logDir, name+".log"), bin, args...)
	if err != nil {
		return nil, err
	}
	r := &Replica{Proc: p}
	if !until(30*time.Second, func() bool {
		m := serving.FindStringSubmatch(p.Output())
		if m != nil {
			r.Gateway, r.Admin = m[1], m[2]
		}
		return m != nil
	}) {
		p.Kill()
		return nil, fmt.Errorf("replica %s did not start within 30 s:\n%s", name, p.Output())
	}
	return r, nil
}

// Ready reports whether the replica's /readyz answers 200.
func (r *Replica) Ready() bool {
	resp, err := http.Get("http://" + r.Admin + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Endpoint is one pod of a Service, as the stand-in EndpointSlice controller writes it.
type Endpoint struct {
	IP    string
	Port  int32
	Ready bool
}

// PodsOf says the pods of a version: the endpoints of the ReplicaSet rs (its image tells the
// version the test means).
type PodsOf func(rs *appsv1.ReplicaSet) []Endpoint

// StandInEndpoints plays the EndpointSlice controller for ns until ctx ends: every 50 ms, each
// Service's EndpointSlice (one, named after the Service) gets the endpoints of the ReplicaSets
// its selector selects, as pods says them. A Service that selects no ReplicaSet of a Rollout
// (the Deployment's own pods, before the controller points it at a version) gets none.
func StandInEndpoints(ctx context.Context, c client.Client, ns string, pods PodsOf) {
	for ctx.Err() == nil {
		var svcs corev1.ServiceList
		var sets appsv1.ReplicaSetList
		if c.List(ctx, &svcs, client.InNamespace(ns)) == nil && c.List(ctx, &sets, client.InNamespace(ns)) == nil {
			for i := range svcs.Items {
				if err := writeSlice(ctx, c, &svcs.Items[i], sets.Items, pods); err != nil && ctx.Err() == nil {
					fmt.Fprintln(os.Stderr, "stand-in EndpointSlice controller:", err)
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func writeSlice(ctx context.Context, c client.Client, svc *corev1.Service, sets []appsv1.ReplicaSet, pods PodsOf) error {
	want := discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name, discoveryv1.LabelManagedBy: "fleettest"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{},
	}
	var port int32
	for i := range sets {
		rs := &sets[i]
		if rs.Labels[k8s.RolloutLabel] == "" || !selects(svc.Spec.Selector, rs.Spec.Template.Labels) {
			continue
		}
		for i, ep := range pods(rs) {
			port = ep.Port
			// Pods are named after their ReplicaSet, as the ReplicaSet controller names them.
			want.Endpoints = append(want.Endpoints, discoveryv1.Endpoint{Addresses: []string{ep.IP},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ep.Ready)},
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: rs.Namespace, Name: fmt.Sprintf("%s-%d", rs.Name, i)}})
		}
	}
	if port != 0 {
		want.Ports = []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}}
	}
	var have discoveryv1.EndpointSlice
	err := c.Get(ctx, client.ObjectKeyFromObject(&want), &have)
	switch {
	case apierrors.IsNotFound(err):
		return c.Create(ctx, &want)
	case err != nil:
		return err
	case equality.Semantic.DeepEqual(have.Endpoints, want.Endpoints) && equality.Semantic.DeepEqual(have.Ports, want.Ports):
		return nil
	}
	have.Endpoints, have.Ports = want.Endpoints, want.Ports
	if err := c.Update(ctx, &have); err != nil && !apierrors.IsConflict(err) {
		return err
	}
	return nil
}

// selects reports whether a Service's selector selects pods with these labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// until polls ok every 20 ms until it holds or timeout passes.
func until(timeout time.Duration, ok func() bool) bool {
	return polltest.Until(timeout, 20*time.Millisecond, ok)
}

// LastLines is the last n lines of s, for failure messages.
func LastLines(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
