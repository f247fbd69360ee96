package judge

// The far-tail test of a latency metric. A canary whose requests hang is slow past every
// boundary, but at the quantile's boundary (the stable's p99, say) the stable has 1% of its
// requests too, so each hung request is worth little and the quantile test takes minutes. Far
// out — FarFactor times the boundary — the stable has almost no mass, and a request of the canary
// in flight past it is strong evidence at once. The far test is a count test of its own on that
// boundary (margin 1: "the canary's share past (1 + slowdown) × the far boundary is at most the
// stable's share past it", as for the quantile), and the metric's evidence is the average of the
// two, weighed FarWeight and 1 − FarWeight (LatencyEvidence).
//
// Why the average keeps alpha. Both tests see the same looks, grouped in the same batches, and
// each is a test supermartingale for that common filtration under its own null: each batch's
// capped, tempered likelihood ratio has conditional expectation at most 1 given every look before
// it (its φ is fixed when the batch opens). Under both nulls at once — the canary no slower at the
// quantile and no heavier in the far tail, which is what a canary like the stable is — a convex
// combination of the two is a test supermartingale too, by linearity of conditional expectation,
// and Ville's inequality bounds the chance it ever reaches 1/alpha by alpha. Averaging is how
// e-values are merged without knowing how they depend on each other (Vovk & Wang, "E-values:
// calibration, combination and applications", Ann. Statist. 2021, §3: the arithmetic mean
// dominates every symmetric merging function); for e-processes on one filtration it is the same
// argument step by step. A rejection then says "the canary is slower at the quantile, or heavier
// far out": both are latency regressions, and the metric rolls back on either.
//
// The far test's dispersion comes from the stable's own far counts (NewClumpDispersion): a stable
// whose endpoints stall puts clumps of dozens of requests past the far boundary, and a clump of
// the canary's is then worth about one request, as it should be. What keeps an A/A canary's own
// stall from rolling it back before the stable has shown one is the batch cap: a stall lasts a
// few seconds, so it fills one or two batches, and the far test needs four at the cap.

const (
	// FarFactor places the far boundary: this many times the latency metric's boundary. For a
	// lognormal service, 10× its p99 is some seven standard deviations of log latency out at
	// sigma 0.5 and four at sigma 1.2 (a tail where p99 is 16× the median): the stable has almost
	// nothing there, a hung request passes it within seconds.
	FarFactor = 10
	// FarWeight is the far test's share of the metric's evidence. The quantile test then needs
	// 1/(1 − FarWeight) = 1.25 times the evidence it needed alone (log 1.25 against log 400: a few
	// percent more time for a slowdown), and the far test 1/FarWeight = 5 times (under one batch
	// at the cap).
	FarWeight = 0.2
)

// NewFarTest makes the far-tail test of a latency metric whose own test has alpha: margin 1, the
// Far prior and grid, and a clump dispersion. The caller feeds it the requests and the requests
// past the far boundary (those in flight past it included) and the stable's far counts per batch
// to its Dispersion.
func NewFarTest(alpha float64) *CountTest {
	t := NewCountTest(1, alpha)
	t.SetPrior(Far)
	t.Dispersion = NewClumpDispersion()
	return t
}

// LatencyEvidence is a latency metric's evidence: the average of its quantile test's and its far
// test's, weighed 1 − FarWeight and FarWeight (see the comment above FarFactor for why alpha
// holds); the quantile test's alone when far is nil. The metric rolls back when it reaches
// quantile.Needed().
func LatencyEvidence(quantile, far *CountTest) float64 {
	if far == nil {
		return quantile.Evidence()
	}
	return (1-FarWeight)*quantile.Evidence() + FarWeight*far.Evidence()
}
