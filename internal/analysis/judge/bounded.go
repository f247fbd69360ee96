package judge

import (
	"fmt"
	"math"
)

// BoundedMeanTest tests the mean of a bounded per-request score — an evaluator's quality score, a
// feedback score: every value known to lie in [Lo, Hi] — of a canary against its baseline, with
// finite-sample validity: for any distributions within the bounds, however skewed (a score that is
// 1 for 97% of the answers and 0 for the rest, say), and however often it is looked at, it rejects
// a canary within the margin with probability at most Alpha. MeanTest, which it replaces for
// bounded scores, holds Alpha only asymptotically.
//
// The hypotheses are MeanTest's: with s = +1 for Higher and −1 for Lower and m = Margin,
// H0: s·(μc − m·μb) ≤ 0, at every moment of the rollout.
//
// # Method: betting on blocks
//
// Looks are grouped into blocks that close as soon as both versions have a value in them (a rule
// on counts only, never on values). Block k gives the contrast of the versions' means within it,
// scaled by its range:
//
//	y_k = s·(x̄c,k − m·x̄b,k) / R,  R = Hi − m·Lo (Lower) or m·Hi − Lo (Higher),
//
// so that y_k ≥ −1 whatever the values, and E[y_k | the past, the counts] ≤ 0 under H0. A bettor
// who stakes a fraction λ_k ∈ [0, 1) of its capital on y_k, λ_k chosen before the block (from
// the earlier blocks only), turns 1 into K = Π (1 + λ_k·y_k), a test supermartingale under H0
// (Waudby-Smith & Ramdas, "Estimating means of bounded random variables by betting", J. R. Stat.
// Soc. B 2023, §4: the capital process of a bettor against a bounded mean). The analysis sees
// only per-look sums, but a block's contrast needs nothing more — its means — so the capital is
// exact; Fan's inequality (log(1 + λy) ≥ λy − ψ(λ)y²), the way to bet on values one by one when
// only their sums are known, is not needed, because two samples cannot be paired value by value
// from sums anyway.
//
// Evidence is the average of seven bettors' capitals (an average of test supermartingales is
// one): half on an adaptive bettor, aGRAPA (Waudby-Smith & Ramdas §5.2: λ_k = μ̂/(σ̂² + μ̂²), the
// running mean and variance of the earlier y, clipped to [0, lambdaMax]), which approaches the
// best constant bet for the shift at hand, and half spread over constant bets (lambdas), which
// hold their own when the adaptive one starts badly. Ville's inequality then bounds by Alpha the
// chance that the evidence ever reaches 1/Alpha, for every number of values, with no burn-in and
// no normal approximation.
//
// Comparing the versions within the same block is what makes a score that drifts over time (the
// hour, the mix of questions) cancel out, as in MeanTest. The price of finite-sample validity is
// some power: a stake is at most lambdaMax of the capital, so a block gains at most a factor
// 1 + lambdaMax·y, where the asymptotic test's normal model lets it gain more; a score that falls
// from 0.85 to 0.7 at one canary value a second is caught in a median of 106 s against the
// asymptotic test's 53 s, while thumbs-up feedback falling from 90% to 75% (a two-point score,
// where the normal model fits worst) is caught sooner: 186 s against 216 s (bounded_test.go, 200
// runs each; alpha 1%, margin 0.95). At the edge of H0 with such scores, 2,000 runs at alpha 5%
// gave 1.2% false rejections, 95% interval [0.8%, 1.8%].
//
// Assumptions: values outside [Lo, Hi] break the guarantee, so the caller must drop them before
// they are summed (package quality drops scores outside the configured range); and when a value
// arrives must not depend on the value itself beyond what the version and the time explain (a
// thumbs-down that reliably comes sooner than a thumbs-up would tilt every block the same way),
// as which requests go to which version must not.
type BoundedMeanTest struct {
	// Worse, Margin, Lo and Hi are set by NewBoundedMeanTest and must not change once values are
	// observed.
	Worse  Direction
	Margin float64
	Alpha  float64
	Lo, Hi float64

	canary, base moments    // every value of each version, for Means and Describe
	open         [2]moments // the block being filled: canary, baseline
	blocks       int64
	sumY, sumY2  float64 // Σ y_k and Σ y_k² over closed blocks: the adaptive bettor's estimates
	logK         [len(lambdas) + 1]float64
}

// lambdas are the constant bettors' stakes; the adaptive bettor's is capped at lambdaMax.
var lambdas = [...]float64{0.05, 0.1, 0.2, 0.4, 0.6, 0.9}

const lambdaMax = 0.9

