// Package judge is Aviary's statistics: anytime-valid sequential tests of a canary against its
// baseline. Every function here is pure and cheap; the analysis package feeds it measurements.
//
// The count test (errors, requests slower than a boundary) follows Lindon & Malek, "Anytime-Valid
// Inference for Multinomial Count Data" (NeurIPS 2022) and Lindon, Sanden & Shirikian, "Rapid
// Regression Detection in Software Deployments through Sequential Testing" (KDD 2022): given how
// many requests each version served in a look, each event (an error, say) lands on the canary with a
// probability that depends only on the two versions' rates and their shares of traffic. Under "the
// canary's rate is at most margin times the baseline's", a mixture of likelihood ratios over larger
// ratios is a non-negative supermartingale, so by Ville's inequality it exceeds 1/alpha with
// probability at most alpha, however often it is looked at. Traffic that drifts between looks
// cancels out, because each look is conditioned on its own shares.
//
// The mean test (tokens, cost or a quality score per request) compares the versions' means under
// a relative margin with a one-sided normal-mixture martingale on a stratified contrast, with a
// plug-in variance: an asymptotic confidence sequence (Howard, Ramdas, McAuliffe & Sekhon, Ann.
// Statist. 2021; Waudby-Smith et al., "Time-uniform central limit theory and asymptotic
// confidence sequences"). See MeanTest.
//
// This is written by hand: no maintained Go library implements these sequential tests.
package judge
