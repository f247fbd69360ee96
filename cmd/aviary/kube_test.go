package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"aviary.dev/aviary/internal/k8s"
	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
)

// These tests need no cluster: they check how the flags choose a mode, a cluster and a
// namespace, and what the commands without a Kubernetes form say. The commands against a real
// API server are tested end to end in internal/k8s.

// hermetic makes the test's environment name no cluster: no $KUBECONFIG, no ~/.kube/config, not
// in a pod.
func hermetic(t *testing.T) {
	t.Helper()
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("AVIARY_SERVER", "")
}

// kubeconfig writes a kubeconfig whose cluster is server: its current context "a" has the
// namespace team-a, its context "b" none.
func kubeconfig(t *testing.T, server string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "config")
	body := `apiVersion: v1
kind: Config
current-context: a
contexts:
- name: a
  context: {cluster: c, user: u, namespace: team-a}
- name: b
  context: {cluster: c, user: u}
clusters:
- name: c
  cluster: {server: "` + server + `"}
users:
- name: u
  user: {}
`
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// deadServer is the URL of a server that no longer listens: a command that reaches for it
// fails at once, and its error says which rollout it was reading.
func deadServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}

func TestKubeModeOnlyWithAKubeFlag(t *testing.T) {
	hermetic(t)
	t.Setenv("KUBECONFIG", kubeconfig(t, deadServer(t))) // there, but not asked for
	api := newFakeAPI(t)

	out, err := run(t, "--server", api.url, "rollout", "status", "shop")
	if err != nil || !strings.Contains(out, "Service:  shop") {
		t.Fatalf("without a Kubernetes flag, status = %v, want the admin API's status:\n%s", err, out)
	}

	for _, flag := range [][]string{{"-n", "prod"}, {"--namespace", "prod"}, {"--context", "a"}, {"--kubeconfig", os.Getenv("KUBECONFIG")}} {
		_, err := run(t, append([]string{"rollout", "status", "shop"}, flag...)...)
		if err == nil || !strings.Contains(err.Error(), "read rollout ") {
			t.Errorf("with %v, status = %v, want it to read the Rollout from the cluster", flag, err)
		}
	}

	_, err = run(t, "--server", api.url, "rollout", "promote", "shop", "-n", "prod")
	if err == nil || !strings.Contains(err.Error(), "give one or the other") {
		t.Errorf("--server with -n = %v, want an error that asks for one of them", err)
	}
}

func TestKubeNamespaceDefaultsToTheContexts(t *testing.T) {
	hermetic(t)
	file := kubeconfig(t, deadServer(t))
	for _, tc := range []struct {
		name string
		o    kubeOptions
		env  string
		want string
	}{
		{"the current context's", kubeOptions{kubeconfig: file}, "", "team-a"},
		{"a context without one", kubeOptions{kubeconfig: file, context: "b"}, "", "default"},
		{"-n wins", kubeOptions{kubeconfig: file, namespace: "prod"}, "", "prod"},
		{"from $KUBECONFIG", kubeOptions{namespace: "prod"}, file, "prod"},
		{"from $KUBECONFIG with a context", kubeOptions{context: "a"}, file, "team-a"},
		{"--kubeconfig wins over $KUBECONFIG", kubeOptions{kubeconfig: file, context: "b"}, "/nowhere", "default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", tc.env)
			cfg, ns, err := tc.o.load()
			if err != nil {
				t.Fatal(err)
			}
			if ns != tc.want {
				t.Errorf("namespace = %q, want %q", ns, tc.want)
			}
			if !strings.HasPrefix(cfg.Host, "http://127.0.0.1:") {
				t.Errorf("config's host = %q, want the kubeconfig's cluster", cfg.Host)
			}
		})
	}

	// And the commands use it: they name the Rollout they read or steer.
	for _, args := range [][]string{
		{"rollout", "status", "shop", "--kubeconfig", file},
		{"rollout", "history", "shop", "--kubeconfig", file},
		{"rollout", "abort", "shop", "--kubeconfig", file},
	} {
		_, err := run(t, args...)
		if err == nil || !strings.Contains(err.Error(), "team-a/shop") || !strings.Contains(err.Error(), "check --kubeconfig and --context") {
			t.Errorf("%v = %v, want an error about team-a/shop that says what to check", args, err)
		}
	}
	_, err := run(t, "rollout", "status", "shop", "--kubeconfig", file, "--context", "b")
	if err == nil || !strings.Contains(err.Error(), "default/shop") {
		t.Errorf("status in context b = %v, want it to read default/shop", err)
	}
}

