// Package gateway is Aviary's data plane: an HTTP reverse proxy that sends each request of a service
// to a version (by route rules, sticky key or weight), to an endpoint of that version (smooth weighted
// round robin over healthy endpoints), copies a share to a mirror version, checks endpoint health, and
// measures every version apart.
//
// It serves from an immutable snapshot held in an atomic pointer; Apply builds a new one off the hot
// path and swaps it in, so a reload or a weight change never blocks or drops a request. Runtime state
// that must outlive a snapshot (endpoint health, round-robin positions, the split's sequence,
// measurements) lives in registries keyed by service, version and endpoint.
//
// The gateway never decides what the weights should be; it serves what it is given.
package gateway

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/metrics"
)

// Options configures a Gateway. Metrics is required; nil Logger logs nowhere.
type Options struct {
	Metrics *metrics.Registry
	Logger  *slog.Logger
	// Gateway holds timeouts and limits, the config's defaults applied (config.Parse: every
	// timeout and limit is set); it is read once, at New.
	Gateway config.Gateway
	// Transport, when set, replaces the upstream transport (tests use it to count connections).
	Transport *http.Transport
	// LLM receives what the gateway learns of LLM calls (services with an llm setting); nil: nobody.
	LLM LLMSink
	// Now is the clock of endpoint health (ejections, their ends); nil: time.Now. Tests drive it.
	Now func() time.Time
	// Placed hears of every request placed by weight that has a sticky key: the unit's exposure to
	// a version, which experiments count. It runs on the request path: it must be cheap and never
	// block. nil: nobody.
	Placed func(service, version, key string)
	// Served hears of every finished request that Placed heard of (placed by weight, with a
	// sticky key): experiments turn them into their units' builtin metrics. It runs on the
	// request path: it must be cheap and never block. nil: nobody.
	Served func(UnitRequest)
}

// UnitRequest is one finished request of a unit (a sticky key) placed by weight.
type UnitRequest struct {
	Service, Version, Key string
	Failed                bool // an error as the measurements count it (5xx, or a fault)
	Latency               time.Duration
	End                   time.Time // when it finished
}

// Gateway is an http.Handler that proxies to service versions.
type Gateway struct {
	snap      atomic.Pointer[snapshot]
	metrics   *metrics.Registry
	log       *slog.Logger
	proxy     *httputil.ReverseProxy
	transport *http.Transport
	health    *healthRegistry
	counters  *counters
	mirrors   chan struct{} // semaphore of mirrored requests in flight
	maxConns  int           // client connections Listener keeps open
	pace      bodyPace      // how slowly a request body may come
	llmSink   LLMSink
	now       func() time.Time // the clock of endpoint health
	placed    func(service, version, key string)
	served    func(UnitRequest)
	pool      sync.Pool // *exchange
	flags     atomic.Pointer[flagTable]
	// experiments place the sticky users of services with an experiment, by service name.
	experiments atomic.Pointer[map[string]*experimentPlan]

	applyMu  sync.Mutex // serialises Apply; never taken on the request path
	services map[string]*serviceState
	versions map[string]*versionState
}

// serviceState is what a service keeps across snapshots.
type serviceState struct{ splitNext, mirrorNext atomic.Uint32 }

// versionState is what a version keeps across snapshots.
type versionState struct {
	picker      picker
	fallingBack atomic.Bool // logged once per episode of "no healthy endpoint"
	llm         llmVersionState
}

