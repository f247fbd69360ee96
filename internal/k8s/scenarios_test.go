//go:build k8s

package k8s

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/k8s/k8stest"
	"aviary.dev/aviary/internal/promtest"
	"aviary.dev/aviary/internal/rollout"
)

func TestABlueGreenRolloutPreviewsSwitchesAndIsUndoneAtOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.app("shop:1")
	w.rollout(v1alpha1.Strategy{
		BlueGreen: &v1alpha1.BlueGreenStrategy{
			PreviewRoute:   &v1alpha1.Match{Header: &v1alpha1.KeyMatch{Name: "X-Preview", StringMatch: v1alpha1.StringMatch{Value: "1"}}},
			ScaleDownDelay: &metav1.Duration{Duration: time.Minute},
		},
	}, nil)
	w.controller()
	blue := w.waitFor("the first version to be stable", healthy).Status.StableVersion
	w.setImage("shop:2")
	green := w.waitFor("the preview", func(ro *v1alpha1.Rollout) bool { return ro.Status.Phase == "Paused" }).Status.CanaryVersion

	// The preview: everyone on blue, requests with X-Preview: 1 on green, which has all its pods.
	w.waitWeights(100, 0)
	var hr gatewayv1.HTTPRoute
	eventually(10*time.Second, func() bool { w.get("shop", &hr); return hr.Spec.Rules[0].Name != nil })
	seg := hr.Spec.Rules[0]
	if seg.Name == nil || string(*seg.Name) != "aviary-shop-segment" || len(seg.Matches) != 1 || len(seg.Matches[0].Headers) != 1 ||
		seg.Matches[0].Headers[0].Name != "X-Preview" || seg.Matches[0].Headers[0].Value != "1" || seg.BackendRefs[0].Name != "shop-canary" {
		t.Fatalf("no preview rule first in the HTTPRoute: %+v", hr.Spec.Rules)
	}
	w.waitSelector("shop-canary", green)
	if w.replicas(green) != 4 {
		t.Errorf("preview: %d replicas of %s, want 4", w.replicas(green), green)
	}

	w.command(rollout.Promote)
	w.waitFor("the switch", func(ro *v1alpha1.Rollout) bool { return healthy(ro) && ro.Status.StableVersion == green })
	w.waitSelector("shop-stable", green)
	// The status is written first, then the Services, then the HTTPRoute (see Reconciler): the
	// route follows the Service it was read after, it is not already there.
	if !eventually(10*time.Second, func() bool {
		w.get("shop", &hr)
		return !slices.ContainsFunc(hr.Spec.Rules, func(r gatewayv1.HTTPRouteRule) bool { return r.Name != nil })
	}) {
		t.Errorf("the preview rule outlived the rollout: %+v", hr.Spec.Rules)
	}
	if n := w.replicas(blue); n != 4 {
		t.Errorf("blue should stay warm (scaleDownDelay 1m) with 4 replicas, has %d", n)
	}

	// Undo while blue is warm: one status write and blue serves again.
	ro := w.command(rollout.Undo)
	if ro.Status.StableVersion != blue || ro.Status.Phase != "Healthy" {
		t.Errorf("after undo: stable %s phase %s, want %s Healthy", ro.Status.StableVersion, ro.Status.Phase, blue)
	}
	w.waitSelector("shop-stable", blue)
	// The Deployment still says green: undo is not undone by the next reconcile.
	w.lookedAt()
	if ro := w.waitFor("the undo to hold", healthy); ro.Status.StableVersion != blue {
		t.Errorf("the undo was undone: stable is %s", ro.Status.StableVersion)
	}
}

// exporter serves a gauge shop_error_ratio{version=…} for Prometheus to scrape; the test sets the
// values.
type exporter struct {
	mu     sync.Mutex
	values map[string]float64
}

func (e *exporter) set(version string, v float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.values[version] = v
}

func (e *exporter) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintln(w, "# TYPE shop_error_ratio gauge")
	for v, x := range e.values {
		fmt.Fprintf(w, "shop_error_ratio{version=%q} %g\n", v, x)
	}
}

// promValue asks Prometheus for a query's single value (false when it has none yet).
func promValue(t *testing.T, base, query string) (float64, bool) {
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil || len(r.Data.Result) == 0 {
		return 0, false
	}
	var x float64
	fmt.Sscan(fmt.Sprint(r.Data.Result[0].Value[1]), &x)
	return x, true
}

