//go:build e2e

package analysis_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/promtest"
	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/test/e2e"
)

// TestAPrometheusMetricGatesARollout: a real Prometheus scrapes Aviary's own /metrics, and an
// analysis step asks it, through the prometheus provider, whether the canary is serving.
func TestAPrometheusMetricGatesARollout(t *testing.T) {
	t.Parallel()
	promAddr := promtest.FreeAddress(t)
	a := startWith(t, e2e.Upstream(t, "v1", 0), e2e.Upstream(t, "v2", 0), fmt.Sprintf(`
analysis:
  templates:
    - name: serving
      minimum: {duration: 1s, requests: 1}
      metrics:
        - name: canary-rps
          prometheus:
            address: "http://%s"
            query: 'sum(rate(aviary_requests_total{service="{{service}}", version="{{version}}", code="200"}[10s]))'
          initialDelay: 10s   # Prometheus scrapes its first samples ~5 s after it starts
          interval: 2s
          count: 3
          successCondition: "result > 1"
          consecutiveErrorLimit: 10
`, promAddr), "[serving]")
	promtest.StartAt(t, promAddr, a.Admin)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.load(ctx, 100)
	time.Sleep(2 * time.Second)
	a.StartRollout("shop", "v2")
	st := a.WaitFor("shop", 90*time.Second, e2e.Ended)
	if st.Phase != rollout.Healthy || st.StableVersion != "v2" {
		t.Fatalf("phase %s, stable %s: %s", st.Phase, st.StableVersion, st.Message)
	}
	resp, err := http.Get(a.Admin + "/api/v1/events?service=shop&limit=100")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `"AnalysisPassed"`) || !strings.Contains(string(body), "canary-rps") {
		t.Errorf("no AnalysisPassed event naming the metric: %s", body)
	}
}
