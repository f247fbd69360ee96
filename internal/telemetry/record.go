package telemetry

import (
	"cmp"
	"context"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/semconv/v1.41.0/genaiconv"
	"go.opentelemetry.io/otel/trace"

	"aviary.dev/aviary/internal/llm"
)

// Aviary's own attributes, for what the conventions do not name.
const (
	attrService   = attribute.Key("aviary.service")
	attrVersion   = attribute.Key("aviary.version")
	attrRole      = attribute.Key("aviary.role") // "primary" or "mirror"
	attrRequestID = attribute.Key("aviary.request_id")
	attrCost      = attribute.Key("aviary.cost")
)

// Aviary's own metrics.
const (
	metricCost            = "aviary.llm.cost"
	metricEvaluationScore = "aviary.evaluation.score"
)

// error.type values besides the HTTP status code.
const (
	errStream           = "stream_error"
	errStreamIncomplete = "stream_incomplete"
)

// Bucket boundaries the conventions advise for each histogram.
var (
	tokenBuckets    = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
	durationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	ttftBuckets     = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0}
	tpotBuckets     = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5}
)

// instruments are the metrics. The conventions' ones come from genaiconv, which carries their
// names, units and descriptions as the conventions publish them.
type instruments struct {
	tokens     metric.Int64Histogram
	ttft       metric.Float64Histogram
	tpot       metric.Float64Histogram
	duration   metric.Float64Histogram
	cost       metric.Float64Counter
	evaluation metric.Float64Histogram
}