func TestARolloutWhosePrometheusAnalysisFailsIsRolledBack(t *testing.T) {
	t.Parallel()
	exp := &exporter{values: map[string]float64{}}
	target := httptest.NewServer(exp)
	t.Cleanup(target.Close)
	prom := promtest.Start(t, target.URL)

	w := newWorld(t)
	w.app("shop:1")
	w.rollout(canarySteps(weight(25), v1alpha1.CanaryStep{Analysis: &v1alpha1.AnalysisStep{Templates: []string{"errors"}}}, weight(100)),
		&v1alpha1.Analysis{Templates: []v1alpha1.AnalysisTemplate{{
			Name: "errors",
			Metrics: []v1alpha1.AnalysisMetric{{
				Name:             "error-ratio",
				Prometheus:       &v1alpha1.PrometheusMetric{Address: prom, Query: `max(shop_error_ratio{version="{{canary}}"})`},
				Interval:         &metav1.Duration{Duration: time.Second},
				Count:            5,
				SuccessCondition: "result < 0.05",
				FailureLimit:     1,
			}},
		}}})
	w.controller()
	first := w.waitFor("the first version to be stable", healthy).Status.StableVersion

	// The new template's version is its hash: its pods report 30% errors before it is released.
	canary := w.versionWith("shop:2-broken")
	exp.set(first, 0.001)
	exp.set(canary, 0.30)
	if !eventually(20*time.Second, func() bool {
		_, ok := promValue(t, prom, `shop_error_ratio{version="`+canary+`"}`)
		return ok
	}) {
		t.Fatal("Prometheus has not scraped the exporter after 20 s")
	}
	w.setImage("shop:2-broken")
	ro := w.waitFor("the rollback", func(ro *v1alpha1.Rollout) bool { return ro.Status.Phase == "Degraded" })
	if ro.Status.CanaryVersion != canary || ro.Status.StableVersion != first || ro.Status.CanaryWeight != 0 {
		t.Errorf("after the rollback: stable %s canary %s weight %d", ro.Status.StableVersion, ro.Status.CanaryVersion, ro.Status.CanaryWeight)
	}
	if !strings.Contains(ro.Status.Message, "error-ratio") {
		t.Errorf("the message does not name the failed metric: %q", ro.Status.Message)
	}
	if len(ro.Status.Analysis) == 0 && !slices.ContainsFunc(ro.Status.Conditions, func(c metav1.Condition) bool {
		return c.Type == "Degraded" && c.Status == metav1.ConditionTrue
	}) {
		t.Errorf("no Degraded condition: %+v", ro.Status.Conditions)
	}
	w.waitWeights(100, 0)
	if !slices.Contains(w.eventReasons(), "AnalysisFailed") && !slices.Contains(w.eventReasons(), "Aborted") {
		t.Errorf("no AnalysisFailed or Aborted event among %v", w.eventReasons())
	}
}

func TestAControllerKilledMidRolloutResumesFromTheStatus(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.app("shop:1")
	w.rollout(canarySteps(weight(30), pause(2*time.Second), weight(60), pause(0)), nil)
	stop := w.controller()
	w.waitFor("the first version to be stable", healthy)
	w.setImage("shop:2")
	before := w.waitFor("the canary at 30%", func(ro *v1alpha1.Rollout) bool {
		return ro.Status.CanaryWeight == 30 && ro.Status.CurrentStepIndex == 1
	})
	w.waitWeights(70, 30)
	stop() // the controller is gone; its pause goes on counting in the status

	time.Sleep(2500 * time.Millisecond)
	w.waitWeights(70, 30) // nobody moved anything meanwhile
	w.controller()
	after := w.waitFor("the rollout to go on at 60%", func(ro *v1alpha1.Rollout) bool {
		return ro.Status.CanaryWeight == 60 && ro.Status.Phase == "Paused"
	})
	w.waitWeights(40, 60)
	if after.Status.CanaryVersion != before.Status.CanaryVersion {
		t.Errorf("the restarted controller started another rollout: canary %s, was %s", after.Status.CanaryVersion, before.Status.CanaryVersion)
	}
	n := 0
	for _, r := range w.eventReasons() {
		if r == "RolloutStarted" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d RolloutStarted events, want 1", n)
	}
	st, _, err := StateOf(after)
	if err != nil || st.Attempt != 1 {
		t.Errorf("state after restart: attempt %d (err %v)", st.Attempt, err)
	}
}

