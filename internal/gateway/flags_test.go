package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

const flagService = `
services:
  - name: shop
    stickiness: {header: X-User}
    versions:
      - {name: v1, endpoints: ["{{up}}"]}
    traffic: [{version: v1, weight: 100}]
`

// A gateway-evaluated flag: the upstream sees the variant of the request's user in the flag's header
// (never the client's own), and each request is measured under its user's variant.
func TestRequestFlagsHeaderAndMeasurement(t *testing.T) {
	var seen = make(chan string, 1000)
	up := newUpstream(t, "up", func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("X-Flag-Checkout")
		if r.Header.Get("X-Flag-Checkout") == "on" {
			w.WriteHeader(http.StatusInternalServerError) // the new checkout is broken
		}
	})
	f := newFixture(t, flagService, up)
	f.gw.SetFlags(map[string][]RequestFlag{"shop": {{
		Key: "checkout", Header: "X-Flag-Checkout", Measured: true, Variants: []string{"off", "on"},
		Variant: func(key string, _ *http.Request) (string, bool) {
			if key == "" {
				return "", false
			}
			if strings.HasSuffix(key, "7") {
				return "on", true
			}
			return "off", true
		},
	}}})
	for i := range 100 {
		f.get(t, "/", fmt.Sprintf("X-User: u%d", i), "X-Flag-Checkout: forged")
	}
	f.get(t, "/", "X-Flag-Checkout: forged") // no user: no variant, and the forged header is dropped
	on, off := 0, 0
	for range 101 {
		switch v := <-seen; v {
		case "on":
			on++
		case "off":
			off++
		case "":
		default:
			t.Fatalf("the upstream saw the client's own flag header %q", v)
		}
	}
	if on != 10 || off != 90 {
		t.Fatalf("variants seen upstream: on %d, off %d; want 10 and 90", on, off)
	}
	now := time.Now()
	sOn := f.reg.Window(FlagSeriesPrefix+"checkout", "on", 0, now.Add(-time.Minute), now.Add(time.Second))
	sOff := f.reg.Window(FlagSeriesPrefix+"checkout", "off", 0, now.Add(-time.Minute), now.Add(time.Second))
	if sOn.Requests != 10 || sOn.Errors != 10 || sOff.Requests != 90 || sOff.Errors != 0 {
		t.Fatalf("measured per variant: on %d requests %d errors, off %d requests %d errors; want 10/10 and 90/0",
			sOn.Requests, sOn.Errors, sOff.Requests, sOff.Errors)
	}
}

// VersionFor places a key exactly as a request with that sticky key is placed.
func TestVersionForMatchesPlacement(t *testing.T) {
	v1, v2 := newUpstream(t, "v1", nil), newUpstream(t, "v2", nil)
	f := newFixture(t, `
services:
  - name: shop
    stickiness: {header: X-User}
    versions:
      - {name: v1, endpoints: ["{{v1}}"]}
      - {name: v2, endpoints: ["{{v2}}"]}
    traffic: [{version: v1, weight: 70}, {version: v2, weight: 30}]
`, v1, v2)
	for i := range 200 {
		key := fmt.Sprintf("user-%d", i)
		want, ok := f.gw.VersionFor("shop", key)
		if !ok {
			t.Fatal("VersionFor: no answer for a sticky service")
		}
		if _, got := f.get(t, "/", "X-User: "+key); got != want {
			t.Fatalf("%s: VersionFor says %s, the gateway sent it to %s", key, want, got)
		}
	}
	if _, ok := f.gw.VersionFor("nope", "u"); ok {
		t.Fatal("VersionFor answered for an unknown service")
	}
}
