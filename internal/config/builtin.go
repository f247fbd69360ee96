package config

// Builtin names one of the gateway's own metrics that a template may judge.
type Builtin string

// The builtin metrics. Their values are the names in the config file.
const (
	BuiltinErrorRate         Builtin = "errorRate"
	BuiltinLatency           Builtin = "latency"
	BuiltinTTFT              Builtin = "ttft"
	BuiltinInterTokenLatency Builtin = "interTokenLatency"
	BuiltinStreamErrorRate   Builtin = "streamErrorRate"
	BuiltinOutputTokens      Builtin = "outputTokens"
	BuiltinCostPerRequest    Builtin = "costPerRequest"
	BuiltinEvaluation        Builtin = "evaluation"
	BuiltinFeedback          Builtin = "feedback"
)

// BuiltinTest is how a builtin metric compares the canary with the baseline.
type BuiltinTest int

// The tests. A Count test compares how often something happens among requests (errors, requests
// slower than the stable's quantile); a Mean test compares a per-request mean where higher is
// worse (tokens, cost); a Score test compares a mean where lower is worse, or with a label, how
// often the label is given (a Count test then).
const (
	CountTest BuiltinTest = iota
	MeanTest
	ScoreTest
)

// BuiltinSource is what a builtin metric reads.
type BuiltinSource int

// The sources: the gateway's per-version request windows (package metrics), the LLM exchange
// totals (package llmstats), or evaluations and feedback (package quality).
const (
	FromGateway BuiltinSource = iota
	FromLLM
	FromQuality
)

// BuiltinSpec says what one builtin metric is: validation, defaults and the analysis's choice of
// judge all read it, so a new builtin is one row.
type BuiltinSpec struct {
	Test  BuiltinTest
	Reads BuiltinSource
	// Quantiled metrics count requests beyond the stable's quantile (a boundary found first);
	// they need quantile, DefaultQuantile when left out.
	Quantiled bool
	// Slowdown: the metric may say how much slower the canary's quantile may be (latency).
	Slowdown bool
	// NamedScore: the metric judges the mean of a score it names (evaluation's score), or a label.
	NamedScore bool
	// Margin is the default margin.
	Margin float64
	// Effect, when set, is the default detectable effect; only these metrics take one.
	Effect *DetectableEffect
}

// Builtins are the builtin metrics, in the order errors list them.
var Builtins = []Builtin{BuiltinErrorRate, BuiltinLatency, BuiltinTTFT, BuiltinInterTokenLatency,
	BuiltinStreamErrorRate, BuiltinOutputTokens, BuiltinCostPerRequest, BuiltinEvaluation, BuiltinFeedback}

var builtinSpecs = map[Builtin]BuiltinSpec{
	BuiltinErrorRate: {Test: CountTest, Reads: FromGateway, Margin: DefaultMargin, Effect: &DefaultEffect},
	// Latency's margin is on the slowdown (DefaultSlowdown), judged at margin 1.
	BuiltinLatency: {Test: CountTest, Reads: FromGateway, Quantiled: true, Slowdown: true, Margin: 1,
		Effect: &DefaultLatencyEffect},
	BuiltinTTFT:              {Test: CountTest, Reads: FromLLM, Quantiled: true, Margin: DefaultLatencyMargin},
	BuiltinInterTokenLatency: {Test: CountTest, Reads: FromLLM, Quantiled: true, Margin: DefaultLatencyMargin},
	BuiltinStreamErrorRate:   {Test: CountTest, Reads: FromLLM, Margin: DefaultMargin},
	BuiltinOutputTokens:      {Test: MeanTest, Reads: FromLLM, Margin: DefaultMeanMargin},
	BuiltinCostPerRequest:    {Test: MeanTest, Reads: FromLLM, Margin: DefaultMeanMargin},
	BuiltinEvaluation:        {Test: ScoreTest, Reads: FromQuality, NamedScore: true, Margin: DefaultScoreMargin},
	BuiltinFeedback:          {Test: ScoreTest, Reads: FromQuality, Margin: DefaultScoreMargin},
}

// Spec is the builtin's row of the table; ok is false for a name that is not a builtin (and for
// the empty name of a metric from another provider).
func (b Builtin) Spec() (spec BuiltinSpec, ok bool) {
	spec, ok = builtinSpecs[b]
	return spec, ok
}

// BuiltinSpec is the row of the metric's builtin; the zero spec when it has none.
func (m *AnalysisMetric) BuiltinSpec() BuiltinSpec {
	s, _ := m.Builtin.Spec()
	return s
}
