package telemetry

import (
	"context"
	"encoding/hex"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"aviary.dev/aviary/internal/llm"
	"aviary.dev/aviary/internal/logtest"
	"aviary.dev/aviary/internal/polltest"
)

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// A streamed chat completion that went well, on the primary.
var chatOK = llm.Exchange{
	API: llm.OpenAIChat, RequestModel: "gpt-4o", ResponseModel: "gpt-4o-2024-08-06", Stream: true, Complete: true,
	Usage:         llm.Usage{Input: 120, Output: 41, Cached: 20, Reasoning: 8, Known: true},
	FinishReasons: []string{"stop"}, FirstToken: 200 * time.Millisecond, ContentChunks: 41,
}

// An Anthropic stream that reported an error after its 200, on a mirror copy.
var anthropicErr = llm.Exchange{
	API: llm.Anthropic, RequestModel: "claude-x", ResponseModel: "claude-x", Stream: true,
	StreamError: "overloaded_error: Overloaded",
}

func TestExchangesReachTheCollectorByTheGenAIConventions(t *testing.T) {
	t.Parallel()
	rec := newReceiver(t)
	tel, err := New(t.Context(), Options{Endpoint: rec.URL + "/", Headers: map[string]string{"Authorization": "Bearer k"},
		Interval: time.Hour, ServiceName: "aviary-test"})
	if err != nil {
		t.Fatal(err)
	}
	exchange(tel, Parent{}, "chat", "v1", false, "req-1", start, 1200*time.Millisecond, 200, chatOK, 0.0021, true)
	exchange(tel, Parent{}, "chat", "v2", true, "req-2", start, 300*time.Millisecond, 200, anthropicErr, 0, false)
	tel.Evaluation("chat", "v1", false, "helpfulness", 0.8)
	tel.Evaluation("chat", "v1", false, "helpfulness", 0.6)
	if err := tel.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	t.Run("spans", func(t *testing.T) {
		spans, resources := rec.spans()
		if len(spans) != 2 {
			t.Fatalf("%d spans received, want 2", len(spans))
		}
		if got := resources[0]["service.name"]; got != "aviary-test" {
			t.Errorf("resource service.name = %v, want aviary-test", got)
		}
		ok, failed := spans[0], spans[1]
		if ok.Name != "chat gpt-4o" || ok.Kind != tracepb.Span_SPAN_KIND_CLIENT {
			t.Errorf("span %q kind %v, want \"chat gpt-4o\" CLIENT", ok.Name, ok.Kind)
		}
		if ok.StartTimeUnixNano != uint64(start.UnixNano()) || ok.EndTimeUnixNano != uint64(start.Add(1200*time.Millisecond).UnixNano()) {
			t.Errorf("span from %d to %d, want the exchange's start and end", ok.StartTimeUnixNano, ok.EndTimeUnixNano)
		}
		if ok.Status.GetCode() != tracepb.Status_STATUS_CODE_UNSET {
			t.Errorf("status %v, want unset", ok.Status)
		}
		wantAttrs(t, attrs(ok.Attributes), map[string]any{
			"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
			"gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.request.stream": true,
			"gen_ai.usage.input_tokens": int64(120), "gen_ai.usage.output_tokens": int64(41),
			"gen_ai.usage.cache_read.input_tokens": int64(20), "gen_ai.usage.reasoning.output_tokens": int64(8),
			"gen_ai.response.finish_reasons": []any{"stop"}, "http.response.status_code": int64(200),
			"aviary.service": "chat", "aviary.version": "v1", "aviary.role": "primary",
			"aviary.request_id": "req-1", "aviary.cost": 0.0021,
		}, "error.type", "gen_ai.usage.cache_creation.input_tokens")

		if failed.Name != "chat claude-x" || failed.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR ||
			failed.Status.GetMessage() != "overloaded_error: Overloaded" {
			t.Errorf("span %q status %v, want \"chat claude-x\" with the stream's error", failed.Name, failed.Status)
		}
		wantAttrs(t, attrs(failed.Attributes), map[string]any{
			"gen_ai.provider.name": "anthropic", "error.type": "stream_error",
			"aviary.version": "v2", "aviary.role": "mirror", "aviary.request_id": "req-2",
		}, "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "aviary.cost")
	})

	t.Run("metrics", func(t *testing.T) {
		ms := rec.metricsByName()
		primary := map[string]any{"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
			"gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
			"aviary.service": "chat", "aviary.version": "v1", "aviary.role": "primary"}
		mirror := map[string]any{"gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-x",
			"aviary.version": "v2", "aviary.role": "mirror"}
		with := func(base map[string]any, k string, v any) map[string]any {
			m := map[string]any{k: v}
			for k, v := range base {
				m[k] = v
			}
			return m
		}
		for _, c := range []struct {
			name, unit string
			points     int
			want       map[string]any
			sum        float64
			bounds     []float64
		}{
			{"gen_ai.client.token.usage", "{token}", 2, with(primary, "gen_ai.token.type", "input"), 120, tokenBuckets},
			{"gen_ai.client.token.usage", "{token}", 2, with(primary, "gen_ai.token.type", "output"), 41, tokenBuckets},
			{"gen_ai.server.time_to_first_token", "s", 1, primary, 0.2, ttftBuckets},
			{"gen_ai.server.time_per_output_token", "s", 1, primary, 0.025, tpotBuckets}, // (1.2s - 0.2s) / 40
			{"gen_ai.server.request.duration", "s", 2, primary, 1.2, durationBuckets},
			{"gen_ai.server.request.duration", "s", 2, with(mirror, "error.type", "stream_error"), 0.3, durationBuckets},
			{"aviary.evaluation.score", "{score}", 1, map[string]any{"gen_ai.evaluation.name": "helpfulness",
				"aviary.service": "chat", "aviary.version": "v1", "aviary.role": "primary"}, 1.4, nil},
		} {
			m, ok := ms[c.name]
			if !ok {
				t.Errorf("%s: not received", c.name)
				continue
			}
			if m.Unit != c.unit || m.schemaURL != semconv.SchemaURL {
				t.Errorf("%s: unit %q, schema %q; want %q, %q", c.name, m.Unit, m.schemaURL, c.unit, semconv.SchemaURL)
			}
			h := m.GetHistogram()
			if h == nil || len(h.DataPoints) != c.points {
				t.Errorf("%s: %v, want a histogram of %d points", c.name, m.Data, c.points)
				continue
			}
			p := histogramPoint(h.DataPoints, c.want)
			if p == nil {
				t.Errorf("%s: no point with %v among %v", c.name, c.want, h.DataPoints)
				continue
			}
			if math.Abs(p.GetSum()-c.sum) > 1e-9 {
				t.Errorf("%s %v: sum %v, want %v", c.name, c.want, p.GetSum(), c.sum)
			}
			if c.bounds != nil && !reflect.DeepEqual(p.ExplicitBounds, c.bounds) {
				t.Errorf("%s: bounds %v, want the conventions' %v", c.name, p.ExplicitBounds, c.bounds)
			}
		}
		cost, ok := ms["aviary.llm.cost"]
		if !ok || cost.GetSum() == nil || !cost.GetSum().IsMonotonic || len(cost.GetSum().DataPoints) != 1 {
			t.Fatalf("aviary.llm.cost: %v, want a monotonic sum of one point (the mirror was not priced)", cost.Metric)
		}
		p := cost.GetSum().DataPoints[0]
		wantAttrs(t, attrs(p.Attributes), primary)
		if p.GetAsDouble() != 0.0021 || cost.Unit != "{currency}" {
			t.Errorf("aviary.llm.cost = %v %s, want 0.0021 {currency}", p.GetAsDouble(), cost.Unit)
		}
	})

	t.Run("headers and compression", func(t *testing.T) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, h := range rec.headers {
			if h.Get("Authorization") != "Bearer k" || h.Get("Content-Encoding") != "gzip" {
				t.Errorf("export without the configured header, or not gzipped: %v", h)
			}
		}
	})
}

