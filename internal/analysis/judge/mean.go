package judge

import (
	"fmt"
	"math"
)

// Direction says which way a continuous metric regresses.
type Direction int

const (
	// Higher: a higher canary mean is worse (tokens, cost, latency per request).
	Higher Direction = iota
	// Lower: a lower canary mean is worse (quality scores, acceptance rates).
	Lower
)

func (d Direction) String() string {
	if d == Lower {
		return "lower"
	}
	return "higher"
}

// MeanTest tests a continuous per-request metric (tokens, cost, a quality score) of a canary
// against its baseline, anytime-valid like CountTest: it may be looked at after every Observe and
// still rejects a canary within the margin with probability at most about Alpha.
//
// The margin is the tolerated ratio of the canary's mean to the baseline's:
//
//	Worse = Higher: H0: mean(canary) ≤ Margin × mean(baseline), Margin ≥ 1 (1.05: cost may be 5% higher)
//	Worse = Lower:  H0: mean(canary) ≥ Margin × mean(baseline), Margin ≤ 1 (0.95: a score may be 5% lower)
//
// A margin on the wrong side of 1 is read as its reciprocal (1.05 with Lower tolerates a mean of
// 1/1.05 ≈ 0.952 of the baseline's), so a margin never makes equal means a regression.
//
// # Method
//
// The ratio hypothesis is the linear one θ ≤ 0 for the contrast θ = s·(μc − m·μb), s = +1 for
// Higher and −1 for Lower, m = Margin; no delta method is needed. Looks are grouped into blocks
// that close as soon as both versions have blockMin values in them (a rule on counts only, never on
// values). Block k contributes d_k = s·(x̄c,k − m·x̄b,k) with weight w_k = 1/(1/nc,k + m²/nb,k);
// then
//
//	S = Σ w_k d_k,   W = Σ w_k,   V = σc² Σ w_k²/nc,k + m² σb² Σ w_k²/nb,k  (= Var S),
//
// so S − θW has independent, mean-zero increments with variance V, and θ̂ = S/W is the stratified
// estimate of θ. Comparing each version with the other within the same block is what makes traffic
// that drifts between looks cancel out, as in CountTest: a canary share that rises while the metric
// drifts (time of day, a new client) cannot pass for a regression. The block being filled is
// included as it stands.
//
// The evidence is the one-sided normal-mixture martingale of Robbins, in the form of Howard,
// Ramdas, McAuliffe & Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence sequences"
// (Ann. Statist. 49(2), 2021, Proposition 5; confseq's OneSidedNormalMixture): with a half-normal
// mixture over λ ≥ 0 of exp(λS − λ²V/2), of precision ρ in intrinsic time V,
//
//	M = sqrt(4ρ/(V+ρ)) · exp(S²/(2(V+ρ))) · Φ(S/sqrt(V+ρ)).
//
// Written with z = S/√V, the information about the relative effect I = μb²·W²/V (one over the
// variance of θ̂/μb) and the mixture's scale τ over relative effects (ρ = 1/τ² in units of I),
// r = τ²I/(1+τ²I):
//
//	M_τ = 2/sqrt(1+τ²I) · exp(z²r/2) · Φ(z√r),
//
// and Evidence is the average of M_τ over a few scales τ (mixtureScales), so that small and gross
// regressions are both found quickly; an average of supermartingales is one. Under H0 (θ ≤ 0)
// every exp(λS − λ²V/2), λ ≥ 0, is a supermartingale when the data are normal and σ known, so by
// Ville's inequality the evidence ever reaches 1/Alpha with probability at most Alpha.
//
// The variance is not known: σc² = σb² = σ̂², the larger of the two versions' within-block sample
// variances, is plugged in. That makes the test asymptotic, an asymptotic confidence sequence in the
// sense of Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas, "Time-uniform central limit theory and
// asymptotic confidence sequences" (Ann. Statist. 2024; arXiv:2103.06476): by a strong invariance
// principle the standardized sums behave like Brownian motion, and a consistent estimate (or an
// over-estimate, which only makes the test conservative) of the variance keeps the error at most
// about Alpha once the burn-in is past. Bibaut, Kallus & Lindon, "Near-optimal, near-calibrated,
// non-parametric sequential tests and confidence sequences with possibly dependent observations"
// (arXiv:2212.14411) analyse exactly this delayed-start normal-mixture test, with the asymptotics
// indexed by the burn-in: here the evidence is 1 until each version has minValues values. The
// larger of the two variances, rather than each its own: under H0 of an A/A they are equal and
// the baseline's usually rests on many more values, while the canary's few values of a skewed
// metric (tokens, cost) that happen to miss its long tail understate its mean and its variance at
// once, which is what gives a plug-in z its heavy tail (with each version's own variance the
// simulated A/A rate of a lower-is-worse lognormal metric was two to five times Alpha).
//
// Assumptions: values of one version are independent draws with finite variance (heavy tails are
// tolerated but slow the approach to normality: the simulated A/A rates in mean_test.go hold for
// lognormal and exponential values); the baseline's mean is positive (tokens, cost and scores are
// non-negative); which requests go to which version does not depend on their values.
type MeanTest struct {
	// Worse and Margin are set by NewMeanTest and must not change once values are observed.
	Worse  Direction
	Margin float64
	Alpha  float64
	// Unit names the metric in Describe ("tokens": "412 vs 380 tokens/request"); may be empty.
	Unit string

	canary, base moments // every value of each version, for Means and Describe

	open           [2]moments // the block being filled: canary, baseline
	closedDF       [2]int64   // degrees of freedom and
	closedM2       [2]float64 // sums of squared deviations within closed blocks
	sumWD, sumW    float64    // Σ w_k d_k and Σ w_k over closed blocks
	sumWWc, sumWWb float64    // Σ w_k²/nc,k and Σ w_k²/nb,k over closed blocks
}

