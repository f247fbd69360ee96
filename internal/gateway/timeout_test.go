package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/metrics"
)

// An endpoint that does not answer within timeouts.responseHeader gets the client a 504, measured as a
// timeout of that version.
func TestProxyResponseHeaderTimeoutIs504(t *testing.T) {
	release := make(chan struct{})
	up := newUpstream(t, "v1", func(w http.ResponseWriter, r *http.Request) { <-release })
	t.Cleanup(func() { close(release) }) // runs before the upstream's Close, which waits for its handlers
	cfg, err := config.Parse([]byte(`
gateway: {timeouts: {responseHeader: 100ms}}
services: [{name: s, versions: [{name: v1, endpoints: ["` + up.url() + `"]}], passiveHealth: {consecutiveFailures: -1}}]`))
	if err != nil {
		t.Fatal(err)
	}
	reg := metrics.NewRegistry(metrics.Options{})
	gw := New(Options{Metrics: reg, Gateway: cfg.Gateway})
	t.Cleanup(gw.Close)
	gw.Apply(cfg.Services)
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/slow")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", resp.StatusCode)
	}
	s := reg.Window("s", "v1", metrics.Primary, time.Now().Add(-time.Minute), time.Now().Add(time.Minute))
	if s.Faults[metrics.FaultTimeout] != 1 || s.Errors != 1 {
		t.Errorf("timeout not measured: faults %v errors %d", s.Faults, s.Errors)
	}
}
