// Package llmstats keeps what the gateway learns of LLM calls, per service, version and role
// (primary traffic, or shadow copies, which are measured apart and never counted into the primary's
// cost): tokens, cost from the price table, time to first token, the gaps between chunks, errors in
// the middle of a stream. It exposes them to Prometheus under the OpenTelemetry GenAI names, and to
// the judge as cumulative totals that it differences look by look.
//
// Record runs at the end of every LLM exchange; it takes a short per-series lock and never blocks
// on anything else.
package llmstats

import (
	"cmp"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/llm"
	"aviary.dev/aviary/internal/metrics"
)

// Totals are a series' cumulative figures since the process started.
type Totals struct {
	Requests     int64 // completed exchanges
	StreamErrors int64 // an error after a 200, or a stream the upstream cut before its end
	ClientAborts int64 // answers the client went away from before their end; never a stream error
	// Per-request sums, over the exchanges whose whole usage was known (not a cut stream's).
	UsageN                 int64
	OutputSum, OutputSumSq float64
	// Token totals, cut streams included as far as they went.
	InputTokens, OutputTokens      int64
	CachedTokens, ReasoningTokens  int64
	CostN                          int64 // exchanges with a whole usage and a known price
	CostSum, CostSumSq             float64
	TTFT, Gaps, TimePerOutputToken *metrics.Histogram // copies
}

type key struct {
	service, version string
	mirror           bool
}

type series struct {
	mu   sync.Mutex
	t    Totals
	ttft metrics.Histogram
	gaps metrics.Histogram
	tpot metrics.Histogram
}

// Registry holds every series and the price table.
type Registry struct {
	mu     sync.RWMutex
	series map[key]*series
	prices atomic.Pointer[map[string]config.Price]
	models atomic.Pointer[map[string]bool] // configured: llm.models
	prom   promMetrics
}

// New makes a registry with the given prices.
func New(prices []config.Price) *Registry {
	r := &Registry{series: map[key]*series{}, prom: newPromMetrics()}
	r.SetPrices(prices)
	r.SetModels(nil)
	return r
}

// SetModels replaces the configured list of models shown by name in the model labels
// (llm.models), beside the price table's models.
func (r *Registry) SetModels(models []string) {
	m := make(map[string]bool, len(models))
	for _, name := range models {
		m[name] = true
	}
	r.models.Store(&m)
}

// ModelLabels are the values of the model labels of an exchange: the model a client asked for,
// and the model that answered, each as itself when it is known (in the price table, in
// llm.models, or the version's rewrite) and as config.OtherModel when it is not, so that a client
// naming made-up models cannot grow the metrics without bound. The answering model is also kept
// when the model sent upstream was known: the upstream, not the client, chose its name then. An
// empty name (none given) stays empty; an answering model when none was asked for is the
// server's choice, and kept.
func (r *Registry) ModelLabels(x llm.Exchange) (request, response string) {
	prices, models := *r.prices.Load(), *r.models.Load()
	known := func(m string) bool {
		_, priced := prices[m]
		return m == "" || priced || models[m] || m == x.VersionModel
	}
	request, response = x.RequestModel, x.ResponseModel
	if !known(request) {
		request = config.OtherModel
	}
	sent := cmp.Or(x.VersionModel, x.RequestModel)
	if !known(response) && !known(sent) {
		response = config.OtherModel
	}
	return request, response
}

// SetPrices replaces the price table (on a config reload).
func (r *Registry) SetPrices(prices []config.Price) {
	m := make(map[string]config.Price, len(prices))
	for _, p := range prices {
		m[p.Model] = p
	}
	r.prices.Store(&m)
}

