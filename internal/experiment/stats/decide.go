package stats

import (
	"fmt"
	"math"
	"strings"
)

// Goal is the direction in which a metric is better.
type Goal string

// The goals.
const (
	Increase Goal = "increase"
	Decrease Goal = "decrease"
)

// ArmResult is one arm against control on one metric.
type ArmResult struct {
	Arm string `json:"arm"`
	Comparison
	PSequentialAdjusted float64 `json:"pSequentialAdjusted"`
	PFixedAdjusted      float64 `json:"pFixedAdjusted"`
}

// better says whether the arm's effect is in the goal's direction.
func (r ArmResult) better(g Goal) bool {
	if g == Decrease {
		return r.Absolute.Estimate < 0
	}
	return r.Absolute.Estimate > 0
}

// MetricResult is every arm against control on one metric.
type MetricResult struct {
	Metric    string      `json:"metric"`
	Goal      Goal        `json:"goal"`
	Guardrail bool        `json:"guardrail"`
	Arms      []ArmResult `json:"arms"`
}

// AdjustAll fills the adjusted p-values across all metrics × arms.
func AdjustAll(ms []MetricResult, a Adjustment) {
	var seq, fixed []float64
	for _, m := range ms {
		for _, r := range m.Arms {
			seq = append(seq, r.PSequential)
			fixed = append(fixed, r.PFixed)
		}
	}
	seq, fixed = Adjust(seq, a), Adjust(fixed, a)
	k := 0
	for i := range ms {
		for j := range ms[i].Arms {
			ms[i].Arms[j].PSequentialAdjusted = seq[k]
			ms[i].Arms[j].PFixedAdjusted = fixed[k]
			k++
		}
	}
}

// Verdict is what the experiment should do next.
type Verdict string

// The verdicts.
const (
	KeepRunning Verdict = "keep-running"
	Ship        Verdict = "ship"
	StopNoDiff  Verdict = "stop"
	Blocked     Verdict = "blocked" // a sample ratio mismatch: no result can be trusted
)

// DecisionInput is what Decide reads. Metrics must have been through AdjustAll; the first metric
// that is not a guardrail is the primary one.
type DecisionInput struct {
	Control string
	Metrics []MetricResult
	SRM     SRM
	Alpha   float64
	// Adjustment is how the p-values were adjusted (AdjustAll); the text says so beside the
	// winner's interval, which is per comparison.
	Adjustment  Adjustment
	MDE         float64 // relative
	Units       float64 // units so far, all arms
	UnitsPerDay float64 // today's rate of new units, all arms
	// Stopped are the arms stopped while the experiment ran (a guardrail broke): none can win.
	Stopped []StoppedArm
}

// StoppedArm is an arm that was stopped, and why in words.
type StoppedArm struct {
	Arm    string
	Reason string
}

// Decision is the verdict with its reasons in words.
type Decision struct {
	Verdict Verdict `json:"verdict"`
	Winner  string  `json:"winner,omitempty"`
	// Harmed are the arms a guardrail moved the wrong way (anytime-valid, adjusted), and the
	// arms stopped by a guardrail.
	Harmed []string `json:"harmed,omitempty"`
	// DaysNeeded is the time still needed for the MDE at today's rate; nil when unknown.
	DaysNeeded *float64 `json:"daysNeeded,omitempty"`
	Text       string   `json:"text"`
}