func TestNoKubeconfigSaysWhatToDo(t *testing.T) {
	hermetic(t)
	missing := filepath.Join(t.TempDir(), "no-such-config")
	noContext := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(noContext, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const advice = "set --kubeconfig or KUBECONFIG to a kubeconfig file, or run in a cluster"
	for _, tc := range []struct {
		name string
		env  string
		args []string
		want []string
	}{
		{"--kubeconfig", "", []string{"rollout", "status", "shop", "--kubeconfig", missing}, []string{"--kubeconfig " + missing, advice}},
		{"$KUBECONFIG", missing, []string{"rollout", "promote", "shop", "-n", "prod"}, []string{"KUBECONFIG=" + missing, advice}},
		{"nowhere", "", []string{"rollout", "status", "shop", "-n", "prod"}, []string{"no kubeconfig found", advice}},
		{"no current context", "", []string{"rollout", "status", "shop", "--kubeconfig", noContext}, []string{noContext, "pass --context"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", tc.env)
			_, err := run(t, tc.args...)
			wantError(t, tc.name, err, tc.want...)
		})
	}
}

// start, get services and apply have no Kubernetes form: they say what to do instead, before
// they look for a cluster.
func TestKubeModeRefusesWhatItCannotDo(t *testing.T) {
	hermetic(t)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"rollout", "start", "shop", "--version", "v2", "-n", "prod"},
			[]string{"in Kubernetes mode a rollout starts when the Deployment's template changes",
				"kubectl set image deployment/DEPLOYMENT CONTAINER=IMAGE -n prod", "aviary rollout status shop -n prod --watch"}},
		{[]string{"rollout", "start", "shop", "--context", "staging"},
			[]string{"kubectl set image deployment/DEPLOYMENT CONTAINER=IMAGE (DEPLOYMENT is the Rollout's spec.workloadRef.name)"}},
		{[]string{"get", "services", "-n", "prod"},
			[]string{"kubectl get rollouts.aviary.dev -n prod"}},
		{[]string{"apply", "-f", "shop.yaml", "--kubeconfig", "/nowhere"},
			[]string{"in Kubernetes mode Rollouts are Kubernetes resources: kubectl apply -f shop.yaml"}},
	} {
		_, err := run(t, tc.args...)
		wantError(t, fmt.Sprint(tc.args), err, tc.want...)
	}
}

func TestRolloutEventsAreTheLastOfThisRollout(t *testing.T) {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	ev := func(kind, name string, s int) eventsv1.Event {
		return eventsv1.Event{Reason: kind, Note: "note of " + kind, EventTime: metav1.NewMicroTime(at(s)),
			Regarding: corev1.ObjectReference{APIVersion: "aviary.dev/v1alpha1", Kind: "Rollout", Name: name}}
	}
	argo := ev("Argo", "shop", 50)
	argo.Regarding.APIVersion = "argoproj.io/v1alpha1"
	series := ev("Repeated", "shop", 1)
	series.Series = &eventsv1.EventSeries{Count: 3, LastObservedTime: metav1.NewMicroTime(at(40))}
	old := ev("Old", "shop", 0)
	old.EventTime = metav1.MicroTime{}
	old.DeprecatedLastTimestamp = metav1.NewTime(at(2))
	list := []eventsv1.Event{ev("E30", "shop", 30), series, ev("Cart", "cart", 35), argo, ev("E10", "shop", 10),
		old, ev("E20", "shop", 20), ev("E5", "shop", 5)}

	got := rolloutEvents("shop", list, 5)
	var kinds []string
	for _, e := range got {
		kinds = append(kinds, string(e.Kind))
		if e.Service != "shop" || e.Reason != "note of "+string(e.Kind) {
			t.Errorf("event %+v: want service shop and the Event's note as its reason", e)
		}
	}
	if s := strings.Join(kinds, " "); s != "E5 E10 E20 E30 Repeated" {
		t.Errorf("events = %s, want the last five of shop's, oldest first: E5 E10 E20 E30 Repeated", s)
	}
}

func TestHistoryListsTheRolloutsReplicaSets(t *testing.T) {
	ro := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "prod", UID: types.UID("ro-1")},
		Status: v1alpha1.RolloutStatus{StableVersion: "aaa", CanaryVersion: "bbb"}}
	rs := func(hash, rev string, owner types.UID, image string) appsv1.ReplicaSet {
		return appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: "shop-" + hash, Labels: map[string]string{k8s.HashLabel: hash},
				Annotations:     map[string]string{k8s.RevisionAnnotation: rev},
				OwnerReferences: []metav1.OwnerReference{{UID: owner, Controller: ptr.To(true), Kind: "Rollout", Name: "shop"}}},
			Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](2), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "app", Image: image}}}}},
			Status: appsv1.ReplicaSetStatus{ReadyReplicas: 1},
		}
	}
	revs := revisionsOf(ro, []appsv1.ReplicaSet{rs("bbb", "3", "ro-1", "shop:3"), rs("zzz", "9", "other", "x"),
		rs("aaa", "2", "ro-1", "shop:2"), rs("ccc", "1", "ro-1", "shop:1")})
	var got []string
	for _, r := range revs {
		got = append(got, r.Version+"/"+r.Role+"/"+strings.Join(r.Images, ","))
	}
	if s := strings.Join(got, " "); s != "ccc//shop:1 aaa/stable/shop:2 bbb/canary/shop:3" {
		t.Errorf("history = %s, want the Rollout's own ReplicaSets by revision with their roles", s)
	}
}

func TestCommandsComeFromTheCLIUser(t *testing.T) {
	if by := cliUser(); by != "cli" && !strings.HasPrefix(by, "cli:") {
		t.Errorf("cliUser() = %q, want cli:USER or cli", by)
	}
}