// A client's W3C trace context makes the exchange's span a child of the client's span, in the
// client's trace, and its sampling decision holds; a traceparent that does not parse starts a new
// trace, as none does.
func TestAnExchangeJoinsTheClientsTrace(t *testing.T) {
	t.Parallel()
	rec := newReceiver(t)
	tel, err := New(t.Context(), Options{Endpoint: rec.URL, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	const traceID, spanID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	exchange(tel, Parent{TraceParent: "00-" + traceID + "-" + spanID + "-01", TraceState: "vendor=x"},
		"chat", "v1", false, "req-1", start, time.Second, 200, chatOK, 0, false)
	exchange(tel, Parent{TraceParent: "00-not-a-trace"}, "chat", "v1", false, "req-2", start, time.Second, 200, chatOK, 0, false)
	exchange(tel, Parent{}, "chat", "v1", false, "req-3", start, time.Second, 200, chatOK, 0, false)
	// A trace the client does not sample (flags 00) gets no span: the client's decision holds.
	exchange(tel, Parent{TraceParent: "00-" + traceID + "-" + spanID + "-00"}, "chat", "v1", false, "req-4", start, time.Second, 200, chatOK, 0, false)
	if err := tel.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	spans, _ := rec.spans()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3", len(spans))
	}
	joined := spans[0]
	if hex.EncodeToString(joined.TraceId) != traceID || hex.EncodeToString(joined.ParentSpanId) != spanID ||
		joined.TraceState != "vendor=x" {
		t.Errorf("span in trace %x under %x (state %q), want trace %s under span %s",
			joined.TraceId, joined.ParentSpanId, joined.TraceState, traceID, spanID)
	}
	for _, s := range spans[1:] {
		if len(s.ParentSpanId) != 0 || hex.EncodeToString(s.TraceId) == traceID || len(s.TraceId) != 16 {
			t.Errorf("span %x with parent %x: want the root of a new trace", s.TraceId, s.ParentSpanId)
		}
	}
}

func TestHTTPErrorsAndCutStreamsAreErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		status int
		x      llm.Exchange
		want   string
	}{
		{200, llm.Exchange{API: llm.OpenAIChat}, ""},
		{200, llm.Exchange{API: llm.OpenAIChat, Stream: true, Complete: true}, ""},
		{429, llm.Exchange{API: llm.OpenAIChat, StreamError: "rate_limit_exceeded"}, "429"},
		{200, llm.Exchange{API: llm.OpenAIResponses, Stream: true}, "stream_incomplete"},
		{200, llm.Exchange{API: llm.OpenAIResponses, Stream: true, StreamError: "server_error"}, "stream_error"},
	}
	for _, c := range cases {
		if got := failureOf(c.status, c.x).typ; got != c.want {
			t.Errorf("failureOf(%d, %+v).typ = %q, want %q", c.status, c.x, got, c.want)
		}
	}
}