// Decide turns the results into a verdict: a sample ratio mismatch blocks everything; an arm that
// a guardrail shows worse cannot win; a winner is an arm better than control on the primary metric
// with an adjusted always-valid p under alpha (the best of them); "stop" when every arm's
// anytime-valid interval of the relative effect lies within ±MDE; otherwise keep running.
func Decide(in DecisionInput) Decision {
	d := Decision{Verdict: KeepRunning}
	harmed := map[string]bool{}
	var primary *MetricResult
	for i := range in.Metrics {
		m := &in.Metrics[i]
		if !m.Guardrail {
			if primary == nil {
				primary = m
			}
			continue
		}
		for _, r := range m.Arms {
			if r.PSequentialAdjusted < in.Alpha && !r.better(m.Goal) && !harmed[r.Arm] {
				harmed[r.Arm] = true
				d.Harmed = append(d.Harmed, r.Arm)
			}
		}
	}
	var guards []string
	if len(d.Harmed) > 0 {
		guards = append(guards, "guardrails moved for "+strings.Join(d.Harmed, ", "))
	}
	for _, s := range in.Stopped {
		guards = append(guards, s.Reason)
		if !harmed[s.Arm] {
			harmed[s.Arm] = true
			d.Harmed = append(d.Harmed, s.Arm)
		}
	}
	guard := "no guardrail moved"
	if len(guards) > 0 {
		guard = strings.Join(guards, "; ")
	}
	if in.SRM.Mismatch {
		d.Verdict = Blocked
		d.Text = fmt.Sprintf("sample ratio mismatch (χ² p = %.2g, sequential p = %.2g): the split is not what was configured, so no result can be trusted — find where units are lost before reading any metric", in.SRM.PChiSquare, in.SRM.PSequential)
		return d
	}
	if primary == nil || len(primary.Arms) == 0 {
		d.Text = "no primary metric has results yet; " + guard
		return d
	}
	var win *ArmResult
	for i := range primary.Arms {
		r := &primary.Arms[i]
		if harmed[r.Arm] || r.PSequentialAdjusted >= in.Alpha || !r.better(primary.Goal) {
			continue
		}
		if win == nil || gain(*r, primary.Goal) > gain(*win, primary.Goal) {
			win = r
		}
	}
	conf := fmt.Sprintf("anytime-valid %g%%", 100*(1-in.Alpha))
	if win != nil {
		d.Verdict, d.Winner = Ship, win.Arm
		verb := "beats"
		e, f := win.Absolute, num
		if win.Relative != nil {
			e, f = *win.Relative, pct
		}
		d.Text = fmt.Sprintf("%s %s %s on %s by %s (%s to %s, %s; %s); %s; ship %s",
			win.Arm, verb, in.Control, primary.Metric, f(e.Estimate),
			f(e.Sequential.Lo), f(e.Sequential.Hi), conf, adjusted(*win, in), guard, win.Arm)
		return d
	}
	if len(d.Harmed) == len(primary.Arms) {
		d.Verdict = StopNoDiff
		d.Text = fmt.Sprintf("%s; no arm can win over %s — stop", guard, in.Control)
		return d
	}
	needed := 0.0
	within := true
	for _, r := range primary.Arms {
		if harmed[r.Arm] {
			continue
		}
		if r.Relative == nil || !(r.Relative.Sequential.Lo > -in.MDE && r.Relative.Sequential.Hi < in.MDE) {
			within = false
		}
		if r.UnitsNeeded == 0 {
			needed = math.Inf(1)
		}
		needed = math.Max(needed, r.UnitsNeeded)
	}
	if within {
		d.Verdict = StopNoDiff
		d.Text = fmt.Sprintf("no difference larger than %s on %s (%s); %s — stop", pctAbs(in.MDE), primary.Metric, conf, guard)
		return d
	}
	if in.UnitsPerDay > 0 && !math.IsInf(needed, 1) {
		days := math.Max(0, needed-in.Units) / in.UnitsPerDay
		d.DaysNeeded = &days
		d.Text = fmt.Sprintf("keep running: about %s more for a %s effect on %s; %s", daysText(days), pctAbs(in.MDE), primary.Metric, guard)
		return d
	}
	d.Text = fmt.Sprintf("keep running: not enough data yet to say how long a %s effect on %s needs; %s", pctAbs(in.MDE), primary.Metric, guard)
	return d
}

// adjusted says the winner's adjusted p-value and over how many comparisons: its interval is the
// comparison's own, unadjusted, and excludes 0 whenever the adjusted p is under alpha (an adjusted p
// is never below the unadjusted one).
func adjusted(r ArmResult, in DecisionInput) string {
	n := 0
	for _, m := range in.Metrics {
		n += len(m.Arms)
	}
	if n == 1 {
		return fmt.Sprintf("p = %.2g", r.PSequentialAdjusted)
	}
	name := "Holm"
	if in.Adjustment == BenjaminiHochberg {
		name = "Benjamini–Hochberg"
	}
	return fmt.Sprintf("p = %.2g adjusted by %s for %d comparisons", r.PSequentialAdjusted, name, n)
}

func gain(r ArmResult, g Goal) float64 {
	v := r.Absolute.Estimate
	if r.Relative != nil {
		v = r.Relative.Estimate
	}
	if g == Decrease {
		return -v
	}
	return v
}

func num(v float64) string { return fmt.Sprintf("%+.4g", v) }

func pct(v float64) string    { return fmt.Sprintf("%+.1f%%", 100*v) }
func pctAbs(v float64) string { return fmt.Sprintf("%g%%", 100*v) }

func daysText(d float64) string {
	switch {
	case d < 1.0/24:
		return "an hour or less"
	case d < 1:
		return fmt.Sprintf("%.0f hours", math.Ceil(d*24))
	case d < 1.5:
		return "1 day"
	}
	return fmt.Sprintf("%.0f days", math.Ceil(d))
}
