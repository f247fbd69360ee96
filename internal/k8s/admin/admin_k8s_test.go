//go:build k8s

package admin

// The admin listener against a real kube-apiserver and etcd (envtest, started by
// k8stest.Start; run with scripts/test-k8s.sh): one controller for the whole package watches
// every namespace, as `aviary controller` does by default, with its admin listener on a free
// loopback port and both tokens. Each test makes Rollouts of its own in namespaces of its own.
// Only the kubelet is played (k8stest.StandInKubelet): pods never run here.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"aviary.dev/aviary/internal/api"
	"aviary.dev/aviary/internal/k8s"
	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/k8s/k8stest"
	"aviary.dev/aviary/internal/polltest"
	"aviary.dev/aviary/internal/rollout"
)

const (
	adminToken = "kdash-admin-token"
	readToken  = "kdash-read-token"
)

var (
	cfg      *rest.Config
	cl       client.Client
	adminURL string // the controller's admin listener
)

func TestMain(m *testing.M) {
	flag.Parse() // for testing.Verbose
	var stop func() error
	var err error
	cfg, stop, err = k8stest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer func() {
			if err := stop(); err != nil {
				fmt.Fprintln(os.Stderr, "stop the control plane:", err)
			}
		}()
		if cl, err = client.New(cfg, client.Options{Scheme: k8s.Scheme()}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		addr, err := freeAddr()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		adminURL = "http://" + addr
		log := slog.New(slog.DiscardHandler)
		if testing.Verbose() {
			log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- k8s.Run(ctx, k8s.Options{Config: cfg, MetricsAddr: "0", ProbeAddr: "0", Interval: 100 * time.Millisecond, Logger: log,
				Extra: Add(Options{Addr: addr, Tokens: api.Tokens{Admin: adminToken, Read: readToken}, Logger: log,
					CommandTimeout: 20 * time.Second})})
		}()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				fmt.Fprintln(os.Stderr, "controller:", err)
			}
		}()
		if !polltest.Until(60*time.Second, 50*time.Millisecond, func() bool {
			resp, err := http.Get(adminURL + "/healthz")
			if err == nil {
				resp.Body.Close()
			}
			return err == nil && resp.StatusCode == http.StatusOK
		}) {
			fmt.Fprintln(os.Stderr, "the admin listener did not come up at", adminURL)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

var spaces atomic.Int32

// app makes a namespace named after the test with a Deployment web (image web:1), its stable and
// canary Services, an HTTPRoute, and a Rollout web that stops at 30% until promoted; it returns
// the namespace.
func app(t *testing.T, ctx context.Context, prefix string) string {
	t.Helper()
	w30 := int32(30)
	return appWith(t, ctx, prefix, v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{Steps: []v1alpha1.CanaryStep{
		{SetWeight: &w30}, {Pause: &v1alpha1.PauseStep{}}}}}, nil)
}

// appWith is app whose Rollout has this strategy and analysis.
func appWith(t *testing.T, ctx context.Context, prefix string, strategy v1alpha1.Strategy, analysis *v1alpha1.Analysis) string {
	t.Helper()
	ns := fmt.Sprintf("%s-%d", prefix, spaces.Add(1))
	create(t, ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	go k8stest.StandInKubelet(ctx, cl, ns)
	labels := map[string]string{"app": "web"}
	create(t, ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}}}}})
	for _, name := range []string{"web-stable", "web-canary"} {
		create(t, ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80}}}})
	}
	create(t, ctx, &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "gateway"}}},
			Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
				BackendObjectReference: gatewayv1.BackendObjectReference{Name: "web-stable", Port: ptr.To[gatewayv1.PortNumber](80)}}}}}}}})
	create(t, ctx, &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: v1alpha1.RolloutSpec{WorkloadRef: v1alpha1.WorkloadRef{Name: "web"}, StableService: "web-stable", CanaryService: "web-canary",
			TrafficRouting: &v1alpha1.TrafficRouting{GatewayAPI: &v1alpha1.GatewayAPIRouting{HTTPRoute: "web"}},
			Strategy:       strategy, Analysis: analysis}})
	return ns
}

