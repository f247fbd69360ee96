package llmstats

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/llm"
)

func exchange(out int64, ttft time.Duration, streamErr string, complete bool) llm.Exchange {
	return llm.Exchange{API: llm.OpenAIChat, RequestModel: "m", ResponseModel: "m-2026", Stream: true,
		Usage: llm.Usage{Input: 1000, Cached: 400, Output: out, Known: true}, FirstToken: ttft,
		Gaps: []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}, StreamError: streamErr, Complete: complete}
}

func TestTotalsCostAndRoles(t *testing.T) {
	r := New([]config.Price{{Model: "m", Input: 2, CachedInput: 0.5, Output: 10}})
	record(r, "chat", "v2", false, exchange(100, 200*time.Millisecond, "", true), time.Second)
	record(r, "chat", "v2", false, exchange(300, 400*time.Millisecond, "overloaded", false), time.Second)
	record(r, "chat", "v2", true, exchange(50, 0, "", true), time.Second) // a shadow copy

	got := r.Totals("chat", "v2", false)
	// (600×2 + 400×0.5 + out×10) / 1e6: 0.0024 for 100 output tokens, 0.0044 for 300.
	if got.Requests != 2 || got.StreamErrors != 1 || got.UsageN != 2 || got.OutputSum != 400 || got.OutputSumSq != 100000 {
		t.Errorf("totals %+v", got)
	}
	if got.CostN != 2 || math.Abs(got.CostSum-0.0068) > 1e-12 {
		t.Errorf("cost %d / %g, want 2 / 0.0068", got.CostN, got.CostSum)
	}
	if got.TTFT.Count() != 2 || got.Gaps.Count() != 4 {
		t.Errorf("histograms: ttft %d, gaps %d", got.TTFT.Count(), got.Gaps.Count())
	}
	if m := r.Totals("chat", "v2", true); m.Requests != 1 || m.CostSum == 0 {
		t.Errorf("the shadow copy is measured apart: %+v", m)
	}
	if n := r.Totals("chat", "v9", false); n.Requests != 0 || n.TTFT == nil {
		t.Errorf("an unknown series: %+v", n)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(r.Collectors()...)
	want := `
# HELP aviary_llm_stream_errors_total LLM streams that failed after a 200: an error event, or cut by the upstream before their end.
# TYPE aviary_llm_stream_errors_total counter
aviary_llm_stream_errors_total{role="primary",service="chat",version="v2"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "aviary_llm_stream_errors_total"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "gen_ai_client_token_usage", "gen_ai_server_time_to_first_token_seconds"); err != nil || n != 5 { // tokens: input and output of each role; ttft: primary only
		t.Errorf("GenAI series: %d, %v", n, err)
	}
}

func TestAnUnpricedModelOrUnknownUsageHasNoCost(t *testing.T) {
	r := New(nil)
	if _, ok := r.Cost(exchange(10, 0, "", true)); ok {
		t.Error("a model without a price got a cost")
	}
	r.SetPrices([]config.Price{{Model: "m-2026", Output: 1}})
	x := exchange(10, 0, "", true)
	if c, ok := r.Cost(x); !ok || c != 10.0/1e6 {
		t.Errorf("priced by the model that answered: %g %v", c, ok)
	}
	x.Usage.Known = false
	if _, ok := r.Cost(x); ok {
		t.Error("unknown usage got a cost")
	}
}

// Anthropic's cache writes are priced at cacheWrite, or as other input tokens when it is not set;
// cache reads at cachedInput; the rest of the input at input.
func TestCacheWritesArePricedApart(t *testing.T) {
	x := llm.Exchange{API: llm.Anthropic, ResponseModel: "claude",
		Usage: llm.Usage{Input: 1000, Cached: 300, CacheWrite: 200, Output: 100, Known: true}}
	for _, c := range []struct {
		price config.Price
		want  float64
	}{
		// 500 uncached × 3 + 300 read × 0.3 + 200 written × 3.75 + 100 out × 15
		{config.Price{Model: "claude", Input: 3, CachedInput: 0.3, CacheWrite: 3.75, Output: 15}, (1500 + 90 + 750 + 1500) / 1e6},
		// no cacheWrite price: writes cost what input does
		{config.Price{Model: "claude", Input: 3, CachedInput: 0.3, Output: 15}, (1500 + 90 + 600 + 1500) / 1e6},
	} {
		r := New([]config.Price{c.price})
		if got, ok := r.Cost(x); !ok || math.Abs(got-c.want) > 1e-12 {
			t.Errorf("price %+v: cost %g (%v), want %g", c.price, got, ok, c.want)
		}
	}
}

// Counts out of line (more cached tokens than input, as a provider may report) never make a
// negative cost, which the cost counter could not take.
func TestOddUsageNeverCostsLessThanNothing(t *testing.T) {
	r := New([]config.Price{{Model: "m", Input: 1, CachedInput: 0.5, Output: 2}})
	x := llm.Exchange{API: llm.OpenAIChat, ResponseModel: "m", Usage: llm.Usage{Input: 10, Cached: 100, Output: 5, Known: true}}
	// All 10 input tokens read from the cache at 0.5, and 5 output tokens at 2.
	if c, ok := r.Cost(x); !ok || math.Abs(c-15.0/1e6) > 1e-15 {
		t.Errorf("cost %g, want 1.5e-05", c)
	}
	record(r, "chat", "v1", true, x, time.Second) // would panic on a negative counter increment
	if got := r.Totals("chat", "v1", true); got.CostSum < 0 {
		t.Errorf("cost sum %g", got.CostSum)
	}
}

// A stream the gateway could not read (a content coding it cannot decode) is counted as a request,
// never as a stream cut before its end.
func TestAnUnreadStreamIsNoStreamError(t *testing.T) {
	r := New(nil)
	record(r, "chat", "v1", false, llm.Exchange{API: llm.OpenAIChat, Stream: true, Unread: "content coding compress"}, time.Second)
	if got := r.Totals("chat", "v1", false); got.Requests != 1 || got.StreamErrors != 0 {
		t.Errorf("totals %+v, want 1 request and no stream error", got)
	}
}

// A client that went away (a stop button) is counted apart, never as a stream error, and what was
// streamed until then counts into the token totals and the cost, not into the per-request means.
func TestAClientAbortIsNoStreamErrorAndCountsItsTokens(t *testing.T) {
	r := New([]config.Price{{Model: "m", Input: 1, Output: 10}})
	x := llm.Exchange{API: llm.OpenAIChat, RequestModel: "m", Stream: true, ContentChunks: 7, ClientAborted: true,
		Usage: llm.Usage{Output: 7, Known: true, Partial: true}}
	record(r, "chat", "v1", false, x, time.Second)
	got := r.Totals("chat", "v1", false)
	if got.Requests != 1 || got.StreamErrors != 0 || got.ClientAborts != 1 || got.OutputTokens != 7 || got.UsageN != 0 || got.CostN != 0 {
		t.Errorf("totals %+v, want 1 request, 1 client abort, 7 output tokens, no stream error, no per-request means", got)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.Collectors()...)
	want := `
# HELP aviary_llm_client_aborts_total LLM answers the client went away from before their end (a stop button); not errors of the version.
# TYPE aviary_llm_client_aborts_total counter
aviary_llm_client_aborts_total{role="primary",service="chat",version="v1"} 1
# HELP aviary_llm_cost_total Cost of LLM calls by the price table (currency units); shadow copies are under role=mirror.
# TYPE aviary_llm_cost_total counter
aviary_llm_cost_total{role="primary",service="chat",version="v1"} 7e-05
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "aviary_llm_client_aborts_total", "aviary_llm_cost_total", "aviary_llm_stream_errors_total"); err != nil {
		t.Error(err)
	}
}

