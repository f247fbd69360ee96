package server_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// The gateway is not ready before every actively checked endpoint has had its first check, and an
// endpoint whose first check fails gets no traffic: no 502 at start from an endpoint that was down
// from the beginning.
func TestNotReadyBeforeTheFirstHealthChecks(t *testing.T) {
	release := make(chan struct{})
	var badHits atomic.Int64
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		badHits.Add(1)
		http.Error(w, "down", http.StatusBadGateway)
	}))
	t.Cleanup(bad.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	a := start(t, shop{v1: []string{upstream(t, "v1"), bad.URL},
		service: "healthCheck: {path: /healthz, interval: 1h, timeout: 1m, unhealthyThreshold: 3}"}.YAML(), false)

	readyz := func() int { code, _ := a.do("GET", "http://"+a.admin+"/readyz"); return code }
	if code := readyz(); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while a first health check is still running: %d, want 503", code)
	}
	close(release)
	eventually(t, 10*time.Second, "/readyz to answer 200 once the first checks are done", func() bool {
		return readyz() == http.StatusOK
	})
	a.expectServedBy("v1", 20)
	if n := badHits.Load(); n != 0 {
		t.Errorf("the endpoint whose first check failed got %d requests, want 0", n)
	}
}
