//go:build k8s

package replica_test

// The judge reads the gateway fleet (internal/fleet, internal/k8s/fleet.go): the controller finds
// the replicas through the gateway Service's EndpointSlices, reads their counts at each look and
// judges the sum with the builtin metrics and the default analysis, as `aviary serve` judges its
// own gateway. The replicas' admin APIs listen on the host's end of the suite's network namespace
// (10.x.y.1): an EndpointSlice may not hold a loopback address, and that one is the host's own. As
// they are not on loopback, they need tokens; the controller reads with the read token.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"aviary.dev/aviary/internal/k8s"
	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/k8s/fleettest"
	"aviary.dev/aviary/internal/polltest"
)

const (
	adminToken = "fleet-admin-token"
	readToken  = "fleet-read-token"
)

// hostIP is the host's end of the suite's network namespace: the upstreams' /24, address 1.
func hostIP(u *fleettest.Upstream) string {
	return u.IP[:strings.LastIndex(u.IP, ".")] + ".1"
}

// judgedReplica starts a replica of the fleet "edge" whose admin API listens on host (with
// tokens), so that an EndpointSlice can name it.
func (f *fleet) judgedReplica(name, host string) *fleettest.Replica {
	f.t.Helper()
	cfg := filepath.Join(f.dir, name+"-admin.yaml")
	conf := fmt.Sprintf("gateway: {listen: 127.0.0.1:0}\nadmin: {listen: %q, token: %q, readToken: %q}\n", host+":0", adminToken, readToken)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return f.replica(name, "-c", cfg) // the last -c wins
}

// gatewayService makes the fleet's Service (labelled aviary.dev/gateway=edge) and, playing the
// EndpointSlice controller, one slice per replica (the replicas' admin ports differ here, as
// pods' would not), each with the port named admin.
func (f *fleet) gatewayService(rs map[string]*fleettest.Replica) {
	f.t.Helper()
	f.create(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "edge", Namespace: f.ns, Labels: map[string]string{k8s.GatewayLabel: "edge"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "edge-gateway"}, Ports: []corev1.ServicePort{{Name: k8s.AdminPortName, Port: 9090}}}})
	for name, r := range rs {
		host, port, err := net.SplitHostPort(r.Admin)
		if err != nil {
			f.t.Fatal(err)
		}
		p, _ := strconv.Atoi(port)
		f.create(&discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: "edge-" + name, Namespace: f.ns,
				Labels: map[string]string{discoveryv1.LabelServiceName: "edge", discoveryv1.LabelManagedBy: "judge-test"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "edge-" + name, Namespace: f.ns}}},
			Ports: []discoveryv1.EndpointPort{{Name: ptr.To(k8s.AdminPortName), Port: ptr.To(int32(p)), Protocol: ptr.To(corev1.ProtocolTCP)}},
		})
	}
}

// judgingController runs a controller that reads the fleet, until stop or the test's end. With
// lease set, it runs with leader election on that Lease.
func (f *fleet) judgingController(lease string) (stop func()) {
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	logf, err := os.OpenFile(filepath.Join(f.dir, "controller.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() {
		logf.Close()
		if f.t.Failed() { // the test's directory goes with it: say what the controller said of the fleet
			b, _ := os.ReadFile(logf.Name())
			var fleetLines []string
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, "gateway") && !strings.Contains(line, "Reconcil") {
					fleetLines = append(fleetLines, line)
				}
			}
			f.t.Logf("the controller on the fleet:\n%s", fleettest.LastLines(strings.Join(fleetLines, "\n"), 20))
		}
	})
	o := k8s.Options{Config: cfg, Namespace: f.ns, MetricsAddr: "0", ProbeAddr: "0",
		Interval: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Fleet: k8s.FleetOptions{Token: readToken, Look: 500 * time.Millisecond, Timeout: 2 * time.Second}}
	if lease != "" {
		o.LeaderElection, o.LeaderElectionID, o.LeaderElectionNamespace = true, lease, f.ns
		o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = 4*time.Second, 3*time.Second, 500*time.Millisecond
	}
	go func() { done <- k8s.Run(ctx, o) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				f.t.Errorf("controller: %v", err)
			}
		})
	}
	f.t.Cleanup(stop)
	return stop
}