// Cost is what an exchange cost by the price table: per million tokens, cache reads at
// cachedInput, cache writes at cacheWrite, the rest of the input at input and the output at output
// (an unset cachedInput or cacheWrite costs what input does). Counts a provider reports out of
// line (more cached tokens than input) are clamped, so a cost is never negative. False when the
// model has no price or the usage is unknown.
func (r *Registry) Cost(x llm.Exchange) (float64, bool) {
	if !x.Usage.Known {
		return 0, false
	}
	prices := *r.prices.Load()
	p, ok := prices[x.ResponseModel]
	if !ok {
		p, ok = prices[x.RequestModel]
	}
	if !ok {
		return 0, false
	}
	u := x.Usage
	read, write := p.CachedInput, p.CacheWrite
	if read == 0 {
		read = p.Input
	}
	if write == 0 {
		write = p.Input
	}
	input := max(u.Input, 0)
	cached := min(max(u.Cached, 0), input)
	written := min(max(u.CacheWrite, 0), input-cached)
	return (float64(input-cached-written)*p.Input + float64(cached)*read + float64(written)*write +
		float64(max(u.Output, 0))*p.Output) / 1e6, true
}

func (r *Registry) get(k key) *series {
	r.mu.RLock()
	s := r.series[k]
	r.mu.RUnlock()
	if s != nil {
		return s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s = r.series[k]; s == nil {
		s = &series{}
		r.series[k] = s
	}
	return s
}

// Record adds one exchange.
func (r *Registry) Record(rec llm.Record) {
	x, duration := rec.Exchange, rec.Duration
	s := r.get(key{rec.Service, rec.Version, rec.Mirror})
	cost, priced := r.Cost(x)
	// An answer the gateway could not read (x.Unread) tells nothing of the stream's end, and a
	// client that went away is no error of the version's.
	streamError := x.Unread == "" && !x.ClientAborted && (x.StreamError != "" || (x.Stream && !x.Complete))
	whole := x.Usage.Known && !x.Usage.Partial // counts fit for per-request means
	if x.FirstToken > 0 {
		s.ttft.Observe(x.FirstToken)
	}
	for _, g := range x.Gaps {
		s.gaps.Observe(g)
	}
	var tpot time.Duration
	if whole && x.Usage.Output > 1 && x.FirstToken > 0 && duration > x.FirstToken {
		tpot = (duration - x.FirstToken) / time.Duration(x.Usage.Output-1)
		s.tpot.Observe(tpot)
	}
	s.mu.Lock()
	t := &s.t
	t.Requests++
	if streamError {
		t.StreamErrors++
	}
	if x.ClientAborted {
		t.ClientAborts++
	}
	if whole {
		out := float64(x.Usage.Output)
		t.UsageN++
		t.OutputSum += out
		t.OutputSumSq += out * out
	}
	if x.Usage.Known {
		t.InputTokens += x.Usage.Input
		t.OutputTokens += x.Usage.Output
		t.CachedTokens += x.Usage.Cached
		t.ReasoningTokens += x.Usage.Reasoning
	}
	if whole && priced && !math.IsNaN(cost) {
		t.CostN++
		t.CostSum += cost
		t.CostSumSq += cost * cost
	}
	s.mu.Unlock()
	reqModel, respModel := r.ModelLabels(x)
	r.prom.record(observation{labels: labels{rec.Service, rec.Version, role(rec.Mirror), reqModel, respModel}, x: x,
		duration: duration, tpot: tpot, cost: cost, priced: priced, streamErr: streamError})
}

// Totals returns a series' cumulative figures (zero when it has seen nothing).
func (r *Registry) Totals(service, version string, mirror bool) Totals {
	r.mu.RLock()
	s := r.series[key{service, version, mirror}]
	r.mu.RUnlock()
	out := Totals{TTFT: &metrics.Histogram{}, Gaps: &metrics.Histogram{}, TimePerOutputToken: &metrics.Histogram{}}
	if s == nil {
		return out
	}
	s.mu.Lock()
	t := s.t
	s.mu.Unlock()
	t.TTFT, t.Gaps, t.TimePerOutputToken = out.TTFT, out.Gaps, out.TimePerOutputToken
	t.TTFT.Merge(&s.ttft)
	t.Gaps.Merge(&s.gaps)
	t.TimePerOutputToken.Merge(&s.tpot)
	return t
}

// Collectors are the Prometheus collectors of the registry.
func (r *Registry) Collectors() []prometheus.Collector { return r.prom.all() }
