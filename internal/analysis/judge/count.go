package judge

import (
	"fmt"
	"math"
)

// ratios is the grid of alternatives (multiples of the margin) that the mixture spreads its
// weight over: from a regression just past the margin to a canary that fails outright. A grid, not
// a continuous prior, because each look's conditional probability depends on that look's traffic
// shares and no conjugate form exists; a mixture of martingales is a martingale all the same.
var ratios = []float64{1.25, 1.6, 2, 3, 5, 8, 13, 25}

// CountTest tests H0: canary rate ≤ Margin × baseline rate, for events counted per request.
type CountTest struct {
	Margin float64
	Alpha  float64

	logLR []float64 // per grid ratio: log likelihood ratio against the margin, summed over looks
	// Totals, for evidence.
	CanaryN, CanaryEvents, BaseN, BaseEvents int64
}

// NewCountTest makes a test with the given margin (e.g. 1.2: a 20% higher rate is tolerated) and
// false-alarm probability alpha.
func NewCountTest(margin, alpha float64) *CountTest {
	return &CountTest{Margin: margin, Alpha: alpha, logLR: make([]float64, len(ratios))}
}

// Observe adds one look: requests and events of each version since the previous look.
func (t *CountTest) Observe(canaryN, canaryEvents, baseN, baseEvents int64) {
	canaryEvents, baseEvents = min(canaryEvents, canaryN), min(baseEvents, baseN)
	t.CanaryN += canaryN
	t.CanaryEvents += canaryEvents
	t.BaseN += baseN
	t.BaseEvents += baseEvents
	if canaryN <= 0 || baseN <= 0 || canaryEvents+baseEvents == 0 {
		return // an event could only have landed on one side: no information about the ratio
	}
	nc, nb := float64(canaryN), float64(baseN)
	theta := func(rho float64) float64 { return rho * nc / (rho*nc + nb) }
	th0 := theta(t.Margin)
	ec, eb := float64(canaryEvents), float64(baseEvents)
	for i, r := range ratios {
		th1 := theta(t.Margin * r)
		t.logLR[i] += ec*math.Log(th1/th0) + eb*math.Log((1-th1)/(1-th0))
	}
}

// Evidence is the mixture likelihood ratio against H0: the test rejects when it reaches 1/Alpha.
func (t *CountTest) Evidence() float64 {
	m := math.Inf(-1)
	for _, l := range t.logLR {
		m = max(m, l)
	}
	sum := 0.0
	for _, l := range t.logLR {
		sum += math.Exp(l - m)
	}
	return math.Exp(m) * sum / float64(len(t.logLR))
}

// Needed is the evidence at which the test rejects.
func (t *CountTest) Needed() float64 { return 1 / t.Alpha }

// Rejected reports whether the canary's rate is shown to exceed the margin.
func (t *CountTest) Rejected() bool { return t.Evidence() >= t.Needed() }

// Rates returns the observed event rates of canary and baseline (NaN with no requests).
func (t *CountTest) Rates() (canary, base float64) {
	return ratio(t.CanaryEvents, t.CanaryN), ratio(t.BaseEvents, t.BaseN)
}

// Effect is the observed ratio of the canary's rate to the baseline's (NaN when undefined).
func (t *CountTest) Effect() float64 {
	c, b := t.Rates()
	if b == 0 {
		if c == 0 {
			return 1
		}
		return math.Inf(1)
	}
	return c / b
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

// Describe says what the test shows, in words: "canary 4.1% vs baseline 0.5% over 1,820 / 16,400
// requests; evidence 312 ≥ 100 needed".
func (t *CountTest) Describe() string {
	c, b := t.Rates()
	op := "<"
	if t.Rejected() {
		op = "≥"
	}
	return fmt.Sprintf("canary %s vs baseline %s over %s / %s requests; evidence %s %s %s needed",
		pct(c), pct(b), thousands(t.CanaryN), thousands(t.BaseN), short(t.Evidence()), op, short(t.Needed()))
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.3g%%", 100*v)
}

func short(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3g", v)
	case v >= 10:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2g", v)
}

// thousands writes 16400 as 16,400.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}
