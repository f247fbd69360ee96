package gateway

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/metrics"
)

// TestPlaceKeyAgreesWithRequests: the version PlaceKey gives a key is the version a request with
// that sticky key is sent to, for every key, so a flag's canary users are the gateway's.
func TestPlaceKeyAgreesWithRequests(t *testing.T) {
	cfg, err := config.Parse([]byte(`services:
  - name: shop
    stickiness: {header: X-User-Id}
    traffic: [{version: v1, weight: 70}, {version: v2, weight: 30}]
    versions: [{name: v1, endpoints: ["http://127.0.0.1:1/"]}, {name: v2, endpoints: ["http://127.0.0.1:2/"]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	gw := New(Options{Gateway: defaultGateway(t), Metrics: metrics.NewRegistry(metrics.Options{})})
	defer gw.Close()
	gw.Apply(cfg.Services)
	svc := gw.snap.Load().services[0]
	canary := 0
	for i := range 2000 {
		key := fmt.Sprintf("user-%d", i)
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("X-User-Id", key)
		want := svc.choose(httptest.NewRecorder(), r).name
		got, stable, ok := gw.PlaceKey("shop", key)
		if !ok || got != want || stable != (got == "v1") {
			t.Fatalf("PlaceKey(shop, %s) = %s, stable %v, %v; a request goes to %s", key, got, stable, ok, want)
		}
		if !stable {
			canary++
		}
	}
	if canary == 0 || canary == 2000 {
		t.Errorf("%d of 2000 keys on the canary, want some of them", canary)
	}
	if _, _, ok := gw.PlaceKey("nope", "user-1"); ok {
		t.Error("PlaceKey of an unknown service is ok")
	}
}