func newInstruments(m metric.Meter) (instruments, error) {
	tokens, err1 := genaiconv.NewClientTokenUsage(m, metric.WithExplicitBucketBoundaries(tokenBuckets...))
	ttft, err2 := genaiconv.NewServerTimeToFirstToken(m, metric.WithExplicitBucketBoundaries(ttftBuckets...))
	tpot, err3 := genaiconv.NewServerTimePerOutputToken(m, metric.WithExplicitBucketBoundaries(tpotBuckets...))
	duration, err4 := genaiconv.NewServerRequestDuration(m, metric.WithExplicitBucketBoundaries(durationBuckets...))
	cost, err5 := m.Float64Counter(metricCost, metric.WithUnit("{currency}"),
		metric.WithDescription("Cost of LLM calls by the price table, in its currency; shadow copies are under aviary.role=mirror."))
	eval, err6 := m.Float64Histogram(metricEvaluationScore, metric.WithUnit("{score}"),
		metric.WithDescription("Scores the evaluator gave, by gen_ai.evaluation.name."))
	return instruments{tokens: tokens.Inst(), ttft: ttft.Inst(), tpot: tpot.Inst(), duration: duration.Inst(), cost: cost, evaluation: eval},
		firstErr(err1, err2, err3, err4, err5, err6)
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func role(mirror bool) string {
	if mirror {
		return "mirror"
	}
	return "primary"
}

// provider is gen_ai.provider.name: the flavour of the wire format, which is what the gateway
// knows (an OpenAI-compatible server may host any model).
func provider(api string) string {
	switch api {
	case llm.OpenAIChat, llm.OpenAIResponses:
		return string(genaiconv.ProviderNameOpenAI)
	case llm.Anthropic:
		return string(genaiconv.ProviderNameAnthropic)
	}
	return api
}

// failure is what went wrong with an exchange: its error.type ("" when it went well) and the
// span status message.
type failure struct{ typ, msg string }

func failureOf(status int, x llm.Exchange) failure {
	switch {
	case status >= 400:
		return failure{strconv.Itoa(status), "upstream answered HTTP " + strconv.Itoa(status)}
	case x.StreamError != "":
		return failure{errStream, x.StreamError}
	case x.Stream && !x.Complete:
		return failure{errStreamIncomplete, "stream ended before its end event"}
	}
	return failure{}
}

// Cost is an exchange's price; it counts only when Priced (its model has prices).
type Cost struct {
	Value  float64
	Priced bool
	// RequestModel and ResponseModel are the model labels for the metrics, bounded by the caller
	// (llmstats.Registry.ModelLabels: a model nobody configured is "other"), so that a client
	// naming made-up models cannot grow the metrics without bound. Empty: the exchange's own. The
	// span always carries the models as they were.
	RequestModel, ResponseModel string
}

// Exchange records one LLM exchange: a span from its start to start+duration (in the client's
// trace when it sent one), and the metrics. rec.Status is the upstream's HTTP status. It never
// blocks.
func (t *Telemetry) Exchange(rec llm.Record, cost Cost) {
	if t == nil || t.tp == nil {
		return
	}
	ctx := context.Background()
	x, duration := rec.Exchange, rec.Duration
	fail := failureOf(rec.Status, x)

	// The attributes every metric shares; the span takes them too. Each append(common, …) below
	// is used up (copied into a set) before the next one reuses the spare capacity.
	common := make([]attribute.KeyValue, 0, 24)
	common = append(common,
		semconv.GenAIOperationNameChat,
		semconv.GenAIProviderNameKey.String(provider(x.API)),
		attrService.String(rec.Service), attrVersion.String(rec.Version), attrRole.String(role(rec.Mirror)))
	spanAttrs := models(common, x.RequestModel, x.ResponseModel)
	common = models(common, cmp.Or(cost.RequestModel, x.RequestModel), cmp.Or(cost.ResponseModel, x.ResponseModel))
	base := attribute.NewSet(common...)
	in := &t.inst

	if fail.typ == "" {
		in.duration.Record(ctx, duration.Seconds(), metric.WithAttributeSet(base))
	} else {
		in.duration.Record(ctx, duration.Seconds(), metric.WithAttributes(append(common, semconv.ErrorTypeKey.String(fail.typ))...))
	}
	if x.FirstToken > 0 {
		in.ttft.Record(ctx, x.FirstToken.Seconds(), metric.WithAttributeSet(base))
	}
	// As llmstats measures it: the time after the first token, shared by the tokens after it.
	if x.Usage.Known && x.Usage.Output > 1 && x.FirstToken > 0 && duration > x.FirstToken {
		tpot := (duration - x.FirstToken) / time.Duration(x.Usage.Output-1)
		in.tpot.Record(ctx, tpot.Seconds(), metric.WithAttributeSet(base))
	}
	if x.Usage.Known {
		in.tokens.Record(ctx, x.Usage.Input, metric.WithAttributes(append(common, semconv.GenAITokenTypeInput)...))
		in.tokens.Record(ctx, x.Usage.Output, metric.WithAttributes(append(common, semconv.GenAITokenTypeOutput)...))
	}
	if cost.Priced {
		in.cost.Add(ctx, cost.Value, metric.WithAttributeSet(base))
	}

	t.span(rec, cost, fail, append(spanAttrs, attrRequestID.String(rec.RequestID)))
}

// models appends the model attributes that are set to a copy of attrs.
func models(attrs []attribute.KeyValue, request, response string) []attribute.KeyValue {
	out := append(make([]attribute.KeyValue, 0, len(attrs)+8), attrs...)
	if request != "" {
		out = append(out, semconv.GenAIRequestModel(request))
	}
	if response != "" {
		out = append(out, semconv.GenAIResponseModel(response))
	}
	return out
}

// Parent is the W3C trace context a client sent with its request (its traceparent and tracestate
// headers), so that the exchange's span joins the client's trace as a child of the client's span.
// The zero Parent, or one that does not parse, starts a new trace.
type Parent struct{ TraceParent, TraceState string }

func (p Parent) context() context.Context {
	ctx := context.Background()
	if p.TraceParent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": p.TraceParent, "tracestate": p.TraceState})
}

// span records the exchange's span; attrs are the common attributes and the request id.
func (t *Telemetry) span(rec llm.Record, cost Cost, fail failure, attrs []attribute.KeyValue) {
	x := rec.Exchange
	name := string(genaiconv.OperationNameChat)
	if x.RequestModel != "" {
		name += " " + x.RequestModel
	}
	attrs = append(attrs, semconv.GenAIRequestStream(x.Stream), semconv.HTTPResponseStatusCode(rec.Status))
	if x.Usage.Known {
		attrs = append(attrs, semconv.GenAIUsageInputTokens(int(x.Usage.Input)), semconv.GenAIUsageOutputTokens(int(x.Usage.Output)),
			semconv.GenAIUsageCacheReadInputTokens(int(x.Usage.Cached)))
		if x.Usage.CacheWrite > 0 { // only Anthropic reports it: absent, not zero
			attrs = append(attrs, semconv.GenAIUsageCacheCreationInputTokens(int(x.Usage.CacheWrite)))
		}
		if x.Usage.Reasoning > 0 { // Anthropic does not report it: absent, not zero
			attrs = append(attrs, semconv.GenAIUsageReasoningOutputTokens(int(x.Usage.Reasoning)))
		}
	}
	if len(x.FinishReasons) > 0 {
		attrs = append(attrs, semconv.GenAIResponseFinishReasons(x.FinishReasons...))
	}
	if cost.Priced {
		attrs = append(attrs, attrCost.Float64(cost.Value))
	}
	if fail.typ != "" {
		attrs = append(attrs, semconv.ErrorTypeKey.String(fail.typ))
	}
	parent := Parent{TraceParent: rec.TraceParent, TraceState: rec.TraceState}
	_, s := t.tracer.Start(parent.context(), name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithTimestamp(rec.Start), trace.WithAttributes(attrs...))
	if fail.typ != "" {
		s.SetStatus(codes.Error, fail.msg)
	}
	s.End(trace.WithTimestamp(rec.Start.Add(rec.Duration)))
}

// Evaluation records one score an evaluator gave to an exchange that a version served (a mirror
// copy's under aviary.role=mirror). It never blocks.
func (t *Telemetry) Evaluation(service, version string, mirror bool, name string, score float64) {
	if t == nil || t.tp == nil {
		return
	}
	t.inst.evaluation.Record(context.Background(), score, metric.WithAttributes(
		semconv.GenAIEvaluationName(name),
		attrService.String(service), attrVersion.String(version), attrRole.String(role(mirror))))
}
