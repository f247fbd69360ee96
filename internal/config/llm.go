package config

// LLM makes the gateway read a service's traffic as calls to an LLM API: model, tokens, time to
// first token, pace, cost, errors in the middle of a stream. It reads beside the bytes it forwards;
// the client still gets every chunk as soon as the upstream sends it.
type LLM struct {
	// API is openai, anthropic, or auto (by path and headers).
	API string `yaml:"api" json:"api,omitempty"`
	// IncludeUsage asks the upstream for usage on streams whose client did not, and removes that
	// extra usage chunk from what the client receives.
	IncludeUsage bool `yaml:"includeUsage" json:"includeUsage,omitempty"`
	// MaxRequestBytes bounds the request body read to learn the model and to rewrite it; a larger
	// request is forwarded untouched and unread.
	MaxRequestBytes int64      `yaml:"maxRequestBytes" json:"maxRequestBytes,omitempty"`
	Evaluator       *Evaluator `yaml:"evaluator" json:"evaluator,omitempty"`
}

// Evaluator sends a share of completed exchanges to an evaluator the user runs (an LLM judge, a
// safety classifier) and records the scores and labels it answers as per-version measurements.
type Evaluator struct {
	URL         string   `yaml:"url" json:"url,omitempty"`
	Percent     float64  `yaml:"percent" json:"percent,omitempty"`
	MaxBytes    int      `yaml:"maxBytes" json:"maxBytes,omitempty"` // of input and of output sent
	Timeout     Duration `yaml:"timeout" json:"timeout,omitempty"`
	MaxInFlight int      `yaml:"maxInFlight" json:"maxInFlight,omitempty"`
	// Scores is the range the evaluator's scores fall in (default 0..1): a score outside it is
	// dropped and logged, so that the judge may rely on the bounds (a bounded mean is judged with
	// finite-sample validity, see docs/analysis.md).
	Scores *ScoreRange `yaml:"scores" json:"scores,omitempty"`
}

// VersionLLM rewrites requests on their way to a version, so that a new model, a new system prompt
// or new parameters can be rolled out without a new deployment.
type VersionLLM struct {
	Model        string `yaml:"model" json:"model,omitempty"`
	SystemPrompt string `yaml:"systemPrompt" json:"systemPrompt,omitempty"`
	// SystemPromptMode is replace (the default) or prepend.
	SystemPromptMode string         `yaml:"systemPromptMode" json:"systemPromptMode,omitempty"`
	Params           map[string]any `yaml:"params" json:"params,omitempty"` // e.g. temperature, max_tokens
	// Oversized says what becomes of a request over the service's llm.maxRequestBytes, which the
	// gateway does not read and so cannot rewrite: forward (the default) sends it on as the client
	// wrote it, counted and logged; refuse answers 413.
	Oversized Oversized `yaml:"oversized" json:"oversized,omitempty"`
}

// Oversized is what a version does with a request too large to rewrite.
type Oversized string

// The choices of VersionLLM.Oversized.
const (
	OversizedForward Oversized = "forward"
	OversizedRefuse  Oversized = "refuse"
)

// Price is what a model costs, in currency units per million tokens.
type Price struct {
	Model string  `yaml:"model" json:"model,omitempty"`
	Input float64 `yaml:"input" json:"input,omitempty"`
	// CachedInput prices input tokens read from a prompt cache; 0 means they cost what other
	// input tokens do.
	CachedInput float64 `yaml:"cachedInput" json:"cachedInput,omitempty"`
	// CacheWrite prices input tokens written to a prompt cache (Anthropic's cache writes); 0 means
	// they cost what other input tokens do.
	CacheWrite float64 `yaml:"cacheWrite" json:"cacheWrite,omitempty"`
	Output     float64 `yaml:"output" json:"output,omitempty"`
}

// LLMSettings are the process-wide LLM settings: the price table and the feedback join.
type LLMSettings struct {
	Prices []Price `yaml:"prices" json:"prices,omitempty"`
	// FeedbackWindow is how long a response's request id can be joined to feedback.
	FeedbackWindow Duration `yaml:"feedbackWindow" json:"feedbackWindow,omitempty"`
	// FeedbackEntries bounds the request ids remembered for the join.
	FeedbackEntries int `yaml:"feedbackEntries" json:"feedbackEntries,omitempty"`
	// FeedbackScores is the range feedback scores must fall in (default 0..1); a score outside it
	// is refused (400). Not below 0: the judge compares means by their ratio.
	FeedbackScores *ScoreRange `yaml:"feedbackScores" json:"feedbackScores,omitempty"`
	// Models are model names shown as themselves in the metrics' model labels, besides the price
	// table's and the versions' rewrites; any other name a client asks for is shown as "other".
	Models []string `yaml:"models" json:"models,omitempty"`
}

// ScoreRange is a closed range of scores.
type ScoreRange struct {
	Min float64 `yaml:"min" json:"min"`
	Max float64 `yaml:"max" json:"max"`
}

// DefaultFeedbackScores is the range of feedback scores when the config sets none.
func DefaultFeedbackScores() *ScoreRange { return &ScoreRange{Min: 0, Max: 1} }

// DefaultEvaluatorScores is the range of an evaluator's scores when its config sets none.
func DefaultEvaluatorScores() *ScoreRange { return &ScoreRange{Min: 0, Max: 1} }

// Telemetry exports LLM traffic as OpenTelemetry spans and metrics (GenAI conventions).
type Telemetry struct {
	OTLP *OTLP `yaml:"otlp" json:"otlp,omitempty"`
}

// OTLP is an OpenTelemetry collector reached over OTLP/HTTP.
type OTLP struct {
	Endpoint    string            `yaml:"endpoint" json:"endpoint,omitempty"` // e.g. http://127.0.0.1:4318
	Headers     map[string]string `yaml:"headers" json:"-"`
	Interval    Duration          `yaml:"interval" json:"interval,omitempty"` // metric export interval
	ServiceName string            `yaml:"serviceName" json:"serviceName,omitempty"`
}
