package analysis

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"aviary.dev/aviary/internal/analysis/provider"
	"aviary.dev/aviary/internal/config"
)

// threshold is a metric measured on an interval and judged by conditions, the way users of Argo
// Rollouts and Flagger know: a measurement is Successful, Failed, Inconclusive (neither condition
// holds) or Error (the query failed); limits turn counts of those into the metric's outcome.
type threshold struct {
	template string
	metric   config.AnalysisMetric
	prov     provider.Provider
	success  *vm.Program
	failure  *vm.Program

	next    time.Time // when to measure next
	taken   int
	res     MetricResult
	history []Point
	limit   int
}

func newThreshold(template string, m config.AnalysisMetric, p provider.Provider, start time.Time, limit int) (*threshold, error) {
	t := &threshold{template: template, metric: m, prov: p, next: start.Add(m.InitialDelay.Duration), limit: limit,
		res: MetricResult{Template: template, Metric: m.Name, Kind: "threshold", DryRun: m.DryRun, Phase: Running}}
	var err error
	if t.success, err = compile(m.SuccessCondition); err != nil {
		return nil, fmt.Errorf("successCondition of %s: %w", m.Name, err)
	}
	if t.failure, err = compile(m.FailureCondition); err != nil {
		return nil, fmt.Errorf("failureCondition of %s: %w", m.Name, err)
	}
	return t, nil
}

func compile(src string) (*vm.Program, error) {
	if src == "" {
		return nil, nil
	}
	return expr.Compile(src, expr.AsBool(), expr.AllowUndefinedVariables())
}

// due reports whether a measurement should be taken at now.
func (t *threshold) due(now time.Time) bool {
	done := t.metric.Count > 0 && t.taken >= t.metric.Count
	return !done && t.res.Phase == Running && !now.Before(t.next)
}

// measure takes one measurement and updates the metric's outcome.
func (t *threshold) measure(ctx context.Context, q provider.Query) {
	t.taken++
	t.next = q.Now.Add(t.metric.Interval.Duration)
	m, err := t.prov.Measure(ctx, q)
	p := Point{At: q.Now, Value: jsonSafe(m.Value)}
	switch {
	case err != nil:
		p.Phase, p.Error = Error, err.Error()
	default:
		p.Phase, err = t.judge(m.Value)
		if err != nil {
			p.Phase, p.Error = Error, err.Error()
		}
	}
	t.count(p)
	t.history = append(t.history, p)
	if len(t.history) > t.limit {
		t.history = t.history[len(t.history)-t.limit:]
	}
}

// judge applies the conditions to a value: failure first, then success; neither is Inconclusive.
// With only a success condition, a value that does not meet it has failed (and the reverse).
func (t *threshold) judge(v any) (string, error) {
	env := map[string]any{"result": v}
	run := func(p *vm.Program) (bool, error) {
		out, err := expr.Run(p, env)
		if err != nil {
			return false, fmt.Errorf("evaluate condition on %v: %w", v, err)
		}
		b, _ := out.(bool)
		return b, nil
	}
	if t.failure != nil {
		bad, err := run(t.failure)
		if err != nil || bad {
			return Failed, err
		}
	}
	if t.success != nil {
		ok, err := run(t.success)
		switch {
		case err != nil:
			return "", err
		case ok:
			return Successful, nil
		case t.failure == nil:
			return Failed, nil
		}
		return Inconclusive, nil
	}
	return Successful, nil // only a failure condition, and it did not hold
}

// count updates the tallies and the metric's phase by its limits.
func (t *threshold) count(p Point) {
	r, m := &t.res, t.metric
	switch p.Phase {
	case Successful:
		r.Successful++
		r.ConsecutiveErrors = 0
	case Failed:
		r.Failed++
		r.ConsecutiveErrors = 0
	case Inconclusive:
		r.Inconclusive++
		r.ConsecutiveErrors = 0
	case Error:
		r.Errors++
		r.ConsecutiveErrors++
	}
	last := fmt.Sprintf("last %v", p.Value)
	if p.Error != "" {
		last = "last error: " + p.Error
	}
	tally := fmt.Sprintf("%d successful, %d failed, %d inconclusive, %d errors", r.Successful, r.Failed, r.Inconclusive, r.Errors)
	switch {
	case r.Failed > m.FailureLimit:
		r.Phase = Failed
		r.Text = fmt.Sprintf("%s: %d failed measurements > failureLimit %d (%s; %s)", m.Name, r.Failed, m.FailureLimit, tally, last)
	case m.InconclusiveLimit > 0 && r.Inconclusive > m.InconclusiveLimit:
		r.Phase = Inconclusive
		r.Text = fmt.Sprintf("%s: %d inconclusive measurements > inconclusiveLimit %d (%s)", m.Name, r.Inconclusive, m.InconclusiveLimit, tally)
	case r.ConsecutiveErrors > m.ConsecutiveErrorLimit:
		r.Phase = Error
		r.Text = fmt.Sprintf("%s: %d failed queries in a row > consecutiveErrorLimit %d (%s)", m.Name, r.ConsecutiveErrors, m.ConsecutiveErrorLimit, last)
	case m.Count > 0 && t.taken >= m.Count && r.Successful == 0:
		// Missing data is never a success: every measurement erred or was inconclusive.
		r.Phase = Inconclusive
		r.Text = fmt.Sprintf("%s: all %d measurements taken and none successful (%s; %s)", m.Name, m.Count, tally, last)
	case m.Count > 0 && t.taken >= m.Count:
		r.Phase = Successful
		r.Text = fmt.Sprintf("%s: all %d measurements taken (%s; %s)", m.Name, m.Count, tally, last)
	default:
		r.Text = fmt.Sprintf("%s: %s; %s", m.Name, tally, last)
	}
}

// passed says whether the metric lets a step pass: done with its count, or (without a count) at
// least one successful measurement and no failure.
func (t *threshold) passed() bool {
	if t.metric.DryRun {
		return true
	}
	if t.metric.Count > 0 {
		return t.res.Phase == Successful
	}
	return t.res.Phase == Running && t.res.Successful > 0
}

// jsonSafe keeps a value that JSON cannot carry (NaN, ±Inf) as its name, so that reports encode.
func jsonSafe(v any) any {
	if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return fmt.Sprint(f)
	}
	return v
}
