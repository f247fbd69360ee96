package config

import (
	"fmt"
	"maps"
	"math"
	"net/url"
	"slices"
	"strings"

	"github.com/expr-lang/expr"
	"golang.org/x/net/http/httpguts"
)

func (v *validator) analysis(a *Analysis) map[string]bool {
	names := map[string]bool{DefaultTemplateName: true}
	if a.History < 1 {
		v.addf("analysis.history", "%d must be at least 1", a.History)
	}
	for i := range a.Templates {
		t := &a.Templates[i]
		p := fmt.Sprintf("analysis.templates[%d]", i)
		switch {
		case !namePattern.MatchString(t.Name):
			v.addf(p+".name", "%q must be lower-case letters, digits, '.', '_' or '-'", t.Name)
		case names[t.Name] && t.Name != DefaultTemplateName:
			v.addf(p+".name", "%q is the name of another template", t.Name)
		}
		names[t.Name] = true
		v.template(p, t)
	}
	return names
}

func (v *validator) template(p string, t *AnalysisTemplate) {
	if t.Alpha <= 0 || t.Alpha >= 0.5 {
		v.addf(p+".alpha", "%g is not in (0, 0.5): it is the false-rollback budget, e.g. 0.01", t.Alpha)
	}
	v.nonNegative(p+".minimum.duration", t.Minimum.Duration)
	if t.Minimum.Requests < 0 {
		v.addf(p+".minimum.requests", "%d must not be negative", t.Minimum.Requests)
	}
	v.positive(p+".maxWait", t.MaxWait)
	if t.OnInconclusive != "pause" && t.OnInconclusive != "abort" {
		v.addf(p+".onInconclusive", "%q must be pause or abort", t.OnInconclusive)
	}
	if len(t.Metrics) == 0 {
		v.addf(p+".metrics", "a template needs at least one metric")
	}
	seen := map[string]bool{}
	for i := range t.Metrics {
		m := &t.Metrics[i]
		mp := fmt.Sprintf("%s.metrics[%d]", p, i)
		if m.Name == "" {
			v.addf(mp+".name", "is required")
		} else if seen[m.Name] {
			v.addf(mp+".name", "%q is the name of another metric of this template", m.Name)
		}
		seen[m.Name] = true
		v.metric(mp, m)
	}
}

func (v *validator) metric(p string, m *AnalysisMetric) {
	providers := 0
	for _, set := range []bool{m.Builtin != "", m.Prometheus != nil, m.Web != nil} {
		if set {
			providers++
		}
	}
	if providers != 1 {
		v.addf(p, "set exactly one provider: builtin, prometheus or web (found %d)", providers)
	}
	threshold := m.SuccessCondition != "" || m.FailureCondition != ""
	spec, builtin := m.Builtin.Spec()
	if m.Builtin != "" && !builtin {
		v.addf(p+".builtin", "%q is not a builtin metric; choose one of %s", m.Builtin, joinKinds(Builtins))
	}
	score := spec.Test == ScoreTest && builtin
	if spec.Quantiled && (m.Quantile <= 0 || m.Quantile >= 1) {
		v.addf(p+".quantile", "%g is not in (0, 1), e.g. 0.99", m.Quantile)
	}
	switch {
	case m.Label != "" && !score:
		v.addf(p+".label", "applies to evaluation and feedback metrics only")
	case m.Label != "" && m.Score != "":
		v.addf(p, "set score (judge its mean) or label (judge how often it is given), not both")
	case m.Label != "" && m.Margin < 1:
		v.addf(p+".margin", "%g must be at least 1: a label's rate may be this many times the baseline's, e.g. 1.2", m.Margin)
	case m.Label != "":
	case score && (m.Margin <= 0 || m.Margin > 1):
		v.addf(p+".margin", "%g must be in (0, 1]: the canary's mean may be this share of the baseline's, e.g. 0.95", m.Margin)
	case !score && m.Margin < 1:
		v.addf(p+".margin", "%g must be at least 1: it is the tolerated ratio canary/baseline, e.g. 1.2", m.Margin)
	}
	v.effect(p, m, spec)
	if spec.NamedScore && m.Score == "" && m.Label == "" {
		v.addf(p+".score", "name the evaluator's score to judge (e.g. quality), or a label whose rate to judge")
	}
	counted := m.Prometheus.Counted()
	switch {
	case counted && threshold:
		v.addf(p, "a prometheus metric with requests and errors is judged canary against baseline; drop successCondition and failureCondition, or use query instead")
	case (m.Prometheus != nil || m.Web != nil) && !threshold && !counted:
		v.addf(p, "an external metric needs successCondition or failureCondition (e.g. \"result < 0.01\"), or, for prometheus, requests and errors counters to compare canary with baseline")
	}
	v.conditions(p, m)
	if threshold {
		v.interval(p+".interval", m.Interval)
	}
	v.limits(p, m)
	if pm := m.Prometheus; pm != nil {
		v.prometheusMetric(p+".prometheus", pm)
	}
	if w := m.Web; w != nil {
		v.webMetric(p+".web", w)
	}
}

