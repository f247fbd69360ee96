package replica

import (
	"slices"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"
)

func TestReadyEndpointsAreTheReadyAddressesOnTheHTTPPort(t *testing.T) {
	slice := func(ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) discoveryv1.EndpointSlice {
		return discoveryv1.EndpointSlice{Ports: ports, Endpoints: eps}
	}
	ep := func(ready *bool, addrs ...string) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: addrs, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
	}
	port := func(name string, p int32) discoveryv1.EndpointPort {
		return discoveryv1.EndpointPort{Name: ptr.To(name), Port: ptr.To(p)}
	}
	got := ReadyEndpoints([]discoveryv1.EndpointSlice{
		slice([]discoveryv1.EndpointPort{port("metrics", 9090), port("http", 8080)},
			ep(ptr.To(true), "10.0.0.2"),
			ep(ptr.To(false), "10.0.0.3"), // not ready: left out
			ep(nil, "10.0.0.4")),          // unknown: ready, as the API asks
		slice([]discoveryv1.EndpointPort{port("web", 80)}, ep(ptr.To(true), "fd00::5"), ep(ptr.To(true), "10.0.0.2")),
		slice(nil, ep(ptr.To(true), "10.0.0.9")), // no port: nothing to send to
	})
	want := []string{"http://10.0.0.2:80", "http://10.0.0.2:8080", "http://10.0.0.4:8080", "http://[fd00::5]:80"}
	if !slices.Equal(got, want) {
		t.Errorf("ReadyEndpoints = %v, want %v", got, want)
	}
}