// NewBoundedMeanTest makes a test for scores in [lo, hi] that regress in direction worse, with the
// tolerated ratio margin of canary to baseline mean (read as MeanTest reads it) and false-alarm
// probability alpha. Bounds that are not a range (lo ≥ hi, not finite) give a test that never
// rejects; the caller checks them first (config validates them).
func NewBoundedMeanTest(worse Direction, margin, alpha, lo, hi float64) *BoundedMeanTest {
	m := NewMeanTest(worse, margin, alpha).Margin
	return &BoundedMeanTest{Worse: worse, Margin: m, Alpha: alpha, Lo: lo, Hi: hi}
}

// span is R: the most a block's contrast can fall below 0.
func (t *BoundedMeanTest) span() float64 {
	if t.Worse == Lower {
		return t.Hi - t.Margin*t.Lo
	}
	return t.Margin*t.Hi - t.Lo
}

// Observe adds one look: the count, sum and sum of squares of each version's values since the
// previous look. A version without values (or with impossible sums) adds nothing.
func (t *BoundedMeanTest) Observe(canaryN int64, canarySum, canarySumSq float64, baseN int64, baseSum, baseSumSq float64) {
	if t.canary.add(canaryN, canarySum, canarySumSq) {
		t.open[0].add(canaryN, canarySum, canarySumSq)
	}
	if t.base.add(baseN, baseSum, baseSumSq) {
		t.open[1].add(baseN, baseSum, baseSumSq)
	}
	if t.open[0].n == 0 || t.open[1].n == 0 {
		return
	}
	r := t.span()
	if r > 0 && !math.IsInf(r, 0) {
		d := t.open[0].mean - t.Margin*t.open[1].mean
		if t.Worse == Lower {
			d = -d
		}
		y := max(d/r, -1) // ≥ −1 for values within the bounds; never less, whatever comes
		for i, l := range lambdas {
			t.logK[i] += math.Log1p(l * y)
		}
		t.logK[len(lambdas)] += math.Log1p(t.adaptive() * y)
		t.sumY += y
		t.sumY2 += y * y
		t.blocks++
	}
	t.open = [2]moments{}
}

// adaptive is aGRAPA's stake for the next block, from the blocks before it: the running mean
// over the running second moment, clipped to [0, lambdaMax]. The estimates start from one
// pseudo-block with y = 0 and y² = 1/4 (a variance of a quarter of the range squared, the most a
// value in a range of 1 can have), so that the first blocks bet little.
func (t *BoundedMeanTest) adaptive() float64 {
	k := float64(t.blocks) + 1
	mu := t.sumY / k
	v := (t.sumY2+0.25)/k - mu*mu
	if !(v > 0) {
		return 0
	}
	return min(max(mu/(v+mu*mu), 0), lambdaMax)
}

// Evidence is the bettors' average capital (see BoundedMeanTest): half the adaptive bettor's,
// half the constant bettors' mean. The test rejects when it reaches 1/Alpha. 1 before the first
// block; never NaN, at most e^700.
func (t *BoundedMeanTest) Evidence() float64 {
	if t.blocks == 0 {
		return 1
	}
	hi := math.Inf(-1)
	for _, l := range t.logK {
		hi = max(hi, l)
	}
	sum := 0.0
	for i, l := range t.logK {
		w := 0.5 / float64(len(lambdas))
		if i == len(lambdas) {
			w = 0.5
		}
		sum += w * math.Exp(l-hi)
	}
	e := hi + math.Log(sum)
	if math.IsNaN(e) {
		return 1
	}
	return math.Exp(min(e, 700))
}

// Needed is the evidence at which the test rejects.
func (t *BoundedMeanTest) Needed() float64 { return 1 / t.Alpha }

// Rejected reports whether the canary's mean is shown to be worse than the margin allows.
func (t *BoundedMeanTest) Rejected() bool { return t.Evidence() >= t.Needed() }

// Counts returns how many values each side has given so far.
func (t *BoundedMeanTest) Counts() (canary, base int64) { return t.canary.n, t.base.n }

// Means returns the observed means of canary and baseline over all their values (NaN without).
func (t *BoundedMeanTest) Means() (canary, base float64) {
	return (&MeanTest{canary: t.canary, base: t.base}).Means()
}

// Effect is the observed ratio of the canary's mean to the baseline's (NaN without values).
func (t *BoundedMeanTest) Effect() float64 {
	return (&MeanTest{canary: t.canary, base: t.base}).Effect()
}

// Describe says what the test shows, in words: "canary 0.71 vs baseline 0.86 per request over
// 310 / 2,900 values in 288 blocks (scores in 0..1, finite-sample); evidence 412 ≥ 200 needed".
func (t *BoundedMeanTest) Describe() string {
	c, b := t.Means()
	op := "<"
	if t.Rejected() {
		op = "≥"
	}
	return fmt.Sprintf("canary %s vs baseline %s per request over %s / %s values in %s blocks (scores in %g..%g, finite-sample); evidence %s %s %s needed",
		num(c), num(b), thousands(t.canary.n), thousands(t.base.n), thousands(t.blocks), t.Lo, t.Hi, short(t.Evidence()), op, short(t.Needed()))
}
