// Package stats is the statistics of Aviary's experiments: each arm against control on a mean
// metric (a proportion is the mean of 0/1 values), with an anytime-valid confidence sequence, the
// fixed-horizon interval beside it, adjusted p-values, CUPED variance reduction, a sample ratio
// mismatch check, the time still needed for the minimum detectable effect, and a decision in
// words. Every function is pure: it takes per-arm sums (Moments), never events or stores, and it
// never reads a clock; the caller says how many units arrive per day.
//
// # Per unit, not per request
//
// The unit of analysis is the unit of randomisation (a user). Each unit contributes one value Y
// (its conversion 0/1, its revenue) and, where it exists, one pre-experiment value X of the same
// metric. Moments holds n, ΣY, ΣY², ΣX, ΣX², ΣXY, which is all that any method here needs.
//
// # Fixed horizon: Welch
//
// The difference of means Δ̂ = Ȳ_arm − Ȳ_control with standard error s = √(s²_a/n_a + s²_c/n_c)
// and the Welch–Satterthwaite degrees of freedom; the interval is Δ̂ ± t_{1−α/2,ν}·s (Welch,
// Biometrika 1947). It is valid only when read once, at a horizon fixed in advance; it is shown so
// an analyst can compare, and the bench shows what reading it every minute would do.
//
// # Anytime-valid: the asymptotic confidence sequence
//
// Waudby-Smith, Arnold, Wu, Lindon & Ramdas, "Time-uniform central limit theory and asymptotic
// confidence sequences" (Ann. Statist. 2024), Theorem 2.2: for an estimator that is an average of
// t terms with variance σ², the normal-mixture boundary
//
//	Δ̂ ± σ̂ √( 2(tρ²+1)/(t²ρ²) · log(√(tρ²+1)/α) )
//
// covers the truth at every t at once with probability tending to 1−α, however often it is read.
// Here t is the number of units in both arms and σ̂² = t·s², the per-unit variance of the
// difference-in-means estimator with the arms' actual sizes (an asymptotically linear estimator, as
// the paper allows). ρ is fixed in advance by the planned number of units t* (the paper's §2.4):
// ρ² = (−2 log α + log(−2 log α + 1))/t*, which makes the sequence tightest near t*; it is valid at
// every t whatever t* is. The always-valid p-value is the smallest α at which the sequence
// excludes 0 (Howard, Ramdas, McAuliffe & Sekhon, "Time-uniform, nonparametric, nonasymptotic
// confidence sequences", Ann. Statist. 2021, §6; Johari, Koomen, Pekelis & Walsh, "Always valid
// inference", Oper. Res. 2022), computed with the same fixed ρ so that it does not depend on α.
//
// The relative effect R − 1, R = μ_a/μ_c, gets its interval of both kinds by inverting the same
// test (Fieller, "Some problems in interval estimation", J. R. Statist. Soc. B 1954): every R at
// which |Ȳ_a − R·Ȳ_c| ≤ q·√(s²_a/n_a + R²·s²_c/n_c), with q the sequence's or Student's critical
// value. At R = 1 this is the test of the difference, so the relative interval excludes 0 exactly
// when the absolute one does and exactly when the p-value of its kind is at most α (a property
// test holds them to it). A delta-method interval, (s²_a/n_a + r²s²_c/n_c)/Ȳ_c², does not: its
// width grows with the ratio, and it once showed −18% to +214% beside p = 0.0012. When control's
// mean cannot yet be told from 0 (Ȳ_c² ≤ q²s²_c/n_c) the set is unbounded and no relative effect
// is reported, only the absolute one.
//
// Intervals are per comparison; p-values are given both raw and adjusted (below), and the
// decision names the adjustment beside the winner's interval. An adjusted p is never below the
// raw one, so a winner's interval always excludes 0.
//
// # Many metrics and arms
//
// p-values across metrics × arms are adjusted by Holm's step-down method (Holm, Scand. J. Statist.
// 1979; controls the family-wise error) by default, or by Benjamini & Hochberg (J. R. Statist. Soc.
// B 1995; the false discovery rate). Holm applied to always-valid p-values at a stopping time keeps
// its guarantee, because each always-valid p-value is a p-value at any stopping time.
//
// # CUPED
//
// Deng, Xu, Kohavi & Walker, "Improving the sensitivity of online controlled experiments by
// utilizing pre-experiment data" (WSDM 2013): Y' = Y − θ(X − X̄), θ = Cov(X,Y)/Var(X) pooled within
// arms over all arms, so the same θ is used in every arm and the adjustment cannot favour one. The
// adjusted variance is s²_Y + θ²s²_X − 2θ·Cov(X,Y) ≈ s²_Y(1−ρ²_XY). CUPED is applied only when
// every unit of both arms has a pre-experiment value; the reduction of the difference's variance
// and how much it narrowed the interval are reported.
//
// # Sample ratio mismatch
//
// The units each arm received are tested against the configured split two ways: Pearson's χ²
// goodness of fit (a mismatch at p < 0.001, the threshold Fabijan et al., "Diagnosing sample ratio
// mismatch in online controlled experiments", KDD 2019, recommend), and the sequential
// Dirichlet-multinomial test of Lindon & Malek, "Anytime-valid inference for multinomial count
// data" (NeurIPS 2022): the Bayes factor of a Dirichlet(c·p₀) mixture against p₀ is a test
// martingale under p₀, so 1/BF is an always-valid p-value. The sequential test's mismatch blocks
// any winner; χ² is reported beside it, valid for one planned read (peeked every minute it raises
// false alarms, see bench/experiment).
//
// # Too few units
//
// The confidence sequence is asymptotic; with a handful of units the plug-in variance can be near
// 0 (no conversion yet in an arm) and the sequence far too narrow. No arm is compared before it has
// Options.MinUnits units (config default 100).
//
// # Power and time to detect
//
// For the relative minimum detectable effect m, the units needed are the smallest t at which the
// confidence sequence's half-width plus z_{power}·s(t) is at most m·|Ȳ_c|, with today's variances
// and today's split; the time needed divides the units still missing by today's rate.
//
// The normal, Student t and χ² distributions come from gonum; the sequences, the Dirichlet mixture
// and the adjustments are written here (no maintained Go library has them).
package stats
