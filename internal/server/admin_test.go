package server_test

import (
	"bufio"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The admin listener answers probes, exposes per-version metrics, and describes the services: their
// versions, weights and endpoint health.
func TestAdminAPI(t *testing.T) {
	v1, v2 := upstream(t, "v1"), deadURL(t)
	a := start(t, shop{v1: []string{v1}, v2: []string{v2}, w1: 100, w2: 0,
		service: "healthCheck: {interval: 50ms, timeout: 1s, unhealthyThreshold: 1}"}.YAML(), false)

	t.Run("probes", func(t *testing.T) {
		if code, body := a.do("GET", "http://"+a.admin+"/healthz"); code != http.StatusOK {
			t.Errorf("GET /healthz: %d %s", code, body)
		}
		// Ready once the endpoints have had their first health checks.
		eventually(t, 5*time.Second, "GET /readyz to answer 200", func() bool {
			code, _ := a.do("GET", "http://"+a.admin+"/readyz")
			return code == http.StatusOK
		})
	})

	t.Run("metrics count requests per version", func(t *testing.T) {
		a.expectServedBy("v1", 1)
		const want = `aviary_requests_total{code="200",role="primary",service="shop",version="v1"} 1`
		var metrics string
		// The gateway records a request as its handler returns, which may be just after the client
		// has the answer.
		eventually(t, 5*time.Second, "the request to be counted", func() bool {
			_, metrics = a.do("GET", "http://"+a.admin+"/metrics")
			return hasLine(metrics, want)
		})
	})

	t.Run("services with weights and endpoint health", func(t *testing.T) {
		var got struct {
			Services []serviceStatus `json:"services"`
		}
		eventually(t, 5*time.Second, "the health check to find v2's endpoint down", func() bool {
			if code := a.adminJSON("GET", "/api/v1/services", &got); code != http.StatusOK {
				t.Fatalf("GET /api/v1/services: %d", code)
			}
			return len(got.Services) == 1 && len(got.Services[0].Versions) == 2 &&
				got.Services[0].Versions[1].Healthy == 0
		})
		shop := got.Services[0]
		want := []versionStatus{
			{Name: "v1", Weight: 100, Healthy: 1, Endpoints: []endpointStatus{{URL: v1, Available: true, ActiveHealth: "healthy"}}},
			{Name: "v2", Weight: 0, Healthy: 0, Endpoints: []endpointStatus{{URL: v2, Available: false, ActiveHealth: "unhealthy"}}},
		}
		if shop.Name != "shop" || shop.Stable != "v1" || !reflect.DeepEqual(shop.Versions, want) {
			t.Errorf("GET /api/v1/services:\n got %+v\nwant name shop, stable v1, versions %+v", shop, want)
		}
	})

	t.Run("an unknown service is 404 with a message", func(t *testing.T) {
		var got struct {
			Error string `json:"error"`
		}
		code := a.adminJSON("GET", "/api/v1/services/nope", &got)
		if code != http.StatusNotFound || !strings.Contains(got.Error, `nope`) {
			t.Errorf("GET /api/v1/services/nope: %d %q, want 404 and a message naming nope", code, got.Error)
		}
	})
}

// serviceStatus is GET /api/v1/services/{name} as a user reads it.
type serviceStatus struct {
	Name     string          `json:"name"`
	Stable   string          `json:"stableVersion"`
	Versions []versionStatus `json:"versions"`
}

type versionStatus struct {
	Name      string           `json:"name"`
	Weight    int              `json:"weight"`
	Healthy   int              `json:"healthyEndpoints"`
	Endpoints []endpointStatus `json:"endpoints"`
}

type endpointStatus struct {
	URL          string `json:"url"`
	Available    bool   `json:"available"`
	ActiveHealth string `json:"activeHealth"`
}

// hasLine reports whether text has a line equal to line.
func hasLine(text, line string) bool {
	s := bufio.NewScanner(strings.NewReader(text))
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		if s.Text() == line {
			return true
		}
	}
	return false
}
