package llm

import "time"

// Record is one LLM exchange as the gateway saw it: who served it, when, with what HTTP status,
// and what the parser learned of the response. The gateway passes it by value to the
// measurements (llmstats), the telemetry and the evaluators.
type Record struct {
	Service, Version string
	Mirror           bool // a shadow copy, measured apart
	RequestID        string
	Status           int
	Start            time.Time
	Duration         time.Duration
	Exchange         Exchange
	// Input and Output are the request as sent and the first bytes of the response, kept only
	// for a service with an evaluator: up to its maxBytes and one more, so that it can tell
	// what was cut. Without one, copying the answer aside would be work for nobody.
	Input, Output []byte
	// TraceParent and TraceState are the client's W3C trace context headers, if it sent them, so
	// that the exchange's span can join the client's trace.
	TraceParent, TraceState string
	// Flags are the variants of the service's measured flags that the request's user had, so that
	// the exchange is also measured under each variant (a flag rollout of an LLM service).
	Flags []FlagVariant
	// Key is the sticky key of the request's user when the gateway placed it by weight with one
	// ("" otherwise): experiments turn the records into their units' ttft and cost.
	Key string
}

// FlagVariant is the variant of one flag a request's user had.
type FlagVariant struct{ Flag, Variant string }
