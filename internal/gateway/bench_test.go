package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/metrics"
)

func benchGateway(b testing.TB, extra string) (*Gateway, *http.Request) {
	cfg, err := config.Parse([]byte(`
services:
  - name: shop
    versions:
      - {name: v1, endpoints: ["http://127.0.0.1:1", "http://127.0.0.1:2"]}
      - {name: v2, endpoints: ["http://127.0.0.1:3"]}
    traffic: [{version: v1, weight: 90}, {version: v2, weight: 10}]
` + extra))
	if err != nil {
		b.Fatal(err)
	}
	g := New(Options{Gateway: defaultGateway(b), Metrics: metrics.NewRegistry(metrics.Options{})})
	b.Cleanup(g.Close)
	g.Apply(cfg.Services)
	r := httptest.NewRequest(http.MethodGet, "/cart?tenant=acme", nil)
	r.Header.Set("X-User-Id", "user-42")
	r.Header.Set("Cookie", "session=abc; beta=0")
	return g, r
}

// benchmarkRouting measures the routing decision of a request: service, version and endpoint. It
// must not allocate.
func benchmarkRouting(b *testing.B, extra string) {
	g, r := benchGateway(b, extra)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		svc := g.snap.Load().find(r)
		v, ep, _ := g.pickEndpoint(svc, svc.choose(w, r), 1)
		if ep == nil || v == nil {
			b.Fatal("no endpoint")
		}
	}
}

func BenchmarkRoutingWeights(b *testing.B) { benchmarkRouting(b, "") }

func BenchmarkRoutingSticky(b *testing.B) {
	benchmarkRouting(b, "    stickiness: {header: X-User-Id}\n")
}

func BenchmarkRoutingRoutesAndSticky(b *testing.B) {
	benchmarkRouting(b, `    stickiness: {cookie: session}
    routes:
      - {match: {header: {name: X-Canary, value: always}}, version: v2}
      - {match: {cookie: {name: beta, value: "1"}}, version: v2}
      - {match: {query: {name: tenant, regex: "beta-.*"}}, version: v2}
`)
}

// The routing decision allocates nothing, whatever the rules.
func TestRoutingDoesNotAllocate(t *testing.T) {
	for name, extra := range map[string]string{
		"weights": "",
		"sticky":  "    stickiness: {header: X-User-Id}\n",
		"routes": `    stickiness: {cookie: session}
    routes: [{match: {cookie: {name: beta, value: "1"}}, version: v2}, {match: {query: {name: tenant, prefix: "x"}}, version: v2}]
`,
	} {
		g, r := benchGateway(t, extra)
		w := httptest.NewRecorder()
		allocs := testing.AllocsPerRun(1000, func() {
			svc := g.snap.Load().find(r)
			g.pickEndpoint(svc, svc.choose(w, r), 1)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per routing decision, want 0", name, allocs)
		}
	}
}

// BenchmarkProxy sends requests through the gateway to a real upstream over loopback, for profiles of
// the whole request path (go test -bench Proxy -cpuprofile cpu.out).
func BenchmarkProxy(b *testing.B) {
	up := newUpstream(b, "v1", nil)
	f := newFixture(b, `services: [{name: s, versions: [{name: v1, endpoints: ["{{v1}}"]}]}]`, up)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(f.srv.URL + "/")
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