// A client that names made-up models cannot grow /metrics: models that are not in the price table,
// in llm.models or the version's rewrite are shown as "other", and so is an answering model that
// only echoes one of them.
func TestModelLabelsAreBounded(t *testing.T) {
	r := New([]config.Price{{Model: "priced", Output: 1}})
	r.SetModels([]string{"listed"})
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.Collectors()...)
	for i := range 300 {
		made := fmt.Sprintf("made-up-%d", i)
		record(r, "chat", "v1", false, llm.Exchange{API: llm.OpenAIChat, RequestModel: made, ResponseModel: made,
			Usage: llm.Usage{Input: 1, Output: 1, Known: true}, Complete: true}, time.Millisecond)
	}
	n, err := testutil.GatherAndCount(reg, "aviary_llm_requests_total", "gen_ai_client_token_usage")
	if err != nil || n != 3 { // requests: one series; tokens: input and output
		t.Fatalf("300 made-up models made %d series (%v), want 3", n, err)
	}
	for _, c := range []struct {
		x             llm.Exchange
		request, resp string
	}{
		{llm.Exchange{RequestModel: "priced", ResponseModel: "priced-2026-01-01"}, "priced", "priced-2026-01-01"},
		{llm.Exchange{RequestModel: "listed", ResponseModel: "listed"}, "listed", "listed"},
		{llm.Exchange{RequestModel: "made-up", VersionModel: "rewritten", ResponseModel: "rewritten-v3"}, "other", "rewritten-v3"},
		{llm.Exchange{RequestModel: "rewritten", VersionModel: "rewritten", ResponseModel: "rewritten"}, "rewritten", "rewritten"},
		{llm.Exchange{RequestModel: "made-up", ResponseModel: "made-up"}, "other", "other"},
		{llm.Exchange{ResponseModel: "server-default"}, "", "server-default"}, // no model asked: the server chose
	} {
		if req, resp := r.ModelLabels(c.x); req != c.request || resp != c.resp {
			t.Errorf("%+v: labels %q, %q, want %q, %q", c.x, req, resp, c.request, c.resp)
		}
	}
}

