package k8s

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"
)

// The replicas of a gateway fleet are the endpoints on its admin port that are ready, or still
// serving while they terminate (their last counts are worth reading); a slice without the admin port
// names none.
func TestFleetReplicasFromAnEndpointSlice(t *testing.T) {
	ep := func(ip string, ready, serving, terminating *bool, pod string) discoveryv1.Endpoint {
		e := discoveryv1.Endpoint{Addresses: []string{ip},
			Conditions: discoveryv1.EndpointConditions{Ready: ready, Serving: serving, Terminating: terminating}}
		if pod != "" {
			e.TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: pod}
		}
		return e
	}
	yes, no := ptr.To(true), ptr.To(false)
	sl := &discoveryv1.EndpointSlice{
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(8080))}, {Name: ptr.To(AdminPortName), Port: ptr.To(int32(9090))}},
		Endpoints: []discoveryv1.Endpoint{
			ep("10.0.0.1", yes, yes, no, "gw-a"),
			ep("10.0.0.2", nil, nil, nil, ""),    // conditions unknown: ready, as the API says
			ep("10.0.0.3", no, no, no, "gw-c"),   // starting
			ep("10.0.0.4", no, yes, yes, "gw-d"), // draining
			ep("10.0.0.5", no, no, yes, "gw-e"),  // terminating, no longer serving
		},
	}
	var got []string
	for _, r := range sliceReplicas(sl) {
		got = append(got, r.Name+" "+r.URL)
	}
	want := []string{"gw-a http://10.0.0.1:9090", "10.0.0.2:9090 http://10.0.0.2:9090", "gw-d http://10.0.0.4:9090"}
	if !slices.Equal(got, want) {
		t.Errorf("replicas %q, want %q", got, want)
	}
	sl.Ports = sl.Ports[:1]
	if r := sliceReplicas(sl); len(r) != 0 {
		t.Errorf("a slice without the %q port gave replicas %v", AdminPortName, r)
	}
}