// minValues is the burn-in: the evidence is 1 until each version has this many values.
const minValues = 30

// blockMin is how many values of each version close a block. Enough that a block's allocation
// ratio is stable (little efficiency is lost to stratification), few enough that a block is short.
const blockMin = 10

// mixtureScales are the scales τ of the half-normal mixtures, as relative effects past the margin
// (0.1: a canary mean 10% of the baseline's beyond the margin). Spread from subtle to gross.
var mixtureScales = [...]float64{0.05, 0.15, 0.5}

// NewMeanTest makes a test for a metric that regresses in direction worse, with the tolerated
// ratio margin of canary to baseline mean (1.05 with Higher, 0.95 with Lower) and false-alarm
// probability alpha.
func NewMeanTest(worse Direction, margin, alpha float64) *MeanTest {
	if !(margin > 0) || math.IsInf(margin, 0) {
		margin = 1
	}
	if (worse == Lower) != (margin <= 1) {
		margin = 1 / margin
	}
	return &MeanTest{Worse: worse, Margin: margin, Alpha: alpha}
}

// moments are a count, a mean and the sum of squared deviations from it (Chan et al.'s pairwise
// update, which keeps the variance accurate when the mean is large).
type moments struct {
	n        int64
	mean, m2 float64
}

// add merges n values with the given sum and sum of squares. Looks that cannot be values (a
// negative or non-finite sum of squares, a non-finite sum) are dropped whole.
func (m *moments) add(n int64, sum, sumSq float64) bool {
	if n <= 0 || math.IsNaN(sum) || math.IsInf(sum, 0) || !(sumSq >= 0) || math.IsInf(sumSq, 0) {
		return false
	}
	mean := sum / float64(n)
	m2 := max(0, sumSq-sum*mean)
	m.merge(moments{n, mean, m2})
	return true
}

func (m *moments) merge(o moments) {
	if o.n == 0 {
		return
	}
	n := m.n + o.n
	delta := o.mean - m.mean
	m.mean += delta * float64(o.n) / float64(n)
	m.m2 += o.m2 + delta*delta*float64(m.n)*float64(o.n)/float64(n)
	m.n = n
}

// Observe adds one look: the count, sum and sum of squares of each version's values since the
// previous look. A version without values (or with impossible sums) adds nothing.
func (t *MeanTest) Observe(canaryN int64, canarySum, canarySumSq float64, baseN int64, baseSum, baseSumSq float64) {
	if t.canary.add(canaryN, canarySum, canarySumSq) {
		t.open[0].add(canaryN, canarySum, canarySumSq)
	}
	if t.base.add(baseN, baseSum, baseSumSq) {
		t.open[1].add(baseN, baseSum, baseSumSq)
	}
	if t.open[0].n >= blockMin && t.open[1].n >= blockMin {
		t.sumWD, t.sumW, t.sumWWc, t.sumWWb = t.withBlock(t.open[0], t.open[1])
		for i, o := range t.open {
			t.closedDF[i] += o.n - 1
			t.closedM2[i] += o.m2
		}
		t.open = [2]moments{}
	}
}

// withBlock returns the block sums with block (c, b) added.
func (t *MeanTest) withBlock(c, b moments) (wd, w, wwc, wwb float64) {
	wd, w, wwc, wwb = t.sumWD, t.sumW, t.sumWWc, t.sumWWb
	if c.n == 0 || b.n == 0 {
		return
	}
	m := t.Margin
	nc, nb := float64(c.n), float64(b.n)
	wk := 1 / (1/nc + m*m/nb)
	return wd + wk*t.sign()*(c.mean-m*b.mean), w + wk, wwc + wk*wk/nc, wwb + wk*wk/nb
}

func (t *MeanTest) sign() float64 {
	if t.Worse == Lower {
		return -1
	}
	return 1
}

// within is the within-block variance of version i (canary 0, baseline 1); NaN without two values
// in a block.
func (t *MeanTest) within(i int) float64 {
	df, m2 := t.closedDF[i], t.closedM2[i]
	if o := t.open[i]; o.n > 0 {
		df += o.n - 1
		m2 += o.m2
	}
	if df <= 0 {
		return math.NaN()
	}
	return m2 / float64(df)
}

