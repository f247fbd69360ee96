package config

// Analysis holds the analysis templates that analysis steps, background analysis and blue-green
// pre/post-promotion analysis name. A template named "default" replaces the built-in default
// analysis (DefaultTemplate), which every rollout runs in the background unless its strategy says
// defaultAnalysis: false or runs a background analysis of its own.
type Analysis struct {
	Templates []AnalysisTemplate `yaml:"templates" json:"templates,omitempty"`
	// History bounds the measurements kept per metric of each analysis run.
	History int `yaml:"history" json:"history,omitempty"`
}

// AnalysisTemplate is a named set of metrics judged together.
type AnalysisTemplate struct {
	Name string `yaml:"name" json:"name,omitempty"`
	// Alpha is the false-rollback budget for the whole rollout, shared by the template's
	// comparative (sequential) metrics.
	Alpha   float64 `yaml:"alpha" json:"alpha,omitempty"`
	Minimum Minimum `yaml:"minimum" json:"minimum,omitempty"`
	// MaxWait: a step whose minimum is still not met after this long is inconclusive, and then
	// OnInconclusive decides: "pause" (wait for a person, the default) or "abort".
	MaxWait        Duration         `yaml:"maxWait" json:"maxWait,omitempty"`
	OnInconclusive string           `yaml:"onInconclusive" json:"onInconclusive,omitempty"`
	Metrics        []AnalysisMetric `yaml:"metrics" json:"metrics,omitempty"`
}

// Minimum is the exposure a canary needs before an analysis may pass it.
type Minimum struct {
	Duration Duration `yaml:"duration" json:"duration,omitempty"`
	Requests int      `yaml:"requests" json:"requests,omitempty"` // canary requests
}

// AnalysisMetric is one metric of a template. Exactly one provider is set: builtin (the gateway's
// own per-version measurements), prometheus, or web.
//
// A builtin metric without conditions compares canary with baseline by the sequential judge,
// within Margin. Every other metric is a threshold metric in the style users know: it is measured
// every Interval (Count times, after InitialDelay), each measurement is judged by
// SuccessCondition / FailureCondition (expressions over `result`), and FailureLimit,
// InconclusiveLimit and ConsecutiveErrorLimit decide the metric's outcome.
type AnalysisMetric struct {
	Name string `yaml:"name" json:"name,omitempty"`

	Builtin    Builtin           `yaml:"builtin" json:"builtin,omitempty"` // see Builtins
	Prometheus *PrometheusMetric `yaml:"prometheus" json:"prometheus,omitempty"`
	Web        *WebMetric        `yaml:"web" json:"web,omitempty"`

	// Sequential (builtin) comparison.
	Quantile float64 `yaml:"quantile" json:"quantile,omitempty"` // latency: the baseline quantile that bounds "slow"
	// Score names the evaluator's score an evaluation metric judges by its mean (e.g. quality);
	// Label instead judges how often a label is given (e.g. hallucination), for evaluation and
	// feedback metrics: a higher rate is worse.
	Score  string  `yaml:"score" json:"score,omitempty"`
	Label  string  `yaml:"label" json:"label,omitempty"`
	Margin float64 `yaml:"margin" json:"margin,omitempty"` // tolerated ratio canary/baseline
	// Slowdown (latency): how much slower the canary's quantile may be than the stable's, e.g. 0.1
	// for "p99 at most 10% slower". Requests slower than (1+slowdown) × the stable's quantile count
	// for the canary, slower than the quantile itself for the stable.
	Slowdown float64 `yaml:"slowdown" json:"slowdown,omitempty"`
	// DetectableEffect is what a pass must rule out (errorRate and latency): a step passes only
	// when the data show, at the template's confidence, that the canary's rate is below
	// max(ratio × stable's, stable's + points percentage points).
	DetectableEffect *DetectableEffect `yaml:"detectableEffect" json:"detectableEffect,omitempty"`
	// Critical metrics may fail a rollout the moment the evidence allows; others only once the
	// minimum exposure is met.
	Critical bool `yaml:"critical" json:"critical,omitempty"`

	// Threshold metrics.
	Interval              Duration `yaml:"interval" json:"interval,omitempty"`
	Count                 int      `yaml:"count" json:"count,omitempty"` // 0: until the analysis ends
	InitialDelay          Duration `yaml:"initialDelay" json:"initialDelay,omitempty"`
	SuccessCondition      string   `yaml:"successCondition" json:"successCondition,omitempty"`
	FailureCondition      string   `yaml:"failureCondition" json:"failureCondition,omitempty"`
	FailureLimit          int      `yaml:"failureLimit" json:"failureLimit,omitempty"`
	InconclusiveLimit     int      `yaml:"inconclusiveLimit" json:"inconclusiveLimit,omitempty"`
	ConsecutiveErrorLimit int      `yaml:"consecutiveErrorLimit" json:"consecutiveErrorLimit,omitempty"`
	// DryRun measures and reports, but never fails the analysis.
	DryRun bool `yaml:"dryRun" json:"dryRun,omitempty"`
}

