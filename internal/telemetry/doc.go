// Package telemetry exports Aviary's LLM traffic to an OpenTelemetry collector over OTLP/HTTP
// (protobuf, gzip), named by the OpenTelemetry semantic conventions for generative AI as
// published in semantic conventions v1.41.0 (go.opentelemetry.io/otel/semconv/v1.41.0, the last
// release of the main conventions that carries them; they have since moved to their own
// repository, still in development).
//
// For each LLM exchange the gateway saw, [Telemetry.Exchange] records:
//
//   - one span of kind CLIENT named "chat {gen_ai.request.model}", from the request going
//     upstream to the end of the response, with gen_ai.operation.name, gen_ai.provider.name,
//     gen_ai.request.model, gen_ai.response.model, gen_ai.request.stream,
//     gen_ai.usage.input_tokens / output_tokens / cache_read.input_tokens /
//     reasoning.output_tokens, gen_ai.response.finish_reasons, http.response.status_code and
//     error.type, plus Aviary's own aviary.service, aviary.version, aviary.role (primary or
//     mirror), aviary.request_id and aviary.cost. Its status is Error when the upstream answered
//     4xx or 5xx, when the body reported an error (also after a 200), or when a stream was cut;
//   - the histograms gen_ai.client.token.usage ({token}, by gen_ai.token.type input or
//     output), gen_ai.server.time_to_first_token, gen_ai.server.time_per_output_token and
//     gen_ai.server.request.duration (s), with the conventions' bucket boundaries, and the
//     counter aviary.llm.cost. Their attributes are gen_ai.operation.name, gen_ai.provider.name,
//     gen_ai.request.model, gen_ai.response.model, aviary.service, aviary.version and
//     aviary.role, and error.type on the duration. The same figures, by the same names, are
//     what package llmstats gives Prometheus.
//
// [Telemetry.Evaluation] records an evaluator's score as the histogram aviary.evaluation.score
// with gen_ai.evaluation.name. The conventions define evaluation results as an event
// (gen_ai.evaluation.result, a log record), not as a metric, so the metric takes Aviary's name,
// the one Prometheus knows it by, and the conventions' attribute for the score's name.
//
// The error.type values reported are the upstream's HTTP status code ("429", "500", …) when it
// is 400 or more, "stream_error" when the body reported an error, and "stream_incomplete" when
// a stream ended before its normal end.
//
// Telemetry must never slow or fail traffic. Exchange and Evaluation do not block: they update
// in-memory aggregates and hand the span to a bounded queue that drops when it is full (the
// OpenTelemetry SDK's batch span processor); export happens on the SDK's own goroutines.
// Export failures are logged, at most once a minute per signal, and never reach the caller.
// Metric series are bounded by the SDK's cardinality limit (2,000 attribute sets per
// instrument; beyond it, one overflow series). Without an endpoint, New returns a Telemetry
// whose methods do nothing and allocate nothing.
package telemetry