func TestOfTwoControllerReplicasOnlyTheLeaderActs(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.app("shop:1")
	w.rollout(canarySteps(weight(10), pause(0)), nil)
	var leaders atomic.Int32
	elected := make([]atomic.Bool, 2)
	stops := make([]func(), 2)
	for i := range stops {
		stops[i] = w.controllerWith(func(o *Options) {
			o.LeaderElection, o.LeaderElectionNamespace, o.LeaderElectionID = true, w.ns, "aviary-test"
			o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = 3*time.Second, 2*time.Second, 200*time.Millisecond
			o.Elected = func() { leaders.Add(1); elected[i].Store(true) }
		})
	}
	w.waitFor("the first version to be stable", healthy)
	time.Sleep(time.Second)
	if n := leaders.Load(); n != 1 {
		t.Fatalf("%d replicas lead, want 1", n)
	}
	var lease coordinationv1.Lease
	w.get("aviary-test", &lease)
	if ptr.Deref(lease.Spec.HolderIdentity, "") == "" {
		t.Errorf("the Lease names no holder: %+v", lease.Spec)
	}
	leader := 0
	if elected[1].Load() {
		leader = 1
	}
	w.setImage("shop:2")
	w.waitFor("the canary at 10%", func(ro *v1alpha1.Rollout) bool { return ro.Status.CanaryWeight == 10 })

	// The leader goes; the other takes over and finishes the rollout.
	stops[leader]()
	other := 1 - leader
	if !eventually(20*time.Second, elected[other].Load) {
		t.Fatal("the second replica did not take over within 20 s of the leader's end")
	}
	w.command(rollout.Promote)
	w.waitFor("the rollout to complete under the new leader", func(ro *v1alpha1.Rollout) bool {
		return healthy(ro) && ro.Status.StableVersion == ro.Status.ReleaseVersion
	})
}

// counters serves http_requests_total counters per version that grow with time, as pods'
// exporters would: the error share of each version is the test's.
type counters struct {
	start  time.Time
	mu     sync.Mutex
	errors map[string]float64
}

func (c *counters) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 100 * time.Since(c.start).Seconds()
	fmt.Fprintln(w, "# TYPE http_requests_total counter")
	for v, share := range c.errors {
		fmt.Fprintf(w, "http_requests_total{pod_template_hash=%q,code=\"200\"} %d\n", v, int64(n*(1-share)))
		fmt.Fprintf(w, "http_requests_total{pod_template_hash=%q,code=\"500\"} %d\n", v, int64(n*share))
	}
}

func TestTheSequentialJudgeRollsBackACanaryWithMoreErrorsThanTheStableOnPrometheusCounters(t *testing.T) {
	t.Parallel()
	exp := &counters{start: time.Now(), errors: map[string]float64{}}
	target := httptest.NewServer(exp)
	t.Cleanup(target.Close)
	prom := promtest.Start(t, target.URL)

	w := newWorld(t)
	w.app("shop:1")
	w.rollout(canarySteps(weight(50), pause(0)), &v1alpha1.Analysis{Templates: []v1alpha1.AnalysisTemplate{{
		Name: "errors",
		Metrics: []v1alpha1.AnalysisMetric{{
			Name:     "error-rate",
			Critical: true,
			Prometheus: &v1alpha1.PrometheusMetric{Address: prom,
				Requests: `sum(http_requests_total{pod_template_hash="{{version}}"})`,
				Errors:   `sum(http_requests_total{pod_template_hash="{{version}}", code=~"5.."})`},
		}},
	}}})
	// The background analysis watches the whole rollout, as the default one does in standalone.
	var ro v1alpha1.Rollout
	w.get("shop", &ro)
	ro.Spec.Strategy.Canary.Analysis = &v1alpha1.BackgroundAnalysis{Templates: []string{"errors"}}
	if err := cl.Update(w.ctx, &ro); err != nil {
		t.Fatal(err)
	}
	w.controller()
	first := w.waitFor("the first version to be stable", healthy).Status.StableVersion
	canary := w.versionWith("shop:2-erroring")
	exp.mu.Lock()
	exp.errors[first], exp.errors[canary] = 0.01, 0.08
	exp.mu.Unlock()

	started := time.Now()
	w.setImage("shop:2-erroring")
	done := w.waitFor("the rollback", func(ro *v1alpha1.Rollout) bool { return ro.Status.Phase == "Degraded" })
	if !strings.Contains(done.Status.Message, "error-rate") || !strings.Contains(done.Status.Message, "evidence") {
		t.Errorf("the message does not show the sequential evidence: %q", done.Status.Message)
	}
	t.Logf("rolled back %s after the template changed: %s", time.Since(started).Round(100*time.Millisecond), done.Status.Message)
	w.waitWeights(100, 0)
}