// load sends requests through the replicas, round robin, paced to about rps in all, until ctx
// ends; send makes one request. As a load balancer does, a request that gets no answer from one
// replica (a refused or broken connection) is sent again to another, and the worker sends no more
// to the replica that failed it. It counts the answers by status.
type load struct {
	ok      atomic.Int64 // answered 200
	failed  atomic.Int64 // answered another status (a version's own errors)
	retried atomic.Int64 // attempts a replica did not answer, sent again to another
	lost    atomic.Int64 // requests no replica answered
}

func (l *load) run(ctx context.Context, rs []*fleettest.Replica, rps int, send func(ctx context.Context, gw string) (int, error)) *sync.WaitGroup {
	var wg sync.WaitGroup
	const workers = 4
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second * workers / time.Duration(rps))
			defer tick.Stop()
			down := map[int]bool{}
			for i := w; ctx.Err() == nil; i++ {
				l.one(ctx, rs, i, down, send)
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
			}
		}()
	}
	return &wg
}

func (l *load) one(ctx context.Context, rs []*fleettest.Replica, i int, down map[int]bool, send func(ctx context.Context, gw string) (int, error)) {
	for try := range len(rs) {
		k := (i + try) % len(rs)
		if down[k] {
			continue
		}
		code, err := send(ctx, rs[k].Gateway)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			down[k] = true
			l.retried.Add(1)
			continue
		case code == http.StatusOK:
			l.ok.Add(1)
		default:
			l.failed.Add(1)
		}
		return
	}
	l.lost.Add(1)
}

func get(ctx context.Context, gw string) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+gw+"/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// errorsOnly judges the error rate alone, with an effect a short run can rule out: the upstreams
// answer in well under a millisecond, so their latency is the busy machine's noise (see
// test/analysis).
func errorsOnly() *v1alpha1.Analysis {
	return &v1alpha1.Analysis{Templates: []v1alpha1.AnalysisTemplate{{Name: "errors-only", Metrics: []v1alpha1.AnalysisMetric{{
		Name: "errors", Builtin: "errorRate", Critical: true, DetectableEffect: &v1alpha1.DetectableEffect{Points: 5}}}}}}
}

// judgedApp sets up a namespace with v1 (two pods) and v2 (one pod, with v2Flags), the Rollout
// shop routed through the fleet edge, two replicas that the controller finds, and returns them.
func judgedApp(t *testing.T, strategy v1alpha1.Strategy, analysis *v1alpha1.Analysis, v2Flags ...string) (*fleet, []*fleettest.Replica) {
	f := newFleet(t)
	pods := f.version("shop:1", "v1", 2)
	f.version("shop:2", "v2", 1, v2Flags...)
	f.app("shop:1")
	f.rollout(strategy, `{"match": {"pathPrefix": "/"}}`)
	if analysis != nil {
		f.setAnalysis(analysis)
	}
	a, b := f.judgedReplica("a", hostIP(pods[0])), f.judgedReplica("b", hostIP(pods[0]))
	f.gatewayService(map[string]*fleettest.Replica{"a": a, "b": b})
	return f, []*fleettest.Replica{a, b}
}

// setAnalysis gives the Rollout analysis templates.
func (f *fleet) setAnalysis(a *v1alpha1.Analysis) {
	f.t.Helper()
	ro := &v1alpha1.Rollout{}
	f.get("shop", ro)
	ro.Spec.Analysis = a
	if err := cl.Update(f.ctx, ro); err != nil {
		f.t.Fatal(err)
	}
}

// fleetSeen waits until the status says the judge read every one of n replicas.
func (f *fleet) fleetSeen(n int32) *v1alpha1.Rollout {
	return f.waitFor(fmt.Sprintf("the judge reading %d of %d gateway replicas", n, n), func(ro *v1alpha1.Rollout) bool {
		fl := ro.Status.Fleet
		return fl != nil && fl.Replicas == n && fl.Answered == n
	})
}

