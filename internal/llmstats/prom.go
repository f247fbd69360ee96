package llmstats

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"aviary.dev/aviary/internal/llm"
)

// promMetrics are named by the OpenTelemetry GenAI semantic conventions (dots become underscores
// in Prometheus), with Aviary's own labels for service, version and role, and Aviary's own metrics
// for what the conventions do not name (cost, stream errors).
type promMetrics struct {
	tokens    *prometheus.HistogramVec
	ttft      *prometheus.HistogramVec
	tpot      *prometheus.HistogramVec
	duration  *prometheus.HistogramVec
	requests  *prometheus.CounterVec
	cost      *prometheus.CounterVec
	streamErr *prometheus.CounterVec
	aborts    *prometheus.CounterVec
	tokenSum  *prometheus.CounterVec
	gaps      *prometheus.HistogramVec
}

var (
	base       = []string{"service", "version", "role"}
	tokenBkts  = prometheus.ExponentialBuckets(1, 4, 12) // 1 .. 4M tokens
	secondBkts = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}
	tokenBktsT = []float64{0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1}
	gapBkts    = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10}
)

func newPromMetrics() promMetrics {
	return promMetrics{
		tokens: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gen_ai_client_token_usage",
			Help: "Tokens per LLM call, by gen_ai_token_type (input, output).", Buckets: tokenBkts},
			append(append([]string{}, base...), "gen_ai_token_type", "gen_ai_request_model", "gen_ai_response_model")),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gen_ai_server_time_to_first_token_seconds",
			Help: "Time from the request going upstream to the first chunk that carries content.", Buckets: secondBkts}, base),
		tpot: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gen_ai_server_time_per_output_token_seconds",
			Help: "Time per output token after the first.", Buckets: tokenBktsT}, base),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gen_ai_server_request_duration_seconds",
			Help: "Duration of LLM calls, to the end of the response.", Buckets: secondBkts}, base),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aviary_llm_requests_total",
			Help: "LLM calls, by the model asked for and the model that answered."},
			append(append([]string{}, base...), "gen_ai_request_model", "gen_ai_response_model")),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aviary_llm_cost_total",
			Help: "Cost of LLM calls by the price table (currency units); shadow copies are under role=mirror."}, base),
		streamErr: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aviary_llm_stream_errors_total",
			Help: "LLM streams that failed after a 200: an error event, or cut by the upstream before their end."}, base),
		aborts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aviary_llm_client_aborts_total",
			Help: "LLM answers the client went away from before their end (a stop button); not errors of the version."}, base),
		tokenSum: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aviary_llm_tokens_total",
			Help: "Tokens of LLM calls by type: input (cached ones included), output (reasoning included), cached (read from a prompt cache), cache_write (Anthropic's cache writes), reasoning. A cut stream counts as far as it went."},
			append(append([]string{}, base...), "type")),
		gaps: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "aviary_llm_chunk_gap_seconds",
			Help: "Time between consecutive content chunks of LLM streams (inter-token latency as the client sees it).", Buckets: gapBkts}, base),
	}
}

func (p promMetrics) all() []prometheus.Collector {
	return []prometheus.Collector{p.tokens, p.ttft, p.tpot, p.duration, p.requests, p.cost, p.streamErr, p.aborts, p.tokenSum, p.gaps}
}

func role(mirror bool) string {
	if mirror {
		return "mirror"
	}
	return "primary"
}

// labels are an exchange's label values; the models bounded (Registry.ModelLabels).
type labels struct{ service, version, role, requestModel, responseModel string }

// observation is what one exchange adds to the Prometheus metrics.
type observation struct {
	labels
	x              llm.Exchange
	duration, tpot time.Duration
	cost           float64
	priced         bool // cost counts
	streamErr      bool
}

func (p promMetrics) record(o observation) {
	l, x, tpot, cost, priced, streamErr := o.labels, o.x, o.tpot, o.cost, o.priced, o.streamErr
	service, version, r := l.service, l.version, l.role
	p.requests.WithLabelValues(service, version, r, l.requestModel, l.responseModel).Inc()
	p.duration.WithLabelValues(service, version, r).Observe(o.duration.Seconds())
	if x.FirstToken > 0 {
		p.ttft.WithLabelValues(service, version, r).Observe(x.FirstToken.Seconds())
	}
	if tpot > 0 {
		p.tpot.WithLabelValues(service, version, r).Observe(tpot.Seconds())
	}
	if x.Usage.Known && (!x.Usage.Partial || x.Usage.Input > 0) { // a cut chat stream never said its input
		p.tokens.WithLabelValues(service, version, r, "input", l.requestModel, l.responseModel).Observe(float64(x.Usage.Input))
	}
	if x.Usage.Known {
		p.tokens.WithLabelValues(service, version, r, "output", l.requestModel, l.responseModel).Observe(float64(x.Usage.Output))
	}
	if priced && cost > 0 { // a counter only grows; Cost is never negative or NaN for valid prices
		p.cost.WithLabelValues(service, version, r).Add(cost)
	}
	if streamErr {
		p.streamErr.WithLabelValues(service, version, r).Inc()
	}
	if x.ClientAborted {
		p.aborts.WithLabelValues(service, version, r).Inc()
	}
	if u := x.Usage; u.Known {
		for _, c := range []struct {
			kind string
			n    int64
		}{{"input", u.Input}, {"output", u.Output}, {"cached", u.Cached}, {"cache_write", u.CacheWrite}, {"reasoning", u.Reasoning}} {
			if c.n > 0 {
				p.tokenSum.WithLabelValues(service, version, r, c.kind).Add(float64(c.n))
			}
		}
	}
	if len(x.Gaps) > 0 {
		h := p.gaps.WithLabelValues(service, version, r)
		for _, g := range x.Gaps {
			h.Observe(g.Seconds())
		}
	}
}
