package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/fakellm"
	"aviary.dev/aviary/internal/llm"
	"aviary.dev/aviary/internal/metrics"
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

// An LLM exchange carries the variants its user had, so that a flag rollout of an LLM service is
// judged on time to first token, tokens and cost per variant.
func TestLLMRecordsCarryTheUsersFlagVariants(t *testing.T) {
	up := httptest.NewServer(fakellm.New(fakellm.Options{OutputTokens: 5}))
	t.Cleanup(up.Close)
	cfg, err := config.Parse([]byte(`
services:
  - name: chat
    llm: {api: openai}
    stickiness: {header: X-User}
    versions: [{name: v1, endpoints: ["` + up.URL + `"]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	rec := &records{got: make(chan struct{}, 16)}
	gw := New(Options{Gateway: defaultGateway(t), Metrics: metrics.NewRegistry(metrics.Options{}), LLM: rec})
	t.Cleanup(gw.Close)
	gw.Apply(cfg.Services)
	gw.SetFlags(map[string][]RequestFlag{"chat": {{Key: "prompt-v2", Measured: true, Variants: []string{"a", "b"},
		Variant: func(string, *http.Request) (string, bool) { return "b", true }}}})
	front := httptest.NewServer(gw)
	t.Cleanup(front.Close)
	req, _ := http.NewRequest(http.MethodPost, front.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-User", "u1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	r := rec.wait(t)
	if len(r.Flags) != 1 || r.Flags[0] != (llm.FlagVariant{Flag: "prompt-v2", Variant: "b"}) {
		t.Fatalf("the LLM record's flags: %+v", r.Flags)
	}
}
