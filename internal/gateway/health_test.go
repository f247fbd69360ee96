package gateway

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// An endpoint failing its active checks gets no traffic, and gets it again once the checks pass.
func TestActiveHealthEjectsAndReturns(t *testing.T) {
	var sick atomic.Bool
	sick.Store(true)
	good := newUpstream(t, "good", nil)
	bad := newUpstream(t, "bad", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && sick.Load() {
			http.Error(w, "sick", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "bad")
	})
	f := newFixture(t, `
services:
  - name: shop
    versions:
      - {name: v1, endpoints: ["{{good}}", "{{bad}}"]}
    traffic: [{version: v1, weight: 100}]
    healthCheck: {path: /healthz, interval: 50ms, timeout: 1s, healthyThreshold: 2, unhealthyThreshold: 2}
`, good, bad)

	waitFor(t, func() bool {
		before := bad.hits.Load()
		for i := 0; i < 20; i++ {
			if code, up := f.get(t, "/"); code != http.StatusOK || up != "good" {
				return false
			}
		}
		return bad.hits.Load() == before
	}, "the endpoint failing its checks to get no traffic")

	sick.Store(false)
	waitFor(t, func() bool {
		before := bad.hits.Load()
		for i := 0; i < 20; i++ {
			if code, _ := f.get(t, "/"); code != http.StatusOK {
				t.Fatalf("request failed with %d after recovery", code)
			}
		}
		return bad.hits.Load() > before
	}, "the recovered endpoint to get traffic again")
}

// A canary whose only endpoint is ejected hands its share to the stable version, and that is counted.
func TestFallbackToStableWhenCanaryHasNoHealthyEndpoint(t *testing.T) {
	v1 := newUpstream(t, "v1", nil)
	f := newFixture(t, `
services:
  - name: shop
    versions:
      - {name: v1, endpoints: ["{{v1}}"]}
      - {name: v2, endpoints: ["`+deadURL(t)+`"]}
    traffic: [{version: v1, weight: 50}, {version: v2, weight: 50}]
    passiveHealth: {consecutiveFailures: 1, baseEjection: 1m, maxEjection: 1m}
`, v1)

	for i := 0; i < 5; i++ {
		f.get(t, "/") // the first v2 requests may fail before v2's endpoint is ejected
	}
	waitFor(t, func() bool {
		for i := 0; i < 20; i++ {
			if code, up := f.get(t, "/"); code != http.StatusOK || up != "v1" {
				return false
			}
		}
		return true
	}, "20 consecutive requests answered 200 by v1")
	if n := testutil.ToFloat64(f.gw.counters.fallbacks.WithLabelValues("shop", "v2")); n <= 0 {
		t.Errorf("fallback counter for v2 = %v, want > 0", n)
	}
	if n := testutil.ToFloat64(f.gw.counters.fallbacks.WithLabelValues("shop", "v1")); n != 0 {
		t.Errorf("fallback counter for v1 = %v, want 0", n)
	}
}

// The stable version has nowhere to fall back to: with no healthy endpoint it answers 503 and says why.
func TestStableWithNoHealthyEndpointIs503(t *testing.T) {
	f := newFixture(t, `
services:
  - name: shop
    versions:
      - {name: v1, endpoints: ["`+deadURL(t)+`"]}
    traffic: [{version: v1, weight: 100}]
    passiveHealth: {consecutiveFailures: 1, baseEjection: 1m, maxEjection: 1m}
`)
	if code, _ := f.get(t, "/"); code != http.StatusBadGateway {
		t.Fatalf("first request to a dead endpoint: %d, want 502", code)
	}
	resp, err := f.srv.Client().Get(f.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("after ejection: %d %q, want 503", resp.StatusCode, body)
	}
	if !strings.Contains(string(body), "no healthy endpoint") {
		t.Errorf("503 body %q does not mention \"no healthy endpoint\"", body)
	}
}

// Health, the controller's read, counts what Services reports of each version's endpoints: an
// endpoint failing its active checks is neither available nor ready.
func TestHealthAgreesWithServices(t *testing.T) {
	good := newUpstream(t, "good", nil)
	bad := newUpstream(t, "bad", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "sick", http.StatusInternalServerError)
	})
	f := newFixture(t, `
services:
  - name: shop
    versions:
      - {name: v1, endpoints: ["{{good}}", "{{bad}}"]}
      - {name: v2, endpoints: ["{{good}}"]}
    traffic: [{version: v1, weight: 100}]
    healthCheck: {path: /healthz, interval: 50ms, timeout: 1s, healthyThreshold: 1, unhealthyThreshold: 1}
`, good, bad)

	want := map[string]VersionHealth{"v1": {Endpoints: 2, Available: 1, Ready: 1}, "v2": {Endpoints: 1, Available: 1, Ready: 1}}
	waitFor(t, func() bool {
		got := f.gw.Health("shop")
		return got["v1"] == want["v1"] && got["v2"] == want["v2"]
	}, "the failing endpoint to be counted out")
	got := f.gw.Health("shop")
	if len(got) != len(want) {
		t.Errorf("Health(shop) = %+v, want %+v", got, want)
	}
	for _, s := range f.gw.Services() {
		for _, v := range s.Versions {
			if h := got[v.Name]; h.Endpoints != len(v.Endpoints) || h.Available != v.Healthy || h.Ready != v.Ready {
				t.Errorf("version %s: Health %+v, Services %d endpoints, %d healthy, %d ready", v.Name, h, len(v.Endpoints), v.Healthy, v.Ready)
			}
		}
	}
	if h := f.gw.Health("nope"); h != nil {
		t.Errorf("Health of an unknown service = %+v, want nil", h)
	}
}