func create(t *testing.T, ctx context.Context, obj client.Object) {
	t.Helper()
	if err := cl.Create(ctx, obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// setImage changes the Deployment's template, which starts a rollout.
func setImage(t *testing.T, ctx context.Context, ns, image string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var d appsv1.Deployment
		if err := cl.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web"}, &d); err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = image
		return cl.Update(ctx, &d)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// call sends a request to the admin API with token, and decodes a 200 answer into out.
func call(t *testing.T, method, path, token string, body, out any) (int, string) {
	t.Helper()
	return callAt(t, adminURL, method, path, token, body, out)
}

// callAt is call to the admin listener at base.
func callAt(t *testing.T, base, method, path, token string, body, out any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
	return resp.StatusCode, string(data)
}

// rolloutPath is the API path of the Rollout ns/web: its name URL-encoded, as the dashboard sends it.
func rolloutPath(ns string) string { return "/api/v1/services/" + url.PathEscape(ns+"/web") }

// waitStatus polls the Rollout's status through the API until ok holds.
func waitStatus(t *testing.T, ns, what string, ok func(rollout.Status) bool) rollout.Status {
	t.Helper()
	var st rollout.Status
	var last string
	if !polltest.Until(60*time.Second, 50*time.Millisecond, func() bool {
		st = rollout.Status{}
		code, body := call(t, "GET", rolloutPath(ns)+"/rollout", readToken, nil, &st)
		last = fmt.Sprintf("%d %s", code, body)
		return code == http.StatusOK && ok(st)
	}) {
		t.Fatalf("waiting for %s of %s/web: the API last said %s", what, ns, last)
	}
	return st
}

func TestTheAPIListsTheRolloutsOfEveryNamespace(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, b := app(t, ctx, "list-a"), app(t, ctx, "list-b")
	for _, ns := range []string{a, b} {
		st := waitStatus(t, ns, "the first version to be stable", func(st rollout.Status) bool { return st.Phase == rollout.Healthy })
		if st.Service != ns+"/web" || st.StableVersion == "" {
			t.Errorf("%s: status %+v, want service %s/web with a stable version", ns, st, ns)
		}
	}
	var list struct {
		Services []struct {
			Name     string `json:"name"`
			Stable   string `json:"stableVersion"`
			Versions []struct {
				Name   string `json:"name"`
				Weight int    `json:"weight"`
			} `json:"versions"`
			Rollout *rollout.Status `json:"rollout"`
		} `json:"services"`
	}
	if code, body := call(t, "GET", "/api/v1/services", readToken, nil, &list); code != http.StatusOK {
		t.Fatalf("GET /api/v1/services: %d %s", code, body)
	}
	found := map[string]bool{}
	for _, s := range list.Services {
		if s.Name == a+"/web" || s.Name == b+"/web" {
			found[s.Name] = true
			if s.Rollout == nil || s.Rollout.Phase != rollout.Healthy || len(s.Versions) != 1 || s.Versions[0].Weight != 100 {
				t.Errorf("%s: %+v, want Healthy with its stable at 100%%", s.Name, s)
			}
		}
	}
	if len(found) != 2 {
		t.Errorf("GET /api/v1/services lists %+v, want %s/web and %s/web", list.Services, a, b)
	}
	// A name without its namespace, and a Rollout that is not there, are told apart.
	if code, body := call(t, "GET", "/api/v1/services/web/rollout", readToken, nil, nil); code != http.StatusBadRequest ||
		!strings.Contains(body, "NAMESPACE/NAME") {
		t.Errorf("a bare name: %d %s, want 400 naming NAMESPACE/NAME", code, body)
	}
	if code, body := call(t, "GET", "/api/v1/services/"+url.PathEscape(a+"/nope")+"/rollout", readToken, nil, nil); code != http.StatusNotFound {
		t.Errorf("a missing Rollout: %d %s, want 404", code, body)
	}
	// Starting and applying have Kubernetes forms, and the answer names them.
	if code, body := call(t, "POST", rolloutPath(a)+"/rollout", adminToken, map[string]string{"version": "x"}, nil); code != http.StatusBadRequest ||
		!strings.Contains(body, "kubectl set image") {
		t.Errorf("start: %d %s, want 400 saying kubectl set image", code, body)
	}
	var hist struct {
		History []struct {
			Revision int64  `json:"revision"`
			Stable   string `json:"stableVersion"`
		} `json:"history"`
	}
	if code, body := call(t, "GET", rolloutPath(a)+"/history", readToken, nil, &hist); code != http.StatusOK ||
		len(hist.History) != 1 || hist.History[0].Revision != 1 {
		t.Errorf("history: %d %s, want revision 1", code, body)
	}
}

func TestAReadTokenIsRefusedACommand(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := app(t, ctx, "read")
	waitStatus(t, ns, "the first version to be stable", func(st rollout.Status) bool { return st.Phase == rollout.Healthy })
	setImage(t, ctx, ns, "web:2")
	waitStatus(t, ns, "the canary at 30%", func(st rollout.Status) bool { return st.Phase == rollout.Paused && st.CanaryWeight == 30 })

	code, body := call(t, "POST", rolloutPath(ns)+"/rollout/abort", readToken, map[string]string{"reason": "no"}, nil)
	if code != http.StatusForbidden || !strings.Contains(body, "read token may only read") {
		t.Errorf("abort with the read token: %d %s, want 403", code, body)
	}
	code, body = call(t, "POST", rolloutPath(ns)+"/rollout/abort", "not-a-token", nil, nil)
	if code != http.StatusUnauthorized {
		t.Errorf("abort with a wrong token: %d %s, want 401", code, body)
	}
	var ro v1alpha1.Rollout
	if err := cl.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web"}, &ro); err != nil {
		t.Fatal(err)
	}
	if _, ok := ro.Annotations[v1alpha1.CommandAnnotation]; ok || ro.Status.LastCommand != nil || ro.Status.Phase != "Paused" {
		t.Errorf("the refused command reached the Rollout: annotations %v, last command %+v, phase %s",
			ro.Annotations, ro.Status.LastCommand, ro.Status.Phase)
	}
	if code, _ := call(t, "GET", "/api/v1/whoami", readToken, nil, nil); code != http.StatusOK {
		t.Errorf("whoami with the read token: %d", code)
	}
}

// stream reads the admin API's event stream into a channel until ctx ends.
func stream(t *testing.T, ctx context.Context, query string) <-chan rollout.Event {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", adminURL+"/api/v1/events/stream"+query, nil)
	req.Header.Set("Authorization", "Bearer "+readToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("event stream: %d", resp.StatusCode)
	}
	out := make(chan rollout.Event, 100)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var e rollout.Event
			if json.Unmarshal([]byte(data), &e) == nil {
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// next waits for the stream's first event that ok accepts.
func next(t *testing.T, evs <-chan rollout.Event, what string, ok func(rollout.Event) bool) rollout.Event {
	t.Helper()
	deadline := time.After(60 * time.Second)
	var seen []string
	for {
		select {
		case e, open := <-evs:
			if !open {
				t.Fatalf("the event stream ended before %s; it sent %v", what, seen)
			}
			if ok(e) {
				return e
			}
			seen = append(seen, fmt.Sprintf("%s %s %s", e.Service, e.Kind, e.Phase))
		case <-deadline:
			t.Fatalf("no %s on the event stream; it sent %v", what, seen)
		}
	}
}

func TestAnAdminTokensAbortReachesTheRolloutAndTheStreamShowsIt(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := app(t, ctx, "abort")
	svc := ns + "/web"
	first := waitStatus(t, ns, "the first version to be stable", func(st rollout.Status) bool { return st.Phase == rollout.Healthy }).StableVersion
	evs := stream(t, ctx, "?service="+url.QueryEscape(svc))

	setImage(t, ctx, ns, "web:2")
	started := next(t, evs, "the rollout's start", func(e rollout.Event) bool { return e.Kind == "RolloutStarted" })
	if started.Service != svc || started.Stable != first || started.Canary == "" || started.Canary == first {
		t.Errorf("RolloutStarted: %+v, want %s from %s to a new version", started, svc, first)
	}
	waitStatus(t, ns, "the canary at 30%", func(st rollout.Status) bool { return st.Phase == rollout.Paused && st.CanaryWeight == 30 })

	// A command that does not fit the phase: the controller's refusal, as the API's answer.
	code, body := call(t, "POST", rolloutPath(ns)+"/rollout/retry", adminToken, nil, nil)
	if code != http.StatusConflict || !strings.Contains(body, "retry") {
		t.Errorf("retry while paused: %d %s, want 409 with the controller's refusal", code, body)
	}

	var st rollout.Status
	code, body = call(t, "POST", rolloutPath(ns)+"/rollout/abort", adminToken, map[string]string{"reason": "error budget"}, &st)
	if code != http.StatusOK || st.Phase != rollout.Degraded || st.CanaryWeight != 0 || st.Service != svc {
		t.Fatalf("abort with the admin token: %d %s, want 200 and the Rollout Degraded at 0%%", code, body)
	}
	aborted := next(t, evs, "the abort", func(e rollout.Event) bool { return e.Kind == "Aborted" })
	if aborted.Phase != rollout.Degraded || aborted.Weight != 0 || aborted.By != "api" || aborted.Seq <= started.Seq {
		t.Errorf("Aborted: %+v, want phase Degraded at 0%% by api, after the start (seq %d)", aborted, started.Seq)
	}
	var ro v1alpha1.Rollout
	err := cl.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web"}, &ro)
	if err != nil {
		t.Fatal(err)
	}
	if ro.Status.Phase != "Degraded" || ro.Status.LastCommand == nil || ro.Status.LastCommand.Kind != "abort" ||
		ro.Status.LastCommand.By != "api" {
		t.Errorf("the Rollout: phase %s, last command %+v; want Degraded by the API's abort", ro.Status.Phase, ro.Status.LastCommand)
	}
	// The HTTPRoute sends everything back to the stable Service.
	if !polltest.Until(30*time.Second, 50*time.Millisecond, func() bool {
		var hr gatewayv1.HTTPRoute
		if err := cl.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web"}, &hr); err != nil {
			return false
		}
		for _, b := range hr.Spec.Rules[0].BackendRefs {
			if b.Name == "web-canary" && ptr.Deref(b.Weight, 1) != 0 {
				return false
			}
		}
		return true
	}) {
		t.Error("the HTTPRoute still sends traffic to the canary after the abort")
	}
	// The events are kept for the page that opens later.
	var list struct {
		Events []rollout.Event `json:"events"`
	}
	call(t, "GET", "/api/v1/events?last=10&service="+url.QueryEscape(svc), readToken, nil, &list)
	if n := len(list.Events); n < 2 || list.Events[n-1].Kind != "Aborted" {
		t.Errorf("GET /api/v1/events?last=10: %+v, want the start and the abort", list.Events)
	}
	// A replica that starts later reads them from the Rollout's Kubernetes Events (recorded a
	// moment after the status).
	var past []rollout.Event
	if !polltest.Until(30*time.Second, 50*time.Millisecond, func() bool {
		past, err = pastEvents(ctx, cl, ns)
		return err == nil && len(past) > 0 && past[len(past)-1].Kind == "Aborted"
	}) {
		t.Fatalf("the Kubernetes Events of %s: %+v (%v), want the abort last", svc, past, err)
	}
	if past[0].Service != svc || past[0].Kind != "RolloutStarted" || !strings.Contains(past[len(past)-1].Reason, "error budget") {
		t.Errorf("the Kubernetes Events of %s: %+v, want from RolloutStarted to the abort with its reason", svc, past)
	}
}

// TestAReplicaThatDoesNotLeadServesTheDashboardAndItsCommands: a second controller that waits
// for a Lease someone else holds never reconciles, yet its admin listener lists the Rollouts from
// its own cache, and a promote sent to it is carried out by the controller that acts.
func TestAReplicaThatDoesNotLeadServesTheDashboardAndItsCommands(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := app(t, ctx, "standby")
	waitStatus(t, ns, "the first version to be stable", func(st rollout.Status) bool { return st.Phase == rollout.Healthy })
	setImage(t, ctx, ns, "web:2")
	waitStatus(t, ns, "the canary at 30%", func(st rollout.Status) bool { return st.Phase == rollout.Paused && st.CanaryWeight == 30 })

	// The Lease is held by another replica for an hour.
	holder, now := "another-replica", metav1.NewMicroTime(time.Now())
	create(t, ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: ns + "-lease", Namespace: ns},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: ptr.To[int32](3600), AcquireTime: &now, RenewTime: &now}})
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	elected := make(chan struct{})
	go func() {
		done <- k8s.Run(rctx, k8s.Options{Config: cfg, MetricsAddr: "0", ProbeAddr: "0", LeaderElection: true,
			LeaderElectionID: ns + "-lease", LeaderElectionNamespace: ns, Logger: slog.New(slog.DiscardHandler),
			Elected: func() { close(elected) },
			Extra:   Add(Options{Addr: addr, Tokens: api.Tokens{Admin: adminToken, Read: readToken}, Logger: slog.New(slog.DiscardHandler)})})
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("the standby controller: %v", err)
		}
	}()
	standby := "http://" + addr
	if !polltest.Until(60*time.Second, 50*time.Millisecond, func() bool {
		resp, err := http.Get(standby + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	}) {
		t.Fatal("the standby's admin listener did not come up")
	}
	var st rollout.Status
	if !polltest.Until(60*time.Second, 50*time.Millisecond, func() bool {
		st = rollout.Status{}
		code, _ := callAt(t, standby, "GET", rolloutPath(ns)+"/rollout", readToken, nil, &st)
		return code == http.StatusOK && st.Phase == rollout.Paused
	}) {
		t.Fatalf("the standby's API: %+v, want the Rollout paused at 30%%", st)
	}
	code, body := callAt(t, standby, "POST", rolloutPath(ns)+"/rollout/promote", adminToken, map[string]any{"full": true, "reason": "looks good"}, &st)
	if code != http.StatusOK {
		t.Fatalf("promote through the standby: %d %s", code, body)
	}
	waitStatus(t, ns, "the promotion", func(st rollout.Status) bool { return st.Phase == rollout.Healthy && st.CanaryVersion == "" })
	select {
	case <-elected:
		t.Error("the standby was elected: the test did not test a replica that does not lead")
	default:
	}
}

