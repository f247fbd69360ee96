package ofrep

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricsAreBounded: keys a client makes up are counted under "other", not as series of their
// own; known flags are counted by key and reason, errors by code, requests by endpoint and status.
func TestMetricsAreBounded(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	h, _ := newHandler(t, Options{Metrics: m})
	for i := range 50 {
		call(t, h, "POST", fmt.Sprintf("/ofrep/v1/evaluate/flags/made-up-%d", i), `{}`, nil)
	}
	call(t, h, "POST", "/ofrep/v1/evaluate/flags/bool-flag", `{}`, nil)
	call(t, h, "POST", "/ofrep/v1/evaluate/flags", `{}`, nil)
	if n := testutil.CollectAndCount(m.evaluations); n > 8 {
		t.Errorf("%d evaluation series, want one for other and one per flag and reason (at most 8)", n)
	}
	if got := testutil.ToFloat64(m.evaluations.WithLabelValues(otherFlag, "ERROR")); got != 50 {
		t.Errorf("other/ERROR = %v, want the 50 made-up keys", got)
	}
	if got := testutil.ToFloat64(m.errors.WithLabelValues(otherFlag, "FLAG_NOT_FOUND")); got != 50 {
		t.Errorf("errors other/FLAG_NOT_FOUND = %v, want 50", got)
	}
	if got := testutil.ToFloat64(m.evaluations.WithLabelValues("bool-flag", "STATIC")); got != 2 {
		t.Errorf("bool-flag/STATIC = %v, want 2 (one alone, one in the bulk)", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("flag", "404")); got != 50 {
		t.Errorf("requests flag/404 = %v, want 50", got)
	}
}
