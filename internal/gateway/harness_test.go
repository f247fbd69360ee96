package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/metrics"
)

// upstream is a real HTTP server standing for one endpoint of a version. It answers with its name.
type upstream struct {
	name string
	srv  *httptest.Server
	hits atomic.Int64
}

func newUpstream(t testing.TB, name string, h http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{name: name}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			u.hits.Add(1)
		}
		w.Header().Set("X-Upstream", name)
		if h != nil {
			h(w, r)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) url() string { return u.srv.URL }

// deadURL is an address nothing listens on: connecting to it fails at once.
func deadURL(t testing.TB) string {
	t.Helper()
	s := httptest.NewServer(http.NotFoundHandler())
	u := s.URL
	s.Close()
	return u
}

// fixture is a gateway behind a real HTTP server.
type fixture struct {
	gw  *Gateway
	reg *metrics.Registry
	srv *httptest.Server
}

// newFixture parses a config (services only) and serves it. The YAML may use {{name}} to refer to an
// upstream's URL.
func newFixture(t testing.TB, yaml string, ups ...*upstream) *fixture {
	t.Helper()
	return newFixtureWith(t, Options{Gateway: defaultGateway(t)}, yaml, ups...)
}

// defaultGateway is the gateway section of an empty config: every timeout and limit set, as
// config.Parse hands it to the gateway.
func defaultGateway(t testing.TB) config.Gateway {
	return gatewayOf(t, "{}")
}

// gatewayOf is a gateway section written in YAML, with the config's defaults.
func gatewayOf(t testing.TB, yaml string) config.Gateway {
	t.Helper()
	cfg, err := config.Parse([]byte("gateway: " + yaml))
	if err != nil {
		t.Fatalf("gateway config %s: %v", yaml, err)
	}
	return cfg.Gateway
}

// newFixtureWith is newFixture with gateway options (Metrics is set here).
func newFixtureWith(t testing.TB, o Options, yaml string, ups ...*upstream) *fixture {
	t.Helper()
	reg := metrics.NewRegistry(metrics.Options{})
	o.Metrics = reg
	gw := New(o)
	t.Cleanup(gw.Close)
	f := &fixture{gw: gw, reg: reg}
	f.apply(t, yaml, ups...)
	f.srv = httptest.NewServer(gw)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) apply(t testing.TB, yaml string, ups ...*upstream) {
	t.Helper()
	for _, u := range ups {
		yaml = strings.ReplaceAll(yaml, "{{"+u.name+"}}", u.url())
	}
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	f.gw.Apply(cfg.Services)
}

// get sends a GET with optional headers ("Name: value") and returns the status and the upstream that
// answered.
func (f *fixture) get(t testing.TB, path string, headers ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Add(k, strings.TrimSpace(v))
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Upstream")
}