// killUnderJudgement kills the first replica with SIGKILL (no drain: what it counted since the
// judge's last look is lost) once the judge has read both and a few looks' worth of traffic has
// gone through them, so that it has a rate to estimate the loss by; then removes its endpoint, as
// the EndpointSlice controller does a dead pod's. It fails the test if the verdict came first.
func (f *fleet) killUnderJudgement(l *load, rs []*fleettest.Replica) {
	f.t.Helper()
	f.fleetSeen(2)
	read := l.ok.Load()
	polltest.Wait(f.t, 30*time.Second, "500 more requests through both replicas", func() bool { return l.ok.Load() > read+500 })
	if ro := f.get2(); ro.Status.Phase == "Degraded" || ro.Status.StableRevision == 2 {
		f.t.Fatalf("the verdict came before a replica could be killed under judgement: %s", ro.Status.Message)
	}
	rs[0].Kill()
	if err := cl.Delete(f.ctx, &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "edge-a", Namespace: f.ns}}); err != nil {
		f.t.Fatal(err)
	}
}

// killedOne checks what a killed replica may cost: no request failed on both replicas, at most
// one unanswered attempt per client worker (each has one request in flight, and sends no more to
// a replica that failed it), and the status counts the replica as ended, with an estimate of the
// requests it took with it.
func killedOne(t *testing.T, l *load, fl *v1alpha1.FleetStatus) {
	t.Helper()
	const workers = 4 // load.run's
	if n := l.lost.Load(); n != 0 {
		t.Errorf("%d requests failed on both replicas; only the killed one's in flight may fail, and they are retried", n)
	}
	if n := l.retried.Load(); n > workers {
		t.Errorf("%d attempts went unanswered, more than the %d that can be in flight on the killed replica", n, workers)
	}
	if fl == nil || fl.Replicas != 1 || fl.Answered != 1 || fl.Ended != 1 || fl.Lost <= 0 {
		t.Errorf("status.fleet is %+v; want the survivor read (1 of 1), the killed replica counted as ended and an estimate of the requests lost with it", fl)
	}
}

// TestTheFleetJudgePromotesAHealthyCanary: a healthy canary is still promoted when a replica is
// killed under judgement; what it took with it is lost evenly from both versions, so it biases
// neither.
func TestTheFleetJudgePromotesAHealthyCanary(t *testing.T) {
	t.Parallel()
	f, rs := judgedApp(t, steps(weight(50), v1alpha1.CanaryStep{Analysis: &v1alpha1.AnalysisStep{Templates: []string{"errors-only"}}}), errorsOnly())
	f.judgingController("")
	f.waitFor("the first version to be stable", func(ro *v1alpha1.Rollout) bool { return ro.Status.Phase == "Healthy" })
	f.waitServes("v1", nil, rs...)
	ctx, stop := context.WithCancel(f.ctx)
	defer stop()
	var l load
	done := l.run(ctx, rs, 200, get)
	f.setImage("shop:2")
	began := time.Now()
	ro := f.fleetSeen(2)
	t.Logf("status.fleet while in flight: %+v (%s)", *ro.Status.Fleet, ro.Status.Message)
	f.killUnderJudgement(&l, rs)
	killed := time.Since(began)
	ro = f.waitFor("the canary promoted by the judge", func(ro *v1alpha1.Rollout) bool {
		return ro.Status.Phase == "Healthy" && ro.Status.Routing != nil && ro.Status.Routing.Canary == "" && ro.Status.StableRevision == 2
	})
	stop()
	done.Wait()
	t.Logf("replica a killed %s after the canary began; promoted %s after %s under %d requests (%d failed, %d attempts unanswered and retried, %d failed on both); fleet %+v",
		killed.Round(100*time.Millisecond), ro.Status.StableVersion, time.Since(began).Round(time.Second), l.ok.Load(), l.failed.Load(), l.retried.Load(), l.lost.Load(), ro.Status.Fleet)
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d requests answered an error with two healthy versions", n)
	}
	killedOne(t, &l, ro.Status.Fleet)
}