// Evidence is the mixture martingale against H0 (see MeanTest): the test rejects when it reaches
// 1/Alpha. It is 1 until each version has minValues values, and never NaN.
func (t *MeanTest) Evidence() float64 {
	if t.canary.n < minValues || t.base.n < minValues {
		return 1
	}
	s, w, wwc, wwb := t.withBlock(t.open[0], t.open[1])
	scale := math.Abs(t.base.mean)
	if scale == 0 {
		scale = math.Abs(t.canary.mean)
	}
	// One variance for both versions, the larger of their estimates (see MeanTest). Values that
	// are all equal have none: a floor of a millionth of the mean keeps z finite (an all-equal
	// canary above an all-equal baseline is then overwhelming evidence, as it should be).
	sigma2 := max(t.within(0), t.within(1), 1e-12*scale*scale)
	if !(w > 0) || !(scale > 0) || math.IsNaN(sigma2) {
		return 1
	}
	m := t.Margin
	v := sigma2 * (wwc + m*m*wwb)
	z := s / math.Sqrt(v)
	info := scale * scale * w * w / v
	if math.IsNaN(z) || math.IsNaN(info) || math.IsInf(info, 0) {
		return 1
	}
	if math.Abs(z) <= 30 {
		// Every term is a finite number: average them as they are.
		sum := 0.0
		for _, tau := range mixtureScales {
			ti := tau * tau * info
			x := z * math.Sqrt(ti/(1+ti))
			sum += 2 / math.Sqrt(1+ti) * math.Exp(x*x/2) * 0.5 * math.Erfc(-x/math.Sqrt2)
		}
		return sum / float64(len(mixtureScales))
	}
	// Far out, in logarithms, capped so that it stays a finite number (JSON has no infinity);
	// that is far past any 1/Alpha.
	var logs [len(mixtureScales)]float64
	for i, tau := range mixtureScales {
		ti := tau * tau * info
		logs[i] = math.Ln2 - 0.5*math.Log1p(ti) + logMills(z*math.Sqrt(ti/(1+ti)))
	}
	hi := math.Inf(-1)
	for _, l := range logs {
		hi = max(hi, l)
	}
	sum := 0.0
	for _, l := range logs {
		sum += math.Exp(l - hi)
	}
	return math.Exp(min(hi+math.Log(sum/float64(len(logs))), 700))
}

// logMills is log(exp(x²/2)·Φ(x)), computed without overflow or 0·∞ for large |x|.
func logMills(x float64) float64 {
	if x < -30 {
		// Φ(x) ≈ φ(x)/|x|·(1 − 1/x²): the exponentials cancel.
		return -0.5*math.Log(2*math.Pi) - math.Log(-x) + math.Log1p(-1/(x*x))
	}
	return x*x/2 + math.Log(0.5*math.Erfc(-x/math.Sqrt2))
}

// Needed is the evidence at which the test rejects.
func (t *MeanTest) Needed() float64 { return 1 / t.Alpha }

// Rejected reports whether the canary's mean is shown to be worse than the margin allows.
func (t *MeanTest) Rejected() bool { return t.Evidence() >= t.Needed() }

// Means returns the observed means of canary and baseline over all their values (NaN without).
func (t *MeanTest) Means() (canary, base float64) {
	mean := func(m moments) float64 {
		if m.n == 0 {
			return math.NaN()
		}
		return m.mean
	}
	return mean(t.canary), mean(t.base)
}

// Effect is the observed ratio of the canary's mean to the baseline's: compare it with Margin (NaN
// without values on either side).
func (t *MeanTest) Effect() float64 {
	c, b := t.Means()
	if b == 0 {
		if c == 0 {
			return 1
		}
		return math.Copysign(math.Inf(1), c)
	}
	return c / b
}

// Describe says what the test shows, in words: "canary 412 vs baseline 380 tokens/request over
// 1,820 / 16,400 requests; evidence 45 < 100 needed".
func (t *MeanTest) Describe() string {
	c, b := t.Means()
	unit := "per request"
	if t.Unit != "" {
		unit = t.Unit + "/request"
	}
	op := "<"
	if t.Rejected() {
		op = "≥"
	}
	return fmt.Sprintf("canary %s vs baseline %s %s over %s / %s requests; evidence %s %s %s needed",
		num(c), num(b), unit, thousands(t.canary.n), thousands(t.base.n), short(t.Evidence()), op, short(t.Needed()))
}

// num writes a mean for people: 412, 16,400, 0.85, 0.0123.
func num(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return "n/a"
	case math.IsInf(v, 0):
		return fmt.Sprint(v)
	case a >= 1e15:
		return fmt.Sprintf("%.3g", v)
	case a >= 1000:
		return thousands(int64(math.Round(v)))
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}
