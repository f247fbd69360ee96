package replica

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"

	"aviary.dev/aviary/internal/k8s"
)

func TestReadyEndpointsAreTheReadyAddressesOnTheHTTPPort(t *testing.T) {
	slice := func(ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) discoveryv1.EndpointSlice {
		return discoveryv1.EndpointSlice{Ports: ports, Endpoints: eps}
	}
	ep := func(ready *bool, addrs ...string) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: addrs, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
	}
	withPod := func(e discoveryv1.Endpoint, pod string) discoveryv1.Endpoint {
		e.TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: pod}
		return e
	}
	port := func(name string, p int32) discoveryv1.EndpointPort {
		return discoveryv1.EndpointPort{Name: ptr.To(name), Port: ptr.To(p)}
	}
	got := ReadyEndpoints([]discoveryv1.EndpointSlice{
		slice([]discoveryv1.EndpointPort{port("metrics", 9090), port("http", 8080)},
			withPod(ep(ptr.To(true), "10.0.0.2"), "shop-abc-1"),
			ep(ptr.To(false), "10.0.0.3"), // not ready: left out
			ep(nil, "10.0.0.4")),          // unknown: ready, as the API asks
		slice([]discoveryv1.EndpointPort{port("web", 80)}, ep(ptr.To(true), "fd00::5"), ep(ptr.To(true), "10.0.0.2")),
		slice(nil, ep(ptr.To(true), "10.0.0.9")), // no port: nothing to send to
	})
	want := []k8s.Endpoint{{URL: "http://10.0.0.2:80"}, {URL: "http://10.0.0.2:8080", Pod: "shop-abc-1"},
		{URL: "http://10.0.0.4:8080"}, {URL: "http://[fd00::5]:80"}}
	if !slices.Equal(got, want) {
		t.Errorf("ReadyEndpoints = %v, want %v", got, want)
	}
}
