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
