// Package judge is Aviary's statistics: anytime-valid sequential tests of a canary against its
// baseline. Every function here is pure and cheap; the analysis package feeds it measurements.
//
// # The count test (errors, requests slower than a boundary)
//
// It follows Lindon & Malek, "Anytime-Valid Inference for Multinomial Count Data" (NeurIPS 2022)
// and Lindon, Sanden & Shirikian, "Rapid Regression Detection in Software Deployments through
// Sequential Testing" (KDD 2022): given how many requests each version served in a look, each event
// (an error, say) lands on the canary with a probability that depends only on the two versions'
// rates and their shares of traffic. Under "the canary's rate is at most margin times the
// baseline's", a mixture of likelihood ratios over larger ratios is a non-negative supermartingale,
// so by Ville's inequality it exceeds 1/alpha with probability at most alpha, however often it is
// looked at. Traffic that drifts between looks cancels out, because each look is conditioned on its
// own shares. The mixture is over a grid of ratios, weighed alike, or for the gateway's error rate
// with a prior that weighs most a canary 3 to 5 times past the margin (Moderate, ratioWeights); the
// weights move power between alternatives and, summing to 1, leave the guarantee as it is.
//
// That guarantee assumes independent requests. Real traffic is not: errors come in bursts (a retry
// storm, a bad batch), an endpoint has a bad ten seconds, a stall slows half its requests, sticky
// users carry their own failure rates, and a route sends a segment that is no random sample. The
// test is made robust in four ways, each of which keeps the supermartingale property or errs on the
// safe side:
//
//   - Batches with a cap. Looks are grouped into batches (a metrics slot, ten seconds), and each
//     batch's likelihood ratio is capped at batchCap. A capped ratio min(LR, c) has expectation at
//     most that of LR, so the product stays a test supermartingale; what the cap buys is that no
//     episode shorter than a few batches can reach 1/alpha, while a regression that lasts does.
//   - Tempering by the baseline's own dispersion. Each batch's log likelihood ratio is divided by
//     φ ≥ 1, the overdispersion the baseline's counts show (Dispersion: a Pearson statistic over
//     neighbouring batches and over units, shrunk towards 1). For clumps of c events that land on
//     one version together, counting each clump once is the exact binomial test, and LR^(1/c) is
//     that count; for φ between, LR^(1/φ) is a quasi-likelihood ratio (McCullagh & Nelder 1989,
//     §9), and for a fixed φ ≥ 1 E[LR^(1/φ)] ≤ E[LR]^(1/φ) ≤ 1 by Jensen. φ is fixed when a batch
//     opens, from data before it, so it is predictable. Batching with a variance measured on the
//     data is the route of Bibaut, Kallus & Lindon, "Near-optimal, near-calibrated, non-parametric
//     sequential tests ... with possibly dependent observations" (arXiv:2212.14411).
//   - A mixture over start times. The evidence is a weighted sum of test supermartingales that
//     start at the first batch (weight firstWeight) and every restartEvery batches after (weights
//     summing to the rest): a fixed-start mixture is itself a test supermartingale, so alpha holds
//     over the whole rollout, and an incident that makes the canary look good early (a stable-only
//     outage) cannot bury a regression that starts later. These are the e-detectors of Shin,
//     Ramdas & Rinaldo, "E-detectors: a nonparametric framework for sequential change detection"
//     (2022), with weights that sum to one instead of a growing threshold.
//   - Randomized traffic only, and one process per rollout (in package analysis): requests placed
//     by a route are measured apart and never compared, and the runs of a rollout share one test.
//
// # The far tail of a latency metric
//
// A latency metric's count test sits at the stable's quantile, where the stable has its 1% too; a
// canary whose requests hang is caught there only slowly. A second count test on a far boundary
// (FarFactor × the boundary, where the stable has almost no mass; requests in flight past it
// counted as they pass it) has its own grid and a clump dispersion from the stable's own far
// counts (NewClumpDispersion), and the metric's evidence is the average of the two, weighed
// FarWeight and 1 − FarWeight: a convex combination of test supermartingales on one filtration,
// so alpha holds under both nulls at once (Vovk & Wang, "E-values: calibration, combination and
// applications", Ann. Statist. 2021). See far.go.
//
// # One e-process per rollout, across restarts
//
// CountTest.State and RestoreCountTest carry a test's whole state (the mixture's members and the
// open batch, the dispersion, the counts) through JSON, whose float64 encoding is exact, so a
// restored test decides bit for bit as the saved one would have. Package analysis saves the state
// at every batch boundary and on shutdown. After a crash the test resumes from an earlier batch
// than the last it saw: it goes on as if the looks since had not happened. That keeps the
// guarantee, because which looks are dropped depends on when the process stopped, not on what the
// looks held: each batch's capped, tempered likelihood ratio still has conditional expectation at
// most 1 under H0 given all that came before, kept or not, so the product over the kept batches is
// a test supermartingale, and Ville's inequality bounds it over the whole rollout, restarts
// included (Ramdas, Grünwald, Vovk & Shafer, "Game-theoretic statistics and safe anytime-valid
// inference", Statist. Sci. 2023, on optional continuation). The open batch saved mid-way is
// closed by the first look after the restart, as a short batch; a short batch is a batch.
//
// # A pass is evidence of safety
//
// RuledOut answers the other question: do the data rule out a regression of a stated detectable
// effect? Each version's rate has a time-uniform confidence sequence — Robbins' beta-binomial
// mixture, here over three priors (Howard, Ramdas, McAuliffe & Sekhon, "Time-uniform,
// nonparametric, nonasymptotic confidence sequences", Ann. Statist. 2021) — on counts tempered by
// the same φ; the canary's upper bound must be below max(ratio × the baseline's lower bound, the
// baseline's lower bound + points).
//
// # The mean tests (tokens, cost or a quality score per request)
//
// Bounded scores (a quality score, feedback: every value in a declared range) are judged by
// BoundedMeanTest, a betting test with finite-sample validity: each block of looks holding a value
// of each version gives the contrast of the two means, scaled by its range so that it is at least
// −1, and bettors who stake a predictable fraction of their capital on it hold test
// supermartingales under H0 (Waudby-Smith & Ramdas, "Estimating means of bounded random variables
// by betting", J. R. Stat. Soc. B 2023). The capital is exact (a block's means are known from the
// per-look sums), so it needs no normal approximation and no burn-in.
//
// Unbounded means (tokens, cost) are judged by MeanTest: a one-sided normal-mixture martingale on
// a stratified contrast, with a plug-in variance — an asymptotic confidence sequence (Howard,
// Ramdas, McAuliffe & Sekhon, Ann. Statist. 2021; Waudby-Smith et al., "Time-uniform central limit
// theory and asymptotic confidence sequences"). What holds is asymptotic: the false-rollback rate
// approaches alpha as values accrue (the simulated A/A rates in mean_test.go hold it for lognormal
// and exponential values); no finite-sample guarantee exists for a mean without a bound, since one
// value can move it anywhere.
//
// Both mean tests are kept per rollout across restarts as CountTest is (MeanTest.State,
// RestoreMeanTest, BoundedMeanTest.State, RestoreBoundedMeanTest: exact through JSON), and the same
// argument holds: the looks a crash drops are chosen by when the process stopped, not by their
// values, so the bettors' capitals over the kept blocks are still test supermartingales (the
// asymptotic test's sums still a normal-mixture martingale's), and the open block saved mid-way is
// closed by the new process's looks under the same rule on counts.
//
// This is written by hand: no maintained Go library implements these sequential tests.
package judge
