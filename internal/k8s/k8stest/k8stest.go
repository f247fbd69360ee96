// Package k8stest starts the control plane the Kubernetes-mode tests run against: a real
// kube-apiserver and etcd (built by scripts/k8s-assets.sh, found through KUBEBUILDER_ASSETS) started
// by envtest, with Aviary's Rollout CRD and the Gateway API's HTTPRoute CRD installed. It also
// holds StandInKubelet, the one part those tests fake: no kubelet runs, so pods never start.
package k8stest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Start starts kube-apiserver and etcd with the CRDs installed. Call stop in TestMain whatever
// happens (a deferred call survives a panicking test), or they outlive the test binary.
func Start() (cfg *rest.Config, stop func() error, err error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, nil, errors.New("KUBEBUILDER_ASSETS is not set: run scripts/test-k8s.sh, which builds kube-apiserver and etcd and sets it")
	}
	_, here, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(here), "..", "..", "..")
	list := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api")
	list.Dir = root
	gw, err := list.Output()
	if err != nil {
		return nil, nil, fmt.Errorf("find the Gateway API module: %w", err)
	}
	env := &envtest.Environment{
		CRDDirectoryPaths: []string{
			filepath.Join(root, "deploy", "crds"),
			filepath.Join(strings.TrimSpace(string(gw)), "config", "crd", "standard", "gateway.networking.k8s.io_httproutes.yaml"),
		},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err = env.Start()
	if err != nil {
		_ = env.Stop()
		return nil, nil, fmt.Errorf("start kube-apiserver and etcd: %w", err)
	}
	return cfg, env.Stop, nil
}

// StandInKubelet plays the ReplicaSet and Deployment controllers and the kubelet, which do not run
// here: every ReplicaSet and Deployment of ns is given as many ready, available pods as its spec
// asks for, until ctx ends.
func StandInKubelet(ctx context.Context, c client.Client, ns string) {
	StandInKubeletWith(ctx, c, ns, nil)
}

// StandInKubeletWith is StandInKubelet whose ready pods per ReplicaSet ready says (at most its
// spec's; nil: all of them), for tests of pods that are slow to start.
func StandInKubeletWith(ctx context.Context, c client.Client, ns string, ready func(rs *appsv1.ReplicaSet) int32) {
	for ctx.Err() == nil {
		var list appsv1.ReplicaSetList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err == nil {
			for i := range list.Items {
				rs := &list.Items[i]
				n := ptr.Deref(rs.Spec.Replicas, 0)
				up := n
				if ready != nil {
					up = min(n, ready(rs))
				}
				st := appsv1.ReplicaSetStatus{Replicas: n, ReadyReplicas: up, AvailableReplicas: up,
					FullyLabeledReplicas: n, ObservedGeneration: rs.Generation}
				if equality.Semantic.DeepEqual(rs.Status, st) {
					continue
				}
				rs.Status = st
				if err := c.Status().Update(ctx, rs); err != nil && !apierrors.IsConflict(err) && ctx.Err() == nil {
					fmt.Fprintln(os.Stderr, "stand-in kubelet:", err)
				}
			}
		}
		var deps appsv1.DeploymentList
		if err := c.List(ctx, &deps, client.InNamespace(ns)); err == nil {
			for i := range deps.Items {
				d := &deps.Items[i]
				n := ptr.Deref(d.Spec.Replicas, 1)
				st := appsv1.DeploymentStatus{Replicas: n, ReadyReplicas: n, AvailableReplicas: n, UpdatedReplicas: n,
					ObservedGeneration: d.Generation}
				if equality.Semantic.DeepEqual(d.Status, st) {
					continue
				}
				d.Status = st
				if err := c.Status().Update(ctx, d); err != nil && !apierrors.IsConflict(err) && ctx.Err() == nil {
					fmt.Fprintln(os.Stderr, "stand-in kubelet:", err)
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WriteKubeconfig writes a kubeconfig for cfg's API server into dir, with ns as its context's
// namespace, for commands run as a user runs them.
func WriteKubeconfig(cfg *rest.Config, ns, dir string) (string, error) {
	c := clientcmdapi.NewConfig()
	c.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	c.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	c.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin", Namespace: ns}
	c.CurrentContext = "envtest"
	path := filepath.Join(dir, "kubeconfig")
	return path, clientcmd.WriteToFile(*c, path)
}
