package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollector(t *testing.T) {
	r, _ := newTestRegistry()
	s := r.Series("shop", "v2", Primary)
	for range 3 {
		s.Begin()
	}
	s.End(Observation{Code: 200, Duration: 3 * time.Millisecond, End: t0, BytesIn: 100, BytesOut: 1000})
	s.End(Observation{Code: 503, Duration: 40 * time.Millisecond, End: t0, BytesOut: 10})
	s.End(Observation{Code: 0, Duration: 2 * time.Second, End: t0, Fault: FaultTimeout, BytesIn: 5})
	s.Begin() // still in flight
	m := r.Series("shop", "v2", Mirror)
	m.Begin()
	m.End(Observation{Code: 200, Duration: 7 * time.Millisecond, End: t0})

	// A pedantic registry also checks that Collect matches Describe.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(r)
	want := `
# HELP aviary_request_bytes_total Request body bytes read from clients.
# TYPE aviary_request_bytes_total counter
aviary_request_bytes_total{role="mirror",service="shop",version="v2"} 0
aviary_request_bytes_total{role="primary",service="shop",version="v2"} 105
# HELP aviary_request_duration_seconds Time from request arrival to the end of the response body.
# TYPE aviary_request_duration_seconds histogram
aviary_request_duration_seconds_bucket{role="mirror",service="shop",version="v2",le="0.005"} 0
aviary_request_duration_seconds_bucket{role="mirror",service="shop",version="v2",le="0.01"} 1
aviary_request_duration_seconds_bucket{role="mirror",service="shop",version="v2",le="0.025"} 1
aviary_request_duration_seconds_bucket{role="mirror",service="shop",version="v2",le="0.05"} 1
aviary_request_duration_seconds_bucket{role="mirror",service="shop",version="v2",le="0.1"} 1
aviary_request_duration_seconds_bucket{role="mirror",service="shop",version="v2",le="0.25"} 1
aviary_request_duration_seconds_bucket{role="mirror",service="shop",version="v2",le="0.5"} 1
aviary_request_duration_seconds_bucket{role="mirror",service="shop",version="v2",le="1"} 1
aviary_request_duration_seconds_bucket{role="mirror",service="shop",version="v2",le="2.5"} 1
aviary_request_duration_seconds_bucket{role="mirror",service="shop",version="v2",le="5"} 1
aviary_request_duration_seconds_bucket{role="mirror",service="shop",version="v2",le="10"} 1
aviary_request_duration_seconds_bucket{role="mirror",service="shop",version="v2",le="30"} 1
aviary_request_duration_seconds_bucket{role="mirror",service="shop",version="v2",le="60"} 1
aviary_request_duration_seconds_bucket{role="mirror",service="shop",version="v2",le="+Inf"} 1
aviary_request_duration_seconds_sum{role="mirror",service="shop",version="v2"} 0.007
aviary_request_duration_seconds_count{role="mirror",service="shop",version="v2"} 1
aviary_request_duration_seconds_bucket{role="primary",service="shop",version="v2",le="0.005"} 1
aviary_request_duration_seconds_bucket{role="primary",service="shop",version="v2",le="0.01"} 1
aviary_request_duration_seconds_bucket{role="primary",service="shop",version="v2",le="0.025"} 1
aviary_request_duration_seconds_bucket{role="primary",service="shop",version="v2",le="0.05"} 2
aviary_request_duration_seconds_bucket{role="primary",service="shop",version="v2",le="0.1"} 2
aviary_request_duration_seconds_bucket{role="primary",service="shop",version="v2",le="0.25"} 2
aviary_request_duration_seconds_bucket{role="primary",service="shop",version="v2",le="0.5"} 2
aviary_request_duration_seconds_bucket{role="primary",service="shop",version="v2",le="1"} 2
aviary_request_duration_seconds_bucket{role="primary",service="shop",version="v2",le="2.5"} 3
aviary_request_duration_seconds_bucket{role="primary",service="shop",version="v2",le="5"} 3
aviary_request_duration_seconds_bucket{role="primary",service="shop",version="v2",le="10"} 3
aviary_request_duration_seconds_bucket{role="primary",service="shop",version="v2",le="30"} 3
aviary_request_duration_seconds_bucket{role="primary",service="shop",version="v2",le="60"} 3
aviary_request_duration_seconds_bucket{role="primary",service="shop",version="v2",le="+Inf"} 3
aviary_request_duration_seconds_sum{role="primary",service="shop",version="v2"} 2.043
aviary_request_duration_seconds_count{role="primary",service="shop",version="v2"} 3
# HELP aviary_request_errors_total Failed requests by kind: 5xx (upstream answered 5xx), connect, timeout, gateway (the gateway failed it).
# TYPE aviary_request_errors_total counter
aviary_request_errors_total{kind="5xx",role="mirror",service="shop",version="v2"} 0
aviary_request_errors_total{kind="5xx",role="primary",service="shop",version="v2"} 1
aviary_request_errors_total{kind="connect",role="mirror",service="shop",version="v2"} 0
aviary_request_errors_total{kind="connect",role="primary",service="shop",version="v2"} 0
aviary_request_errors_total{kind="gateway",role="mirror",service="shop",version="v2"} 0
aviary_request_errors_total{kind="gateway",role="primary",service="shop",version="v2"} 0
aviary_request_errors_total{kind="timeout",role="mirror",service="shop",version="v2"} 0
aviary_request_errors_total{kind="timeout",role="primary",service="shop",version="v2"} 1
# HELP aviary_requests_in_flight Requests begun and not yet ended.
# TYPE aviary_requests_in_flight gauge
aviary_requests_in_flight{role="mirror",service="shop",version="v2"} 0
aviary_requests_in_flight{role="primary",service="shop",version="v2"} 1
# HELP aviary_requests_total Requests proxied, by exact HTTP status sent to the client (0: none sent).
# TYPE aviary_requests_total counter
aviary_requests_total{code="0",role="primary",service="shop",version="v2"} 1
aviary_requests_total{code="200",role="mirror",service="shop",version="v2"} 1
aviary_requests_total{code="200",role="primary",service="shop",version="v2"} 1
aviary_requests_total{code="503",role="primary",service="shop",version="v2"} 1
# HELP aviary_response_bytes_total Response body bytes written to clients.
# TYPE aviary_response_bytes_total counter
aviary_response_bytes_total{role="mirror",service="shop",version="v2"} 0
aviary_response_bytes_total{role="primary",service="shop",version="v2"} 1010
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(r); err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %v", problems, err)
	}

	// Forgotten versions are no longer exported.
	r.Forget("shop", "v2")
	if n := testutil.CollectAndCount(r); n != 0 {
		t.Errorf("%d metrics left after Forget, want 0", n)
	}
}

// TestScrapeOverHTTP reads the exposition the way Prometheus does.
func TestScrapeOverHTTP(t *testing.T) {
	r, _ := newTestRegistry()
	s := r.Series("shop", "v1", Primary)
	s.Begin()
	s.End(Observation{Code: 200, Duration: time.Millisecond, End: t0, BytesOut: 42})
	reg := prometheus.NewRegistry()
	reg.MustRegister(r)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read scrape: %v", err)
	}
	for _, line := range []string{
		`aviary_requests_total{code="200",role="primary",service="shop",version="v1"} 1`,
		`aviary_response_bytes_total{role="primary",service="shop",version="v1"} 42`,
		`aviary_request_duration_seconds_count{role="primary",service="shop",version="v1"} 1`,
	} {
		if !strings.Contains(string(body), line+"\n") {
			t.Errorf("scrape lacks %s", line)
		}
	}
}