// TestTheLeadersAPIShowsTheFailingMetricOfARollback: a canary whose web metric (a real HTTP
// endpoint answering a 30% error ratio) fails its analysis is rolled back; the admin API of the
// controller that judged it gives the run with the failing metric, its measurements and the
// judge's words, and its status the verdict.
func TestTheLeadersAPIShowsTheFailingMetricOfARollback(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	metric := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ratio": 0.3}`)
	}))
	defer metric.Close()
	w30, w100 := int32(30), int32(100)
	ns := appWith(t, ctx, "judged", v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{Steps: []v1alpha1.CanaryStep{
		{SetWeight: &w30}, {Analysis: &v1alpha1.AnalysisStep{Templates: []string{"errors"}}}, {SetWeight: &w100}}}},
		&v1alpha1.Analysis{Templates: []v1alpha1.AnalysisTemplate{{Name: "errors", Metrics: []v1alpha1.AnalysisMetric{{
			Name: "error-ratio", Web: &v1alpha1.WebMetric{URL: metric.URL, JSONPath: "$.ratio"},
			Interval: &metav1.Duration{Duration: time.Second}, Count: 5, SuccessCondition: "result < 0.05", FailureLimit: 1}}}}})
	waitStatus(t, ns, "the first version to be stable", func(st rollout.Status) bool { return st.Phase == rollout.Healthy })
	setImage(t, ctx, ns, "web:2")
	waitStatus(t, ns, "the rollback", func(st rollout.Status) bool { return st.Phase == rollout.Degraded })

	var an struct {
		Runs []struct {
			Service string `json:"service"`
			Verdict string `json:"verdict"`
			Metrics []struct {
				Metric       string `json:"metric"`
				Phase        string `json:"phase"`
				Text         string `json:"text"`
				Measurements []struct {
					Value *float64 `json:"value"`
				} `json:"measurements"`
			} `json:"metrics"`
		} `json:"runs"`
	}
	if code, body := call(t, "GET", rolloutPath(ns)+"/analysis", readToken, nil, &an); code != http.StatusOK || len(an.Runs) == 0 {
		t.Fatalf("analysis: %d %s, want the run", code, body)
	}
	run := an.Runs[len(an.Runs)-1]
	if run.Service != ns+"/web" || run.Verdict != "Fail" || len(run.Metrics) != 1 {
		t.Fatalf("the run: %+v, want %s/web failed on one metric", run, ns)
	}
	m := run.Metrics[0]
	if m.Metric != "error-ratio" || m.Phase != "Failed" || len(m.Measurements) < 2 || m.Measurements[0].Value == nil ||
		*m.Measurements[0].Value != 0.3 || m.Text == "" {
		t.Errorf("the failing metric: %+v, want error-ratio Failed with its 0.3 measurements and the judge's words", m)
	}
}