func TestWithoutEndpointNothingIsDoneOrAllocated(t *testing.T) { // not parallel: AllocsPerRun
	off, err := New(t.Context(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, tel := range map[string]*Telemetry{"no endpoint": off, "nil": nil} {
		allocs := testing.AllocsPerRun(100, func() {
			exchange(tel, Parent{}, "chat", "v1", false, "req-1", start, time.Second, 200, chatOK, 0.01, true)
			tel.Evaluation("chat", "v1", false, "helpfulness", 0.8)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per exchange, want 0", name, allocs)
		}
		if err := tel.Shutdown(t.Context()); err != nil {
			t.Errorf("%s: Shutdown: %v", name, err)
		}
	}
}

func TestEndpointMustBeAnHTTPBaseURL(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"127.0.0.1:4318", "grpc://collector:4317", "http://", "http://collector:4318?x=1", "http://a b"} {
		_, err := New(t.Context(), Options{Endpoint: bad})
		if err == nil || !strings.Contains(err.Error(), "telemetry endpoint") {
			t.Errorf("New(%q) error %v, want one that names the endpoint", bad, err)
		}
	}
	for in, want := range map[string]string{
		"http://127.0.0.1:4318/":         "http://127.0.0.1:4318",
		"https://otlp.example.com/otlp":  "https://otlp.example.com/otlp",
		"https://otlp.example.com/otlp/": "https://otlp.example.com/otlp",
	} {
		if got, err := baseURL(in); err != nil || got != want {
			t.Errorf("baseURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// A collector that never answers must not slow the traffic: Exchange returns at once (spans
// beyond the queue are dropped), and Shutdown gives up when its context ends.
func TestAHangingCollectorNeverBlocksTraffic(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: frees the handlers so that Close returns
	tel, err := New(t.Context(), Options{Endpoint: srv.URL, Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const n = 5000 // more than the span queue holds (2048)
	began := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			exchange(tel, Parent{}, "chat", "v1", i%2 == 0, "req", start, time.Second, 200, chatOK, 0.01, true)
		}
	}()
	select { // the collector hangs until the test ends: an Exchange that waited for it would not return
	case <-done:
		t.Logf("%d exchanges in %v", n, time.Since(began))
	case <-time.After(30 * time.Second):
		t.Fatal("Exchange waited for the hanging collector, want no wait")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	err = tel.Shutdown(ctx)
	if took := time.Since(t0); took > 2*time.Second {
		t.Errorf("Shutdown took %v past its context's 200ms", took)
	}
	if err == nil {
		t.Error("Shutdown succeeded though nothing could be exported")
	}
}

func TestExportFailuresAreLoggedSparinglyAndReturnedByShutdown(t *testing.T) {
	t.Parallel()
	rec := newReceiver(t)
	rec.status = http.StatusBadRequest // not retried by the exporters
	var logs logtest.Buffer
	tel, err := New(t.Context(), Options{Endpoint: rec.URL, Interval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	exchange(tel, Parent{}, "chat", "v1", false, "req-1", start, time.Second, 200, chatOK, 0.01, true)
	polltest.Wait(t, 10*time.Second, "several failed metric exports", func() bool { return rec.exports() >= 5 })
	err = tel.Shutdown(t.Context())
	if err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("Shutdown error %v, want the collector's refusal", err)
	}
	out := logs.String()
	if n := strings.Count(out, "telemetry export failed"); n != 1 {
		t.Errorf("%d failures logged, want 1 a minute for the metrics; log:\n%s", n, out)
	}
	if !strings.Contains(out, "signal=metrics") || !strings.Contains(out, rec.URL) {
		t.Errorf("log does not say which signal failed, and where:\n%s", out)
	}
}

func (r *receiver) exports() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.headers)
}

// wantAttrs checks that got has every attribute of want, and none of absent.
func wantAttrs(t *testing.T, got, want map[string]any, absent ...string) {
	t.Helper()
	for k, v := range want {
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("attribute %s = %#v, want %#v", k, got[k], v)
		}
	}
	for _, k := range absent {
		if v, ok := got[k]; ok {
			t.Errorf("attribute %s = %#v, want none", k, v)
		}
	}
}

// histogramPoint returns the point whose attributes include every one of want.
func histogramPoint(points []*metricpb.HistogramDataPoint, want map[string]any) *metricpb.HistogramDataPoint {
	for _, p := range points {
		if includes(p.Attributes, want) {
			return p
		}
	}
	return nil
}

func includes(kvs []*commonpb.KeyValue, want map[string]any) bool {
	got := attrs(kvs)
	for k, v := range want {
		if !reflect.DeepEqual(got[k], v) {
			return false
		}
	}
	return true
}

// BenchmarkExchange is the cost a recorded exchange adds to the gateway's request path.
func BenchmarkExchange(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	tel, err := New(b.Context(), Options{Endpoint: srv.URL, Interval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = tel.Shutdown(context.Background()) }()
	b.ReportAllocs()
	for b.Loop() {
		exchange(tel, Parent{}, "chat", "v1", false, "req-1", start, time.Second, 200, chatOK, 0.01, true)
	}
}

// exchange records one exchange with tel, its record spelt out.
func exchange(tel *Telemetry, p Parent, service, version string, mirror bool, id string, start time.Time, d time.Duration,
	status int, x llm.Exchange, cost float64, priced bool) {
	tel.Exchange(llm.Record{Service: service, Version: version, Mirror: mirror, RequestID: id, Start: start, Duration: d,
		Status: status, Exchange: x, TraceParent: p.TraceParent, TraceState: p.TraceState}, Cost{Value: cost, Priced: priced})
}

// The metrics carry the model labels the caller bounded (a made-up model as "other"); the span
// keeps the model the client named.
func TestMetricsTakeTheBoundedModelLabels(t *testing.T) {
	t.Parallel()
	rec := newReceiver(t)
	tel, err := New(t.Context(), Options{Endpoint: rec.URL + "/", Interval: time.Hour, ServiceName: "aviary-test"})
	if err != nil {
		t.Fatal(err)
	}
	x := chatOK
	x.RequestModel, x.ResponseModel = "made-up-1234", "made-up-1234"
	tel.Exchange(llm.Record{Service: "chat", Version: "v1", RequestID: "req-1", Start: start, Duration: time.Second,
		Status: 200, Exchange: x}, Cost{RequestModel: "other", ResponseModel: "other"})
	if err := tel.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	spans, _ := rec.spans()
	if len(spans) != 1 || attrs(spans[0].Attributes)["gen_ai.request.model"] != "made-up-1234" {
		t.Fatalf("the span must keep the client's model: %+v", spans)
	}
	ms := rec.metricsByName()
	d := ms["gen_ai.server.request.duration"].GetHistogram().GetDataPoints()
	if histogramPoint(d, map[string]any{"gen_ai.request.model": "other", "gen_ai.response.model": "other"}) == nil {
		t.Fatalf("the duration metric must carry the bounded model labels: %+v", d)
	}
	if histogramPoint(d, map[string]any{"gen_ai.request.model": "made-up-1234"}) != nil {
		t.Fatal("a made-up model reached a metric label")
	}
}