// New makes a gateway with no services; Apply gives it some.
func New(o Options) *Gateway {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr := o.Transport
	if tr == nil {
		tr = newTransport(o.Gateway.Timeouts)
	}
	g := &Gateway{
		metrics:   o.Metrics,
		log:       log,
		transport: tr,
		counters:  newCounters(),
		mirrors:   make(chan struct{}, o.Gateway.MaxMirrorsInFlight),
		maxConns:  o.Gateway.MaxConnections,
		llmSink:   o.LLM,
		now:       o.Now,
		placed:    o.Placed,
		served:    o.Served,
		services:  map[string]*serviceState{},
		versions:  map[string]*versionState{},
	}
	g.health = &healthRegistry{
		client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
		log: log,
	}
	g.pace = newBodyPace(o.Gateway, g.counters)
	if g.now == nil {
		g.now = time.Now
	}
	g.pool.New = func() any { return new(exchange) }
	g.proxy = &httputil.ReverseProxy{
		Rewrite:        rewrite,
		Transport:      &retryTransport{base: tr, g: g},
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.proxyError,
		BufferPool:     bufferPool{},
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	g.snap.Store(&snapshot{})
	return g
}

func newTransport(t config.Timeouts) *http.Transport {
	return &http.Transport{
		Proxy: nil, // never an environment proxy: endpoints are addressed directly
		DialContext: (&net.Dialer{
			Timeout:   t.Connect.Duration,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          0,    // no global limit
		MaxIdleConnsPerHost:   1024, // Go's default of 2 would open and close a connection per request under load
		IdleConnTimeout:       t.UpstreamIdle.Duration,
		ResponseHeaderTimeout: t.ResponseHeader.Duration,
		TLSHandshakeTimeout:   t.Connect.Duration,
		ExpectContinueTimeout: time.Second,
	}
}

// Collectors returns the gateway's own Prometheus collectors (measurements of versions are the
// metrics registry's).
func (g *Gateway) Collectors() []prometheus.Collector {
	return append(g.counters.all(), &endpointCollector{g: g})
}

// HealthChecked says whether every endpoint with an active health check has had its first check:
// before that, an endpoint that is down would still get traffic, so a gateway that has just started
// is not ready until then (GET /readyz).
func (g *Gateway) HealthChecked() bool { return g.health.checked() }

// Close stops health checks and closes idle upstream connections.
func (g *Gateway) Close() {
	g.health.close()
	g.transport.CloseIdleConnections()
}

// Apply makes services the gateway's routing. The services must be valid (config.Validate); Apply
// only builds and swaps, so it cannot fail halfway: requests in flight finish on the snapshot they
// started with.
func (g *Gateway) Apply(services []config.Service) {
	g.applyMu.Lock()
	defer g.applyMu.Unlock()
	var wanted []wantedEndpoint
	for i := range services {
		s := &services[i]
		for _, v := range s.Versions {
			for _, raw := range v.Endpoints {
				u, _ := url.Parse(raw) // validated
				wanted = append(wanted, wantedEndpoint{service: s.Name, raw: raw, url: u, check: s.HealthCheck})
			}
		}
	}
	eps := g.health.sync(wanted)
	snap := &snapshot{}
	liveSvc, liveVer := map[string]bool{}, map[string]bool{}
	for i := range services {
		svc := g.buildService(&services[i], eps)
		snap.services = append(snap.services, svc)
		liveSvc[svc.name] = true
		for _, v := range svc.versions {
			liveVer[v.key] = true
		}
	}
	sortServices(snap.services)
	g.snap.Store(snap)
	for k := range g.services {
		if !liveSvc[k] {
			delete(g.services, k)
		}
	}
	for k := range g.versions {
		if !liveVer[k] {
			delete(g.versions, k)
		}
	}
}

// sortServices puts the most specific match first: services with hosts, then longer path prefixes,
// then the order of the file.
func sortServices(ss []*service) {
	slices.SortStableFunc(ss, func(a, b *service) int {
		if (len(a.hosts) > 0) != (len(b.hosts) > 0) {
			if len(a.hosts) > 0 {
				return -1
			}
			return 1
		}
		return len(b.prefix) - len(a.prefix)
	})
}

func (g *Gateway) buildService(cs *config.Service, eps map[string]*endpoint) *service {
	st := g.services[cs.Name]
	if st == nil {
		st = &serviceState{}
		g.services[cs.Name] = st
	}
	svc := &service{
		name:    cs.Name,
		prefix:  cs.Match.PathPrefix,
		split:   newSplit(cs.Versions, cs.Traffic, &st.splitNext),
		sticky:  newStickyKey(cs.Stickiness),
		cfg:     *cs,
		passive: passivePolicy{threshold: cs.Passive.ConsecutiveFailures, base: cs.Passive.BaseEjection.Duration, maximum: cs.Passive.MaxEjection.Duration},
		llm:     newLLMService(cs.LLM),
	}
	for _, h := range cs.Match.Hosts {
		svc.hosts = append(svc.hosts, strings.ToLower(h))
	}
	byName := map[string]*version{}
	for i, cv := range cs.Versions {
		v := g.buildVersion(cs.Name, cv, eps)
		v.index = i
		svc.versions = append(svc.versions, v)
		byName[cv.Name] = v
	}
	svc.stable = svc.versions[0]
	for _, r := range cs.Routes {
		v := byName[r.Version]
		if v.routed == nil {
			v.routed = g.metrics.Series(cs.Name, v.name, metrics.Routed)
		}
		svc.routes = append(svc.routes, route{m: compileMatch(r.Match), v: v})
	}
	if m := cs.Mirror; m != nil {
		target := byName[m.Version]
		target.mirror = g.metrics.Series(cs.Name, m.Version, metrics.Mirror)
		for _, reason := range mirrorSkipReasons {
			target.mirrorSkipped = append(target.mirrorSkipped, g.counters.mirrorSkipped.WithLabelValues(cs.Name, m.Version, reason))
		}
		svc.mirror = &mirrorPlan{
			v:        target,
			share:    uint32(m.Percent * buckets / 100),
			maxBody:  m.MaxBodyBytes,
			next:     &st.mirrorNext,
			mismatch: g.counters.mirrorMismatch.WithLabelValues(cs.Name, m.Version),
		}
	}
	return svc
}

func (g *Gateway) buildVersion(service string, cv config.Version, eps map[string]*endpoint) *version {
	key := service + "/" + cv.Name
	st := g.versions[key]
	if st == nil {
		st = &versionState{}
		g.versions[key] = st
	}
	v := &version{
		service: service,
		name:    cv.Name,
		key:     key,
		state:   st,
		primary: g.metrics.Series(service, cv.Name, metrics.Primary),
		llm:     newLLMVersion(cv.LLM, g.counters.llmOversized, service, cv.Name),
	}
	// Made on first use: most versions never fall back, retry or lose an endpoint, and each child of
	// a counter costs half a kilobyte, which thousands of versions turn into megabytes.
	labels := []string{service, cv.Name}
	v.fallbacks = lazyCounter{vec: g.counters.fallbacks, labels: labels}
	v.retries = lazyCounter{vec: g.counters.retries, labels: labels}
	v.ejections = lazyCounter{vec: g.counters.ejections, labels: labels}
	for _, raw := range cv.Endpoints {
		v.endpoints = append(v.endpoints, eps[endpointKey(service, raw)])
	}
	return v
}