func TestTheControllerServesMetricsAndHealth(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.app("shop:1")
	w.rollout(canarySteps(weight(10), pause(0)), nil)
	metricsAddr, probeAddr := promtest.FreeAddress(t), promtest.FreeAddress(t)
	w.controllerWith(func(o *Options) { o.MetricsAddr, o.ProbeAddr = metricsAddr, probeAddr })
	stable := w.waitFor("the first version to be stable", healthy).Status.StableVersion
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := get("http://" + probeAddr + path); code != http.StatusOK {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
	want := fmt.Sprintf(`aviary_rollout_phase{namespace=%q,phase="Healthy",service="shop"} 1`, w.ns)
	var body string
	eventually(10*time.Second, func() bool { _, body = get("http://" + metricsAddr + "/metrics"); return strings.Contains(body, want) })
	for _, s := range []string{want, `aviary_rollout_canary_weight{canary="",namespace="` + w.ns + `",service="shop",stable="` + stable + `"} 0`,
		`controller_runtime_reconcile_total{controller="rollout",result="success"}`} {
		if !strings.Contains(body, s) {
			t.Errorf("/metrics has no %s", s)
		}
	}
}

// scaleDown: onsuccess hands the Deployment's pods over to the Rollout: the Deployment goes to 0
// and the stable ReplicaSet keeps the count it had.
func TestScaleDownOnSuccessHandsTheDeploymentsPodsToTheRollout(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.app("shop:1") // 4 replicas
	w.rollout(canarySteps(weight(50)), nil)
	var ro v1alpha1.Rollout
	w.get("shop", &ro)
	ro.Spec.WorkloadRef.ScaleDown = "onsuccess"
	if err := cl.Update(w.ctx, &ro); err != nil {
		t.Fatal(err)
	}
	w.controller()
	stable := w.waitFor("the first version to be stable", healthy).Status.StableVersion
	var dep appsv1.Deployment
	eventually(10*time.Second, func() bool { w.get("shop", &dep); return ptr.Deref(dep.Spec.Replicas, 1) == 0 })
	if ptr.Deref(dep.Spec.Replicas, 1) != 0 || dep.Annotations[ReplicasAnnotation] != "4" {
		t.Fatalf("the Deployment has %d replicas and annotation %q, want 0 and 4", ptr.Deref(dep.Spec.Replicas, 1), dep.Annotations[ReplicasAnnotation])
	}
	w.lookedAt() // a reconcile after the Deployment went to 0
	if n := w.replicas(stable); n != 4 {
		t.Errorf("the stable ReplicaSet has %d replicas after the Deployment went to 0, want 4", n)
	}
}

// TestAnAviaryControllerKilledWithSIGKILLResumes runs the real binary, `aviary controller`, as a
// user runs it (a kubeconfig file), kills it with SIGKILL in the middle of a rollout, and starts
// another: the rollout goes on from the Rollout's status.
func TestAnAviaryControllerKilledWithSIGKILLResumes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "aviary")
	build := exec.Command("go", "build", "-o", bin, "aviary.dev/aviary/cmd/aviary")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	kubeconfig, err := k8stest.WriteKubeconfig(cfg, "default", dir)
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t)
	w.app("shop:1")
	w.rollout(canarySteps(weight(30), pause(2*time.Second), weight(60), pause(0)), nil)
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "controller", "--kubeconfig", kubeconfig, "-n", w.ns, "--leader-elect=false",
			"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--admin-bind-address", "0", "--interval", "100ms", "--log-level", "warn")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	first := start()
	w.waitFor("the first version to be stable", healthy)
	w.setImage("shop:2")
	before := w.waitFor("the canary at 30%", func(ro *v1alpha1.Rollout) bool { return ro.Status.CanaryWeight == 30 })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	time.Sleep(2500 * time.Millisecond) // the timed pause ends while no controller runs
	start()
	after := w.waitFor("the rollout to go on at 60%", func(ro *v1alpha1.Rollout) bool {
		return ro.Status.CanaryWeight == 60 && ro.Status.Phase == "Paused"
	})
	w.waitWeights(40, 60)
	if after.Status.CanaryVersion != before.Status.CanaryVersion {
		t.Errorf("the new controller started another rollout: %s, was %s", after.Status.CanaryVersion, before.Status.CanaryVersion)
	}
}