// TestTheFleetJudgeRollsBackAnErringCanary is the scenario: a canary that errs more, judged
// through two replicas, one of which is killed with SIGKILL while the judge reads both.
// The clients retry on the other replica, as a load balancer would; the EndpointSlice controller's
// part (the dead pod's endpoint removed) is played by the test. The verdict must not change: the
// default analysis still rolls the canary back, on the survivor's counts, and the status says
// that a replica ended and about how many requests went unmeasured with it.
func TestTheFleetJudgeRollsBackAnErringCanary(t *testing.T) {
	t.Parallel()
	// No analysis of the user's: the default analysis (errors and latency, canary against stable)
	// runs in the background of every rollout routed through the fleet.
	f, rs := judgedApp(t, steps(weight(50), pauseStep()), nil, "--error-percent", "20")
	f.judgingController("")
	f.waitFor("the first version to be stable", func(ro *v1alpha1.Rollout) bool { return ro.Status.Phase == "Healthy" })
	ctx, stop := context.WithCancel(f.ctx)
	defer stop()
	var l load
	done := l.run(ctx, rs, 200, get)
	f.setImage("shop:2")
	began := time.Now()
	f.killUnderJudgement(&l, rs)
	killed := time.Since(began)
	ro := f.waitFor("the erring canary rolled back", func(ro *v1alpha1.Rollout) bool { return ro.Status.Phase == "Degraded" })
	took := time.Since(began)
	stop()
	done.Wait()
	fl := ro.Status.Fleet
	t.Logf("replica a killed %s after the canary began; rolled back after %s (%d requests: %d answered 200, %d answered an error; %d attempts unanswered by the killed replica and retried, %d failed on both); %s; fleet %+v",
		killed.Round(100*time.Millisecond), took.Round(100*time.Millisecond), l.ok.Load()+l.failed.Load()+l.lost.Load(),
		l.ok.Load(), l.failed.Load(), l.retried.Load(), l.lost.Load(), ro.Status.Message, fl)
	if took > 2*time.Minute {
		t.Errorf("the rollback took %s; the judge should see a 20%% error rate within a minute (two minutes allowed on a busy machine)", took)
	}
	if !strings.Contains(ro.Status.Message, "error") {
		t.Errorf("the rollback does not say it was the errors: %s", ro.Status.Message)
	}
	killedOne(t, &l, fl)
}

// TestANewLeaderJudgesTheFleetAfresh kills the leading controller once it has read the fleet, while
// the replicas go on serving; a second controller takes the Lease, reads the replicas from a
// baseline (never their counts since they started), and reaches the verdict.
func TestANewLeaderJudgesTheFleetAfresh(t *testing.T) {
	t.Parallel()
	f, rs := judgedApp(t, steps(weight(50), pauseStep()), nil, "--error-percent", "20")
	first := f.judgingController("judge-lease")
	f.waitFor("the first version to be stable", func(ro *v1alpha1.Rollout) bool { return ro.Status.Phase == "Healthy" })
	ctx, stop := context.WithCancel(f.ctx)
	defer stop()
	var l load
	done := l.run(ctx, rs, 100, get)
	f.setImage("shop:2")
	f.waitFor("the canary at 50% with the fleet read", func(ro *v1alpha1.Rollout) bool {
		return ro.Status.CanaryWeight == 50 && ro.Status.Fleet != nil && ro.Status.Fleet.Answered == 2
	})
	first() // gives up the Lease (LeaderElectionReleaseOnCancel)
	if ro := f.get2(); ro.Status.Phase == "Degraded" {
		t.Skip("the first leader rolled back before it was stopped; nothing left for the second")
	}
	killed := time.Now()
	f.judgingController("judge-lease")
	ro := f.waitFor("the second leader rolling back the erring canary", func(ro *v1alpha1.Rollout) bool { return ro.Status.Phase == "Degraded" })
	stop()
	done.Wait()
	t.Logf("the second leader rolled back %s after the first stopped: %s; fleet %+v", time.Since(killed).Round(100*time.Millisecond), ro.Status.Message, ro.Status.Fleet)
}

