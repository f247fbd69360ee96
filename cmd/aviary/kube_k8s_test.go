//go:build k8s

package main

// The CLI in Kubernetes mode against a real kube-apiserver and etcd (internal/k8s/k8stest), with
// the controller running in this process: the commands are run as a user runs them, with a
// kubeconfig file. Run with scripts/test-k8s.sh.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"aviary.dev/aviary/internal/k8s"
	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/k8s/k8stest"
	"aviary.dev/aviary/internal/polltest"
	"aviary.dev/aviary/internal/rollout"
)

var kubeCfg *rest.Config

func TestMain(m *testing.M) {
	cfg, stop, err := k8stest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kubeCfg = cfg
	code := func() int {
		defer func() { _ = stop() }() // even when a test panics
		return m.Run()
	}()
	os.Exit(code)
}

func TestTheCLIWatchesAndSteersARolloutInACluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := client.New(kubeCfg, client.Options{Scheme: k8s.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("cli-%d", time.Now().UnixNano()%100000) // -count=N runs it again
	create := func(obj client.Object) {
		t.Helper()
		if err := c.Create(ctx, obj); err != nil {
			t.Fatalf("create %s: %v", obj.GetName(), err)
		}
	}
	create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	go k8stest.StandInKubelet(ctx, c, ns)
	labels := map[string]string{"app": "shop"}
	create(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "shop", Image: "shop:1"}}}}}})
	create(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80}}}})
	half := int32(50)
	// No traffic router: the weight is approximated by replicas behind the one Service.
	create(&v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec: v1alpha1.RolloutSpec{WorkloadRef: v1alpha1.WorkloadRef{Name: "shop"}, StableService: "shop",
			Strategy: v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{Steps: []v1alpha1.CanaryStep{
				{SetWeight: &half}, {Pause: &v1alpha1.PauseStep{}}}}}}})
	go func() {
		_ = k8s.Run(ctx, k8s.Options{Config: kubeCfg, Namespace: ns, MetricsAddr: "0", ProbeAddr: "0", Interval: 100 * time.Millisecond,
			Logger: slog.New(slog.DiscardHandler)})
	}()
	kubeconfig, err := k8stest.WriteKubeconfig(kubeCfg, "default", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (string, error) {
		t.Helper()
		out, errOut, err := execute(t, newRoot(), "", append(args, "--kubeconfig", kubeconfig, "-n", ns)...)
		return out + errOut, err
	}
	status := func() rollout.Status {
		t.Helper()
		out, err := cli("rollout", "status", "shop", "-o", "json")
		var st rollout.Status
		if err == nil {
			err = json.Unmarshal([]byte(out), &st)
		}
		if err != nil {
			t.Fatalf("rollout status -o json: %v: %s", err, out)
		}
		return st
	}
	waitPhase := func(phase rollout.Phase, weight int) rollout.Status {
		t.Helper()
		ro := &v1alpha1.Rollout{}
		if !polltest.Until(30*time.Second, 50*time.Millisecond, func() bool {
			err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "shop"}, ro)
			return err == nil && ro.Status.Phase == string(phase) && int(ro.Status.CanaryWeight) == weight
		}) {
			t.Fatalf("waiting for %s at %d%%: %+v", phase, weight, ro.Status)
		}
		return status()
	}

	first := waitPhase(rollout.Healthy, 0).StableVersion
	var dep appsv1.Deployment
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "shop"}, &dep); err != nil {
		t.Fatal(err)
	}
	dep.Spec.Template.Spec.Containers[0].Image = "shop:2"
	if err := c.Update(ctx, &dep); err != nil {
		t.Fatal(err)
	}
	st := waitPhase(rollout.Paused, 50)
	if st.StableVersion != first || st.CanaryVersion == "" || st.CurrentStepIndex != 1 {
		t.Fatalf("status %+v", st)
	}
	out, err := cli("rollout", "status", "shop")
	t.Logf("aviary rollout status shop -n %s:\n%s", ns, out)
	if err != nil || !strings.Contains(out, "Paused") || !strings.Contains(out, "approximated by replica counts") || !strings.Contains(out, st.CanaryVersion) || !strings.Contains(out, "RolloutStarted") {
		t.Errorf("rollout status: %v\n%s", err, out)
	}
	// Without a router the pods are the weight: one of two is the canary's.
	var svc corev1.Service
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "shop"}, &svc); err != nil {
		t.Fatal(err)
	}
	if _, pinned := svc.Spec.Selector[k8s.HashLabel]; pinned || svc.Spec.Selector[k8s.RolloutLabel] != "shop" {
		t.Errorf("the Service should select every pod of the Rollout: %v", svc.Spec.Selector)
	}
	for hash, want := range map[string]int32{first: 1, st.CanaryVersion: 1} {
		var rs appsv1.ReplicaSet
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "shop-" + hash}, &rs); err != nil || ptr.Deref(rs.Spec.Replicas, 0) != want {
			t.Errorf("ReplicaSet of %s: %d replicas, want %d (err %v)", hash, ptr.Deref(rs.Spec.Replicas, 0), want, err)
		}
	}

	if out, err := cli("rollout", "promote", "shop"); err != nil {
		t.Fatalf("promote: %v\n%s", err, out)
	}
	if st := waitPhase(rollout.Healthy, 0); st.StableVersion == first {
		t.Errorf("after promote the stable is still %s", first)
	}
	out, err = cli("rollout", "history", "shop")
	if err != nil || !strings.Contains(out, first) || !strings.Contains(out, st.CanaryVersion) {
		t.Errorf("history: %v\n%s", err, out)
	}
	out, err = cli("rollout", "abort", "shop")
	if err == nil || !strings.Contains(out+err.Error(), "no rollout in flight") {
		t.Errorf("abort with nothing in flight should be refused with the reason: %v\n%s", err, out)
	}
	out, err = cli("rollout", "start", "shop", "--version", "x")
	if err == nil || !strings.Contains(err.Error(), "kubectl") {
		t.Errorf("start in Kubernetes mode should say how a rollout starts there: %v\n%s", err, out)
	}
}
