package provider_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"aviary.dev/aviary/internal/analysis/provider"
)

// TestPrometheusByLabelReusesItsConnections: queries read one after another go over the
// connections already open. A client per query left each query's connection open, and a
// caller polling every few milliseconds (as a test waiting for a scrape does) filled
// Prometheus's connection limit, after which every query hung until its timeout.
func TestPrometheusByLabelReusesItsConnections(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[` +
			`{"metric":{"arm":"off"},"value":[1,"10"]},{"metric":{"arm":"on"},"value":[1,"13"]}]}}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	const queries = 50
	for i := 0; i < queries; i++ {
		v, err := provider.PrometheusByLabel(t.Context(), provider.Options{}, srv.URL, `sum by (arm) (x)`, "arm", time.Now(), 5*time.Second)
		if err != nil || v["on"] != 13 {
			t.Fatalf("query %d: %v, %v", i, v, err)
		}
	}
	if n := conns.Load(); n > 2 {
		t.Errorf("%d queries opened %d connections; want them to reuse one", queries, n)
	}
}