func (f *fleet) get2() *v1alpha1.Rollout {
	ro := &v1alpha1.Rollout{}
	f.get("shop", ro)
	return ro
}

var fakellm = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "aviary-fakellm-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "aviary-fakellm")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/aviary-fakellm")
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/aviary-fakellm: %w\n%s", err, msg)
	}
	return bin, nil
})

func chat(ctx context.Context, gw string) (int, error) {
	body := `{"model": "m", "stream": true, "messages": [{"role": "user", "content": "hello"}]}`
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+gw+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func TestTheFleetJudgesAnLLMCanaryOnTimeToFirstToken(t *testing.T) {
	t.Parallel()
	bin, err := fakellm()
	if err != nil {
		t.Fatal(err)
	}
	f := newFleet(t)
	var pods []*fleettest.Upstream
	for _, v := range []struct {
		image, name, ttft string
	}{{"llm:1", "v1", "30ms"}, {"llm:2", "v2", "400ms"}} {
		u, err := netns.Upstream(bin, f.dir, v.name+"-1", "--ttft", v.ttft, "--token-every", "2ms", "--output-tokens", "5")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(u.Stop)
		f.mu.Lock()
		f.pods[v.image] = append(f.pods[v.image], u)
		f.mu.Unlock()
		pods = append(pods, u)
	}
	f.app("llm:1")
	no := false
	strategy := steps(weight(50), pauseStep())
	strategy.DefaultAnalysis = &no // judged on TTFT alone
	strategy.Canary.Analysis = &v1alpha1.BackgroundAnalysis{Templates: []string{"llm"}}
	f.rollout(strategy, `{"match": {"pathPrefix": "/"}, "llm": {"api": "openai", "includeUsage": true}}`)
	f.setAnalysis(&v1alpha1.Analysis{Templates: []v1alpha1.AnalysisTemplate{{Name: "llm", Metrics: []v1alpha1.AnalysisMetric{{
		Name: "ttft", Builtin: "ttft", Quantile: 0.9, Critical: true}}}}})
	a, b := f.judgedReplica("a", hostIP(pods[0])), f.judgedReplica("b", hostIP(pods[0]))
	f.gatewayService(map[string]*fleettest.Replica{"a": a, "b": b})
	f.judgingController("")
	f.waitFor("the first version to be stable", func(ro *v1alpha1.Rollout) bool { return ro.Status.Phase == "Healthy" })
	for _, r := range []*fleettest.Replica{a, b} {
		polltest.Wait(t, 30*time.Second, "replica "+r.Gateway+" answering chat", func() bool {
			code, err := chat(f.ctx, r.Gateway)
			return err == nil && code == http.StatusOK
		})
	}
	ctx, stop := context.WithCancel(f.ctx)
	defer stop()
	var l load
	done := l.run(ctx, []*fleettest.Replica{a, b}, 100, chat)
	f.setImage("llm:2")
	began := time.Now()
	ro := f.waitFor("the slow-to-first-token canary rolled back", func(ro *v1alpha1.Rollout) bool { return ro.Status.Phase == "Degraded" })
	stop()
	done.Wait()
	t.Logf("rolled back after %s (%d answers, %d failed, %d attempts unanswered): %s", time.Since(began).Round(100*time.Millisecond), l.ok.Load(), l.failed.Load(), l.retried.Load(), ro.Status.Message)
	if n := l.failed.Load() + l.retried.Load(); n != 0 {
		t.Errorf("%d chat requests or attempts failed; a slow canary is no failing one", n)
	}
	if !strings.Contains(ro.Status.Message, "ttft") {
		t.Errorf("the rollback does not name the ttft metric: %s", ro.Status.Message)
	}
}
