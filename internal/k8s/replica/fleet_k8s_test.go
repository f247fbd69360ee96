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
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/client-go/rest"

	"aviary.dev/aviary/internal/k8s"
	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/k8s/fleettest"
	"aviary.dev/aviary/internal/k8s/k8stest"
	"aviary.dev/aviary/internal/polltest"
	"aviary.dev/aviary/internal/rollout"
)

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

func TestASpecTheReplicaRefusesLeavesTheRolloutServedAsItLastWas(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	f.version("shop:1", "v1", 1)
	f.app("shop:1")
	f.rollout(steps(weight(50), pauseStep()), `{"match": {"pathPrefix": "/"}}`)
	f.controller()
	f.waitFor("the first version to be stable", func(ro *v1alpha1.Rollout) bool { return ro.Status.Phase == "Healthy" })
	r := f.replica("a")
	f.waitServes("v1", nil, r)

	// The API server takes spec.gateway as any object; the config's validation refuses it.
	f.updateRollout(func(ro *v1alpha1.Rollout) {
		ro.Spec.Gateway = &apiextensionsv1.JSON{Raw: []byte(`{"match": {"pathPrefix": "shop"}}`)}
	})
	var rz readyz
	polltest.Wait(t, 30*time.Second, "the replica to refuse the new spec", func() bool {
		var err error
		rz, _, err = readyzOf(r)
		return err == nil && len(rz.Source.Rollouts) == 1 && rz.Source.Rollouts[0].Error != ""
	})
	if ro := rz.Source.Rollouts[0]; !ro.Served || !strings.Contains(ro.Error, "spec.gateway.match.pathPrefix") {
		t.Errorf("/readyz says %+v; want it served as it last was, with the field", ro)
	}
	if got := rolloutState(t, r, "last_good"); got != "1" {
		t.Errorf(`aviary_source_rollouts{state="last_good"} is %q`, got)
	}
	f.waitServes("v1", nil, r)

	f.updateRollout(func(ro *v1alpha1.Rollout) {
		ro.Spec.Gateway = &apiextensionsv1.JSON{Raw: []byte(`{"match": {"pathPrefix": "/shop"}}`)}
	})
	polltest.Wait(t, 30*time.Second, "the fixed spec served", func() bool { return rolloutState(t, r, "current") == "1" })
	if got, err := askPath(r, "/shop/cart", nil); err != nil || version(got) != "v1" {
		t.Errorf("/shop/cart went to %q (err %v), want v1", got, err)
	}
	if _, err := askPath(r, "/elsewhere", nil); err == nil || !strings.Contains(err.Error(), "status 404") {
		t.Errorf("a request outside the new match: %v, want a 404", err)
	}
}
