package analysis

import (
	"time"
)

// MetricResult is the evidence of one metric: what the verdict shows for it.
type MetricResult struct {
	Template string `json:"template"`
	Metric   string `json:"metric"`
	Kind     string `json:"kind"` // sequential or threshold
	Critical bool   `json:"critical,omitempty"`
	DryRun   bool   `json:"dryRun,omitempty"`
	Phase    string `json:"phase"` // Running, Successful, Failed, Inconclusive, Error

	// Sequential: both versions, their counts, the effect and the evidence against the margin.
	Canary   *Side   `json:"canary,omitempty"`
	Baseline *Side   `json:"baseline,omitempty"`
	Effect   float64 `json:"effect,omitempty"` // canary rate / baseline rate
	Margin   float64 `json:"margin,omitempty"`
	Evidence float64 `json:"evidence,omitempty"`
	Needed   float64 `json:"needed,omitempty"`
	Boundary string  `json:"boundary,omitempty"` // latency: what "slow" means
	// Safe says whether the data rule out a regression of the metric's detectable effect (nil: the
	// metric has none); RuledOut says it in words.
	Safe     *bool  `json:"safe,omitempty"`
	RuledOut string `json:"ruledOut,omitempty"`
	// Dispersion is the overdispersion of the stable's own counts that the test applies (1: none).
	Dispersion   float64 `json:"dispersion,omitempty"`
	Measurements []Point `json:"measurements,omitempty"`

	// Threshold: counts of measurement outcomes.
	Successful        int `json:"successful,omitempty"`
	Failed            int `json:"failed,omitempty"`
	Inconclusive      int `json:"inconclusive,omitempty"`
	Errors            int `json:"errors,omitempty"`
	ConsecutiveErrors int `json:"consecutiveErrors,omitempty"`

	Text string `json:"text"` // the decision in words
}

// Side is one version's share of a sequential metric.
type Side struct {
	Version  string  `json:"version"`
	Requests int64   `json:"requests"`
	Events   int64   `json:"events"` // errors, or requests slower than the boundary
	Rate     float64 `json:"rate"`
}

// Point is one measurement in a metric's history.
type Point struct {
	At       time.Time `json:"at"`
	Value    any       `json:"value,omitempty"`
	Phase    string    `json:"phase"`
	Error    string    `json:"error,omitempty"`
	Evidence float64   `json:"evidence,omitempty"`
}

// Measurement phases, as users of other tools know them.
const (
	Running      = "Running"
	Successful   = "Successful"
	Failed       = "Failed"
	Inconclusive = "Inconclusive"
	Error        = "Error"
)

// RunReport is a run as the API shows it: GET /api/v1/services/{name}/analysis.
type RunReport struct {
	ID        string         `json:"id"`
	Kind      string         `json:"kind"`
	Service   string         `json:"service"`
	Stable    string         `json:"stable"`
	Canary    string         `json:"canary"`
	Templates []string       `json:"templates"`
	StartedAt time.Time      `json:"startedAt"`
	Verdict   string         `json:"verdict"`
	Message   string         `json:"message"`
	Metrics   []MetricResult `json:"metrics"`
}