// A canary whose pods are slow to become ready gets only the share its ready pods can carry: the
// HTTPRoute follows them up to the step's weight, and the status says why it lags.
func TestTheHTTPRouteWaitsForTheCanarysPods(t *testing.T) {
	t.Parallel()
	var started atomic.Int32 // canary pods that have started
	var stableHash atomic.Value
	w := newWorldWith(t, func(rs *appsv1.ReplicaSet) int32 {
		if h, _ := stableHash.Load().(string); h == "" || rs.Labels[HashLabel] == h {
			return ptr.Deref(rs.Spec.Replicas, 0)
		}
		return started.Load()
	})
	w.app("shop:1") // 4 replicas: 50% needs 2 canary pods
	w.rollout(canarySteps(weight(50), pause(0)), nil)
	w.controller()
	stableHash.Store(w.waitFor("the first version to be stable", healthy).Status.StableVersion)
	started.Store(1) // the pod that lets the rollout start
	w.setImage("shop:2")
	w.waitFor("the step at 50%", func(ro *v1alpha1.Rollout) bool { return ro.Status.CanaryWeight == 50 })
	w.waitWeights(75, 25) // one of the two pods: half the weight
	ro := w.waitFor("the status to say why", func(ro *v1alpha1.Rollout) bool {
		return strings.Contains(ro.Status.Traffic, "gets 25% rather than 50%")
	})
	view, err := View(ro, time.Now())
	if err != nil || !strings.Contains(view.Message, "rather than 50%") {
		t.Errorf("aviary rollout status does not say why: %q (%v)", view.Message, err)
	}
	started.Store(2)
	w.waitWeights(50, 50)
	w.waitFor("the status to catch up", func(ro *v1alpha1.Rollout) bool { return ro.Status.Traffic == "HTTPRoute shop" })

	// Promoted: the new stable needs 4 pods and has 2; the old one, kept warm, takes the rest
	// until they are all ready.
	canary := ro.Status.CanaryVersion
	w.command(rollout.Promote)
	w.waitFor("the promotion", func(ro *v1alpha1.Rollout) bool {
		return healthy(ro) && ro.Status.StableVersion == canary && strings.Contains(ro.Status.Traffic, "the new stable, gets 50%")
	})
	w.waitWeights(50, 50)
	if old := stableHash.Load().(string); w.selector("shop-stable") != old {
		t.Errorf("shop-stable left the old stable before the new one had its pods: %s", w.selector("shop-stable"))
	}
	started.Store(4)
	w.waitWeights(100, 0)
	w.waitSelector("shop-stable", canary)
}

// What the API server can refuse it refuses (a duration it cannot read), and what only the
// controller can check (a missing HTTPRoute) makes SpecValid false with the field, and nothing moves.
func TestABadRolloutIsRefusedWithTheFieldNamed(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.app("shop:1")
	bad := canarySteps(weight(10), v1alpha1.CanaryStep{Pause: &v1alpha1.PauseStep{}})
	ro := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: w.ns},
		Spec: v1alpha1.RolloutSpec{WorkloadRef: v1alpha1.WorkloadRef{Name: "shop"}, StableService: "shop-stable",
			CanaryService: "shop-canary", Strategy: bad,
			TrafficRouting: &v1alpha1.TrafficRouting{GatewayAPI: &v1alpha1.GatewayAPIRouting{HTTPRoute: "missing"}}}}
	raw := map[string]any{}
	b, _ := json.Marshal(ro)
	_ = json.Unmarshal(b, &raw)
	raw["apiVersion"], raw["kind"] = "aviary.dev/v1alpha1", "Rollout"
	raw["spec"].(map[string]any)["strategy"].(map[string]any)["canary"].(map[string]any)["steps"].([]any)[1].(map[string]any)["pause"] =
		map[string]any{"duration": "1d"}
	u := &unstructured.Unstructured{Object: raw}
	if err := cl.Create(w.ctx, u); err == nil || !strings.Contains(err.Error(), "duration") {
		t.Fatalf("a duration of 1d was accepted: %v", err)
	}
	w.create(ro)
	w.controller()
	got := w.waitFor("the refusal", func(ro *v1alpha1.Rollout) bool {
		c := meta.FindStatusCondition(ro.Status.Conditions, "SpecValid")
		return c != nil && c.Status == metav1.ConditionFalse
	})
	if !strings.Contains(got.Status.Message, "spec.trafficRouting.gatewayAPI.httpRoute") || !strings.Contains(got.Status.Message, "missing") {
		t.Errorf("the message does not name the field: %q", got.Status.Message)
	}
	var rs appsv1.ReplicaSetList
	if err := cl.List(w.ctx, &rs, client.InNamespace(w.ns)); err != nil || len(rs.Items) != 1 || ptr.Deref(rs.Items[0].Spec.Replicas, 0) != 0 {
		t.Errorf("a refused Rollout scaled something: %d ReplicaSets (err %v)", len(rs.Items), err)
	}
}