// Cached and reasoning tokens and the gaps between chunks are on /metrics too.
func TestTokensByTypeAndChunkGapsAreExported(t *testing.T) {
	r := New(nil)
	x := exchange(100, 200*time.Millisecond, "", true) // 1000 input, 400 cached, 2 gaps
	x.Usage.Reasoning = 30
	record(r, "chat", "v1", false, x, time.Second)
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.Collectors()...)
	want := `
# HELP aviary_llm_tokens_total Tokens of LLM calls by type: input (cached ones included), output (reasoning included), cached (read from a prompt cache), cache_write (Anthropic's cache writes), reasoning. A cut stream counts as far as it went.
# TYPE aviary_llm_tokens_total counter
aviary_llm_tokens_total{role="primary",service="chat",type="cached",version="v1"} 400
aviary_llm_tokens_total{role="primary",service="chat",type="input",version="v1"} 1000
aviary_llm_tokens_total{role="primary",service="chat",type="output",version="v1"} 100
aviary_llm_tokens_total{role="primary",service="chat",type="reasoning",version="v1"} 30
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "aviary_llm_tokens_total"); err != nil {
		t.Error(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "aviary_llm_chunk_gap_seconds" {
			if h := mf.GetMetric()[0].GetHistogram(); h.GetSampleCount() != 2 || math.Abs(h.GetSampleSum()-0.03) > 1e-9 {
				t.Errorf("chunk gaps: %d observed, sum %g; want the 2 gaps, 0.03 s", h.GetSampleCount(), h.GetSampleSum())
			}
			return
		}
	}
	t.Error("no aviary_llm_chunk_gap_seconds")
}

// record adds an exchange of service's version to r.
func record(r *Registry, service, version string, mirror bool, x llm.Exchange, d time.Duration) {
	r.Record(llm.Record{Service: service, Version: version, Mirror: mirror, Exchange: x, Duration: d})
}
