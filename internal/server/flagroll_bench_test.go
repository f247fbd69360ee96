package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/flags"
	"aviary.dev/aviary/internal/gateway"
	"aviary.dev/aviary/internal/metrics"
)

// benchmarkProxyFlags proxies one request at a time through the gateway to a real upstream, with
// the given flags evaluated per request (the flag header set and the request measured under its
// variant): the cost of gateway-evaluated flags is the difference from BenchmarkProxyNoFlags.
func benchmarkProxyFlags(b *testing.B, doc string, sfs []config.ServiceFlag) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer up.Close()
	cfg, err := config.Parse([]byte(`
services:
  - name: shop
    stickiness: {header: X-User}
    versions: [{name: v1, endpoints: ["` + up.URL + `"]}]
`))
	if err != nil {
		b.Fatal(err)
	}
	gw := gateway.New(gateway.Options{Gateway: cfg.Gateway, Metrics: metrics.NewRegistry(metrics.Options{})})
	defer gw.Close()
	gw.Apply(cfg.Services)
	if len(sfs) > 0 {
		set, err := flags.Parse([]byte(doc))
		if err != nil {
			b.Fatal(err)
		}
		set = set.WithOverlays(map[string]flags.Overlay{"rolled": {Service: "shop", Rollout: &flags.Rollout{Variant: "on", Percent: 30}}})
		ev := &flags.Evaluator{}
		var rfs []gateway.RequestFlag
		for _, sf := range sfs {
			f, _ := set.Flag(sf.Key)
			var variants []string
			for v := range f.Variants {
				variants = append(variants, v)
			}
			rfs = append(rfs, gateway.RequestFlag{Key: sf.Key, Header: sf.Header, Measured: true, Variants: variants,
				Variant: requestVariant(ev, func() *flags.Set { return set }, sf)})
		}
		gw.SetFlags(map[string][]gateway.RequestFlag{"shop": rfs})
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-User", "user-42")
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		gw.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}

const benchFlags = `{"flags": {
  "static": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"},
  "split": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
    "targeting": {"fractional": [["on", 20], ["off", 80]]}},
  "rolled": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}}}`

func BenchmarkProxyNoFlags(b *testing.B) { benchmarkProxyFlags(b, "", nil) }

// Three flags per request: a static one, a fractional split, and one in a flag rollout, each passed
// to the upstream in a header.
func BenchmarkProxyThreeFlags(b *testing.B) {
	benchmarkProxyFlags(b, benchFlags, []config.ServiceFlag{{Key: "static", Header: "X-F-Static"},
		{Key: "split", Header: "X-F-Split"}, {Key: "rolled", Header: "X-F-Rolled"}})
}

// BenchmarkRequestFlagsEval is the flags' own share of a request: the three flags of
// BenchmarkProxyThreeFlags evaluated for one user, without the proxying around them.
func BenchmarkRequestFlagsEval(b *testing.B) {
	set, err := flags.Parse([]byte(benchFlags))
	if err != nil {
		b.Fatal(err)
	}
	set = set.WithOverlays(map[string]flags.Overlay{"rolled": {Service: "shop", Rollout: &flags.Rollout{Variant: "on", Percent: 30}}})
	ev := &flags.Evaluator{}
	var fns []func(string, *http.Request) (string, bool)
	for _, k := range []string{"static", "split", "rolled"} {
		fns = append(fns, requestVariant(ev, func() *flags.Set { return set }, config.ServiceFlag{Key: k}))
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	b.ReportAllocs()
	for b.Loop() {
		for _, fn := range fns {
			if _, ok := fn("user-42", r); !ok {
				b.Fatal("no variant")
			}
		}
	}
}