// Deleting a Rollout hands its traffic back: the Deployment scaled up again, the Services'
// selectors and the HTTPRoute as the user wrote them; only then is the Rollout gone.
func TestADeletedRolloutHandsItsTrafficBackToTheDeployment(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.app("shop:1")
	w.rollout(canarySteps(weight(50), pause(0)), nil)
	var ro v1alpha1.Rollout
	w.get("shop", &ro)
	ro.Spec.WorkloadRef.ScaleDown = "onsuccess"
	if err := cl.Update(w.ctx, &ro); err != nil {
		t.Fatal(err)
	}
	w.controller()
	w.waitFor("the first version to be stable", healthy)
	w.setImage("shop:2")
	w.waitFor("the canary at 50%", func(ro *v1alpha1.Rollout) bool { return ro.Status.CanaryWeight == 50 })
	w.waitWeights(50, 50)
	var dep appsv1.Deployment
	eventually(10*time.Second, func() bool { w.get("shop", &dep); return ptr.Deref(dep.Spec.Replicas, 1) == 0 })
	w.get("shop", &ro)
	if err := cl.Delete(w.ctx, &ro); err != nil {
		t.Fatal(err)
	}
	if !eventually(20*time.Second, func() bool {
		return apierrors.IsNotFound(cl.Get(w.ctx, types.NamespacedName{Namespace: w.ns, Name: "shop"}, &ro))
	}) {
		t.Fatalf("the Rollout is still there 20 s after its deletion: finalizers %v", ro.Finalizers)
	}
	w.get("shop", &dep)
	if n := ptr.Deref(dep.Spec.Replicas, 1); n != 4 {
		t.Errorf("the Deployment has %d replicas after the handover, want 4", n)
	}
	for _, name := range []string{"shop-stable", "shop-canary"} {
		var svc corev1.Service
		w.get(name, &svc)
		if len(svc.Spec.Selector) != 1 || svc.Spec.Selector["app"] != "shop" {
			t.Errorf("Service %s selects %v, want the user's app=shop", name, svc.Spec.Selector)
		}
	}
	w.waitWeights(100, 0)
}

// A spec refused in the middle of a rollout does not stop it: the last good spec stays in force,
// so an abort is still taken at once.
func TestARolloutWhoseSpecBreaksMidwayCanStillBeAborted(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.app("shop:1")
	w.rollout(canarySteps(weight(30), pause(0)), nil)
	w.controller()
	w.waitFor("the first version to be stable", healthy)
	w.setImage("shop:2")
	w.waitFor("the canary at 30%", func(ro *v1alpha1.Rollout) bool { return ro.Status.CanaryWeight == 30 })
	w.waitWeights(70, 30)

	w.updateRollout(func(ro *v1alpha1.Rollout) {
		ro.Spec.Strategy.Canary.Steps = append(ro.Spec.Strategy.Canary.Steps,
			v1alpha1.CanaryStep{Analysis: &v1alpha1.AnalysisStep{Templates: []string{"no-such-template"}}})
	})
	w.waitFor("the refusal", func(ro *v1alpha1.Rollout) bool {
		c := meta.FindStatusCondition(ro.Status.Conditions, "SpecValid")
		return c != nil && c.Status == metav1.ConditionFalse && strings.Contains(c.Message, "spec.strategy.canary.steps[2].analysis.templates")
	})
	got := w.command(rollout.Abort)
	if got.Status.Phase != "Degraded" {
		t.Errorf("abort under a refused spec: phase %s", got.Status.Phase)
	}
	w.waitWeights(100, 0)
}