// DetectableEffect is a regression of a count metric worth ruling out before a pass: a canary rate
// above max(Ratio × the stable's rate, the stable's rate + Points percentage points).
//
// For latency with a slowdown margin, Slowdown says it on the same scale instead: a pass rules out
// the canary's quantile being more than (1 + Slowdown) × the stable's (its requests slower than
// that are shown fewer than the stable's requests slower than its quantile).
type DetectableEffect struct {
	Ratio    float64 `yaml:"ratio" json:"ratio,omitempty"`
	Points   float64 `yaml:"points" json:"points,omitempty"` // percentage points: 1 is one point
	Slowdown float64 `yaml:"slowdown" json:"slowdown,omitempty"`
}

// PrometheusMetric queries a Prometheus HTTP API. The query may use {{service}}, {{version}}
// (the canary), {{canary}} and {{stable}}. With Range, it is a range query over the last
// Range.Duration at Range.Step, and result is the list of values.
//
// Requests and Errors instead make it a comparative metric, judged canary against baseline by the
// same sequential test as builtin errorRate: each is a query for a cumulative counter, asked for
// the canary and for the stable in turn ({{version}} is each), e.g.
// sum(http_requests_total{version="{{version}}"}) and the same with code=~"5..". Between two looks
// the test counts how much each grew. Such a metric has no conditions; margin is its tolerance.
type PrometheusMetric struct {
	Address  string      `yaml:"address" json:"address,omitempty"`
	Query    string      `yaml:"query" json:"query,omitempty"`
	Requests string      `yaml:"requests" json:"requests,omitempty"`
	Errors   string      `yaml:"errors" json:"errors,omitempty"`
	Range    *QueryRange `yaml:"range" json:"range,omitempty"`
	Timeout  Duration    `yaml:"timeout" json:"timeout,omitempty"`
}

// Counted reports a comparative Prometheus metric: one with requests or errors counters.
func (p *PrometheusMetric) Counted() bool { return p != nil && (p.Requests != "" || p.Errors != "") }

// QueryRange makes a Prometheus query a range query.
type QueryRange struct {
	Duration Duration `yaml:"duration" json:"duration,omitempty"`
	Step     Duration `yaml:"step" json:"step,omitempty"`
}

// WebMetric reads any JSON endpoint; JSONPath picks the result ("$.ok", "$.data[0].value").
// URL, headers, body and jsonPath may use the same placeholders as a Prometheus query.
type WebMetric struct {
	URL      string            `yaml:"url" json:"url,omitempty"`
	Method   string            `yaml:"method" json:"method,omitempty"`
	Headers  map[string]string `yaml:"headers" json:"headers,omitempty"`
	Body     string            `yaml:"body" json:"body,omitempty"`
	JSONPath string            `yaml:"jsonPath" json:"jsonPath,omitempty"`
	Timeout  Duration          `yaml:"timeout" json:"timeout,omitempty"`
}