// conditions checks that a metric's success and failure conditions compile.
func (v *validator) conditions(p string, m *AnalysisMetric) {
	for _, c := range []struct{ name, src string }{{"successCondition", m.SuccessCondition}, {"failureCondition", m.FailureCondition}} {
		if c.src == "" {
			continue
		}
		if _, err := expr.Compile(c.src, expr.Env(map[string]any{"result": 0.0}), expr.AllowUndefinedVariables()); err != nil {
			v.addf(p+"."+c.name, "%q is not a valid expression: %v", c.src, err)
		}
	}
}

// limits checks a metric's initial delay and counts, none of which may be negative.
func (v *validator) limits(p string, m *AnalysisMetric) {
	v.nonNegative(p+".initialDelay", m.InitialDelay)
	for _, n := range []struct {
		name string
		v    int
	}{{"count", m.Count}, {"failureLimit", m.FailureLimit}, {"inconclusiveLimit", m.InconclusiveLimit}, {"consecutiveErrorLimit", m.ConsecutiveErrorLimit}} {
		if n.v < 0 {
			v.addf(p+"."+n.name, "%d must not be negative", n.v)
		}
	}
}

// prometheusMetric checks a metric's prometheus provider (p ends in .prometheus).
func (v *validator) prometheusMetric(p string, pm *PrometheusMetric) {
	v.endpoint(p+".address", pm.Address)
	switch {
	case pm.Counted() && pm.Query != "":
		v.addf(p, "set query (a threshold metric) or requests and errors (a comparison), not both")
	case pm.Counted() && (pm.Requests == "" || pm.Errors == ""):
		v.addf(p, "requests and errors go together: both are counters, asked for each version through {{version}}")
	case pm.Counted() && pm.Range != nil:
		v.addf(p+".range", "does not apply to requests and errors, which are read at every look")
	case !pm.Counted() && pm.Query == "":
		v.addf(p+".query", "is required (or requests and errors, to compare canary with baseline)")
	}
	if r := pm.Range; r != nil {
		v.positive(p+".range.duration", r.Duration)
		v.positive(p+".range.step", r.Step)
	}
	v.positive(p+".timeout", pm.Timeout)
}

// webMetric checks a metric's web provider (p ends in .web).
func (v *validator) webMetric(p string, w *WebMetric) {
	v.webURL(p+".url", w.URL)
	for _, name := range slices.Sorted(maps.Keys(w.Headers)) {
		// The path stops at the map: a name with a line break must not break the error's line.
		v.headerName(p+".headers", name)
		if !httpguts.ValidHeaderFieldValue(w.Headers[name]) {
			v.addf(p+".headers", "the value of %q has a line break or a control character; HTTP header values cannot", name)
		}
	}
	v.positive(p+".timeout", w.Timeout)
}

// webURL checks a URL that may carry a query and placeholders ({{version}} and the like).
func (v *validator) webURL(p, raw string) {
	u, err := url.Parse(strings.NewReplacer("{{service}}", "x", "{{version}}", "x", "{{canary}}", "x", "{{stable}}", "x").Replace(raw))
	switch {
	case err != nil:
		v.addf(p, "%q is not a URL: %v", raw, err)
	case u.Scheme != "http" && u.Scheme != "https":
		v.addf(p, "%q must start with http:// or https://", raw)
	case u.Host == "":
		v.addf(p, "%q has no host", raw)
	default:
		v.urlPort(p, raw, u)
	}
}

// effect checks a metric's slowdown margin and its detectable effect.
func (v *validator) effect(p string, m *AnalysisMetric, spec BuiltinSpec) {
	if m.Slowdown != 0 && (!spec.Slowdown || !(m.Slowdown > 0 && m.Slowdown <= 10)) {
		v.addf(p+".slowdown", "%g: a slowdown applies to the latency builtin and is in (0, 10], e.g. 0.1 for a quantile at most 10%% slower", m.Slowdown)
	}
	if e := m.DetectableEffect; e != nil {
		switch {
		case spec.Effect == nil:
			v.addf(p+".detectableEffect", "applies to the errorRate and latency builtins only")
		case e.Ratio != 0 && e.Ratio < 1, math.IsInf(e.Ratio, 0) || math.IsNaN(e.Ratio):
			v.addf(p+".detectableEffect.ratio", "%g must be at least 1 (or 0: points only): a pass rules out a canary rate this many times the stable's, e.g. 2", e.Ratio)
		case e.Points < 0 || e.Points > 100 || math.IsNaN(e.Points):
			v.addf(p+".detectableEffect.points", "%g must be in [0, 100]: a pass rules out a canary rate this many percentage points above the stable's, e.g. 1", e.Points)
		case e.Slowdown != 0 && (m.Slowdown <= 0 || !(e.Slowdown > m.Slowdown) || e.Slowdown > 10):
			v.addf(p+".detectableEffect.slowdown", "%g must be above the metric's slowdown (%g) and at most 10: a pass rules out the canary's quantile this much slower than the stable's, e.g. 0.25", e.Slowdown, m.Slowdown)
		case e.Slowdown != 0 && (e.Ratio != 0 || e.Points != 0):
			v.addf(p+".detectableEffect", "set slowdown, or ratio and points, not both")
		}
	}
}