// A Rollout deleted after it turned a release away (aborted it, or undid it) keeps serving the
// stable version while the Deployment still holds that template: handing over would roll it out to
// everyone. It hands over once the template is set back, or when told to by the force annotation.
func TestADeletedRolloutHoldsItsTrafficWhileTheDeploymentHoldsTheRolledBackTemplate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		turnAway     rollout.CommandKind
		release      string
		withDeletion bool // the command and the deletion reach the controller together
	}{
		{"aborted, template set back", rollout.Abort, "set back", false},
		{"aborted, forced", rollout.Abort, "force", false},
		{"undone, template set back", rollout.Undo, "set back", false},
		{"aborted with the deletion, template set back", rollout.Abort, "set back", true},
		{"aborted, then the stable pods are gone", rollout.Abort, "stable gone", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.app("shop:1")
			w.rollout(canarySteps(weight(30), pause(0)), nil)
			w.updateRollout(func(ro *v1alpha1.Rollout) { ro.Spec.WorkloadRef.ScaleDown = "onsuccess" })
			var ro v1alpha1.Rollout
			stop := w.controller()
			w.waitFor("the first version to be stable", healthy)
			w.setImage("shop:2")
			w.waitFor("the canary at 30%", func(ro *v1alpha1.Rollout) bool { return ro.Status.CanaryWeight == 30 })
			if tc.withDeletion {
				stop()
				w.updateRollout(func(ro *v1alpha1.Rollout) {
					ro.Annotations = map[string]string{v1alpha1.CommandAnnotation: `{"id":"c1","kind":"` + string(tc.turnAway) + `","by":"test"}`}
				})
				w.get("shop", &ro)
				if err := cl.Delete(w.ctx, &ro); err != nil {
					t.Fatal(err)
				}
				w.controller()
			}
			if tc.turnAway == rollout.Undo {
				w.command(rollout.Promote)
				w.waitFor("shop:2 to be stable", func(ro *v1alpha1.Rollout) bool {
					return healthy(ro) && ro.Status.StableVersion == w.versionWith("shop:2")
				})
			}
			if !tc.withDeletion {
				w.command(tc.turnAway)
				w.waitFor("shop:1 to serve again", func(ro *v1alpha1.Rollout) bool { return ro.Status.StableVersion == w.versionWith("shop:1") })
				w.waitWeights(100, 0)
				w.get("shop", &ro)
				if err := cl.Delete(w.ctx, &ro); err != nil {
					t.Fatal(err)
				}
			}
			if !eventually(10*time.Second, func() bool { return slices.Contains(w.eventReasons(), "HandoverHeld") }) {
				t.Fatalf("no HandoverHeld event among %v", w.eventReasons())
			}
			time.Sleep(2 * time.Second) // a handover, had it not been held, would have begun by now
			w.get("shop", &ro)
			if view, err := View(&ro, time.Now()); err != nil || !strings.Contains(view.Message, "deleted; Deployment shop holds version") {
				t.Errorf("status while held: %q (%v), want it to say the handover is held", view.Message, err)
			}
			var dep appsv1.Deployment
			w.get("shop", &dep)
			if n := ptr.Deref(dep.Spec.Replicas, 1); n != 0 && tc.turnAway == rollout.Abort {
				t.Errorf("the Deployment holding the rolled-back template was scaled to %d", n)
			}
			w.get("shop", &ro) // still there, with its finalizer
			if w.selector("shop-stable") != w.versionWith("shop:1") {
				t.Errorf("the stable Service selects %q while the handover is held, want shop:1's pods", w.selector("shop-stable"))
			}
			w.waitWeights(100, 0)

			switch tc.release {
			case "force":
				w.updateRollout(func(ro *v1alpha1.Rollout) { ro.Annotations = map[string]string{HandoverAnnotation: "force"} })
			case "stable gone": // as a foreground deletion's garbage collection would
				var rs appsv1.ReplicaSet
				w.get("shop-"+w.versionWith("shop:1"), &rs)
				if err := cl.Delete(w.ctx, &rs); err != nil {
					t.Fatal(err)
				}
			default:
				w.setImage("shop:1")
			}
			if !eventually(20*time.Second, func() bool {
				return apierrors.IsNotFound(cl.Get(w.ctx, types.NamespacedName{Namespace: w.ns, Name: "shop"}, &ro))
			}) {
				t.Fatalf("the Rollout is still there 20 s after the handover was released")
			}
			w.get("shop", &dep)
			if n := ptr.Deref(dep.Spec.Replicas, 1); n != 4 {
				t.Errorf("the Deployment has %d replicas after the handover, want 4", n)
			}
			if tc.release == "stable gone" {
				w.expectEvents("HandoverForced")
			}
		})
	}
}

