package gateway

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// counters are the gateway's own Prometheus metrics. Children are resolved when a snapshot is built,
// so the request path only increments.
type counters struct {
	fallbacks      *prometheus.CounterVec
	retries        *prometheus.CounterVec
	ejections      *prometheus.CounterVec
	mirrorSkipped  *prometheus.CounterVec
	mirrorMismatch *prometheus.CounterVec
	unmatched      prometheus.Counter
	conns          prometheus.Gauge
	connWaits      prometheus.Counter
	bodiesCut      *prometheus.CounterVec // by cutReason
	llmOversized   *prometheus.CounterVec
}

func newCounters() *counters {
	sv := []string{"service", "version"}
	return &counters{
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aviary_fallback_requests_total",
			Help: "Requests of a version with no healthy endpoint, sent to the stable version instead."}, sv),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aviary_retries_total",
			Help: "Requests retried on another endpoint of the same version after a failed connection."}, sv),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aviary_endpoint_ejections_total",
			Help: "Passive ejections of endpoints after consecutive failures."}, sv),
		mirrorSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aviary_mirror_skipped_total",
			Help: "Requests chosen for mirroring that were not mirrored, by reason."}, []string{"service", "version", "reason"}),
		mirrorMismatch: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aviary_mirror_status_mismatch_total",
			Help: "Mirrored requests whose status differed from the primary response's."}, sv),
		unmatched: prometheus.NewCounter(prometheus.CounterOpts{Name: "aviary_unmatched_requests_total",
			Help: "Requests that matched no service (answered 404)."}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{Name: "aviary_client_connections",
			Help: "Client connections open on the gateway listener."}),
		connWaits: prometheus.NewCounter(prometheus.CounterOpts{Name: "aviary_client_connection_waits_total",
			Help: "Times the gateway stopped accepting because gateway.maxConnections were open; new connections waited in the kernel's queue."}),
		bodiesCut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aviary_request_bodies_cut_total",
			Help: "Requests cut because their body came too slowly: reason idle (a pause longer than timeouts.bodyIdle) or rate (slower than minBodyRate)."},
			[]string{"reason"}),
		llmOversized: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aviary_llm_oversized_requests_total",
			Help: "LLM requests over llm.maxRequestBytes that the version's rewrite could not apply to, by what was done (forwarded unrewritten, refused)."},
			[]string{"service", "version", "action"}),
	}
}

func (c *counters) all() []prometheus.Collector {
	return []prometheus.Collector{c.fallbacks, c.retries, c.ejections, c.mirrorSkipped, c.mirrorMismatch, c.unmatched,
		c.conns, c.connWaits, c.bodiesCut, c.llmOversized}
}

// lazyCounter is a child of a CounterVec made on its first increment. The labels are not copied.
type lazyCounter struct {
	vec    *prometheus.CounterVec
	labels []string
	c      atomic.Pointer[prometheus.Counter]
}

func (l *lazyCounter) Inc() {
	p := l.c.Load()
	if p == nil {
		c := l.vec.WithLabelValues(l.labels...)
		l.c.CompareAndSwap(nil, &c) // the same child whoever wins
		p = l.c.Load()
	}
	(*p).Inc()
}

// endpointCollector reports each endpoint's availability at scrape time, from the live snapshot.
type endpointCollector struct{ g *Gateway }

var endpointUpDesc = prometheus.NewDesc("aviary_endpoint_up",
	"1 when the endpoint may get traffic (active checks pass and it is not ejected), else 0.",
	[]string{"service", "version", "endpoint"}, nil)

func (c *endpointCollector) Describe(ch chan<- *prometheus.Desc) { ch <- endpointUpDesc }

func (c *endpointCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.g.now().UnixNano()
	for _, s := range c.g.snap.Load().services {
		for _, v := range s.versions {
			for _, e := range v.endpoints {
				up := 0.0
				if e.available(now) {
					up = 1
				}
				ch <- prometheus.MustNewConstMetric(endpointUpDesc, prometheus.GaugeValue, up, s.name, v.name, e.raw)
			}
		}
	}
}
