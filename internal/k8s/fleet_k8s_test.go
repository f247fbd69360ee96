//go:build k8s

package k8s

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
)

// namespaced lists in one namespace: the test's, whatever other tests have made.
type namespaced struct {
	client.Client
	ns string
}

func (n namespaced) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return n.Client.List(ctx, list, append(opts, client.InNamespace(n.ns))...)
}

// The controller's /metrics say how much of the fleet the judge reads, per Rollout.
func TestFleetCoverageGauges(t *testing.T) {
	ctx := context.Background()
	ns := fmt.Sprintf("fleet-gauges-%d", worlds.Add(1))
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	ro := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec: v1alpha1.RolloutSpec{WorkloadRef: v1alpha1.WorkloadRef{Name: "shop"}, StableService: "shop-stable",
			Strategy: v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{Steps: []v1alpha1.CanaryStep{{Pause: &v1alpha1.PauseStep{}}}}}}}
	if err := cl.Create(ctx, ro); err != nil {
		t.Fatal(err)
	}
	ro.Status.Phase = "Progressing"
	ro.Status.Fleet = &v1alpha1.FleetStatus{Replicas: 4, Answered: 3, Ended: 1, Lost: 42, Message: "3 of 4 gateway replicas"}
	if err := cl.Status().Update(ctx, ro); err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	var r client.Reader = namespaced{cl, ns}
	c.c.Store(&r)
	want := `
# HELP aviary_rollout_fleet_lost_requests Estimated requests that gateway replicas served after their last answer and before they restarted or went away: not measured by the judge.
# TYPE aviary_rollout_fleet_lost_requests gauge
aviary_rollout_fleet_lost_requests{namespace="NS",service="shop"} 42
# HELP aviary_rollout_fleet_replicas Gateway replicas of the fleet a Rollout is routed through, at the judge's last look: answered (their counts were summed) or missing (left out of the look).
# TYPE aviary_rollout_fleet_replicas gauge
aviary_rollout_fleet_replicas{namespace="NS",service="shop",state="answered"} 3
aviary_rollout_fleet_replicas{namespace="NS",service="shop",state="missing"} 1
`
	want = strings.ReplaceAll(want, `"NS"`, `"`+ns+`"`)
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "aviary_rollout_fleet_replicas", "aviary_rollout_fleet_lost_requests"); err != nil {
		t.Fatal(err)
	}
}