// A verdict the analyses reached since the controller last looked is applied before the handover,
// so a canary whose analysis failed is held back even when the Rollout is deleted in between. The
// test drives the reconciler itself, one reconcile at a time, so that nothing looks at the Rollout
// between the failed measurement and the deletion.
func TestAVerdictReachedJustBeforeTheDeletionIsAppliedBeforeTheHandover(t *testing.T) {
	t.Parallel()
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"errors": 0.5}`)
	}))
	t.Cleanup(web.Close)
	w := newWorld(t)
	w.app("shop:1")
	w.rollout(canarySteps(weight(25), v1alpha1.CanaryStep{Analysis: &v1alpha1.AnalysisStep{Templates: []string{"errors"}}}, weight(100)),
		&v1alpha1.Analysis{Templates: []v1alpha1.AnalysisTemplate{{
			Name: "errors",
			Metrics: []v1alpha1.AnalysisMetric{{
				Name:             "errors",
				Web:              &v1alpha1.WebMetric{URL: web.URL, JSONPath: "$.errors"},
				Interval:         &metav1.Duration{Duration: 100 * time.Millisecond},
				Count:            5,
				SuccessCondition: "result < 0.05",
			}},
		}}})
	w.updateRollout(func(ro *v1alpha1.Rollout) { ro.Spec.WorkloadRef.ScaleDown = "onsuccess" })
	s := w.stepped()
	s.until("the first version to be stable", healthy)
	w.setImage("shop:2")
	s.until("the analysis step", func(ro *v1alpha1.Rollout) bool { return ro.Status.CurrentStepIndex == 1 })
	if !eventually(20*time.Second, func() bool { return s.verdict() == rollout.Fail }) {
		t.Fatalf("the analysis reached no failure: %s", s.verdict())
	}
	var ro v1alpha1.Rollout
	w.get("shop", &ro)
	if ro.Status.Phase != "Progressing" {
		t.Fatalf("phase %s before the deletion: something looked at the Rollout, want it Progressing", ro.Status.Phase)
	}
	if err := cl.Delete(w.ctx, &ro); err != nil {
		t.Fatal(err)
	}
	got := s.until("the handover to be held", func(ro *v1alpha1.Rollout) bool {
		c := meta.FindStatusCondition(ro.Status.Conditions, HandoverCondition)
		return c != nil && c.Reason == "HandoverHeld"
	})
	if got.Status.Phase != "Degraded" {
		t.Errorf("phase %s after the last look, want Degraded", got.Status.Phase)
	}
	w.waitWeights(100, 0)
}

// stepped is a Reconciler the test drives itself: nothing looks at the Rollout unless the test
// says so.
type stepped struct {
	w *world
	r *Reconciler
}

func (w *world) stepped() *stepped {
	r := &Reconciler{Client: cl, Logger: testLogger(w.t), Interval: time.Hour}
	w.t.Cleanup(r.Close)
	return &stepped{w: w, r: r}
}

func (s *stepped) key() types.NamespacedName {
	return types.NamespacedName{Namespace: s.w.ns, Name: "shop"}
}

// until reconciles the Rollout until ok holds for it, and not once more.
func (s *stepped) until(what string, ok func(ro *v1alpha1.Rollout) bool) *v1alpha1.Rollout {
	s.w.t.Helper()
	var ro v1alpha1.Rollout
	if !eventually(60*time.Second, func() bool {
		if err := cl.Get(s.w.ctx, s.key(), &ro); err == nil && ok(&ro) {
			return true
		}
		if _, err := s.r.Reconcile(s.w.ctx, ctrl.Request{NamespacedName: s.key()}); err != nil {
			s.w.t.Logf("reconcile: %v", err) // the stand-in kubelet has not caught up yet: again
		}
		return false
	}) {
		s.w.t.Fatalf("waiting for %s: rollout is phase=%s step=%d message=%q", what, ro.Status.Phase, ro.Status.CurrentStepIndex, ro.Status.Message)
	}
	return &ro
}

// verdict is the worst verdict the Rollout's running checks have in memory, without a reconcile.
func (s *stepped) verdict() rollout.VerdictPhase {
	var ro v1alpha1.Rollout
	s.w.get("shop", &ro)
	st, _, err := stateOf(&ro)
	if err != nil {
		s.w.t.Fatal(err)
	}
	s.r.mu.Lock()
	j := s.r.judges[s.key()]
	s.r.mu.Unlock()
	if j == nil {
		return ""
	}
	out := rollout.Running
	for _, v := range j.checks.Verdicts(ro.Name, st) {
		if v.Phase == rollout.Fail {
			return v.Phase
		}
	}
	return out
}
