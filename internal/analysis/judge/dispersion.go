package judge

import "math"

// Dispersion estimates how much more the baseline's event counts vary than independent requests
// would make them vary (the overdispersion φ of a quasi-likelihood; McCullagh & Nelder,
// "Generalized Linear Models", 2nd ed., §4.5), from the baseline's own data, in two ways:
//
//   - over time: the Pearson statistic of each of the baseline's batches (requests and events per
//     slot) against the one before it, given the two batches' events (a conditional binomial, so
//     each term has expectation 1 for independent requests whatever the rate). Errors that come in
//     bursts, endpoints that have a bad minute and stalls make the counts of a batch clump; φ is
//     about the mean size of a clump. Comparing neighbours rather than each batch with the run's
//     mean keeps a change of level (a stable incident) from counting as clumping but at its edges,
//     and each term is clipped at maxTerm so that those edges weigh little.
//   - over units: the Pearson statistic of the baseline's units (endpoints, or buckets of the
//     sticky key), cumulative since the start. Users who carry their own failure rate, or an
//     endpoint that is worse than its peers, make units differ by more than chance; φ grows with
//     the requests each unit has made, as the canary's own share of such users does.
//
// Either kind of clumping affects the canary's counts as it affects the baseline's (the canary is
// served the same kind of traffic by the same kind of endpoints), so the count test divides each
// batch's log likelihood ratio by φ: a clump of c errors is then worth about one error, as it
// should be. The estimate is shrunk towards 1 by a few pseudo-degrees of freedom so that a short
// run with few batches cannot make it small by chance, and it is never below 1.
type Dispersion struct {
	// over time: pairs of neighbouring closed batches with events, and their clipped Pearson terms
	pairs        int
	timeChi2     float64
	prevN, prevE float64

	// over units, cumulative: set whole at each look
	unitChi2 float64
	unitDF   int

	// clump size, for the far tail (NewClumpDispersion): sums over every batch of the baseline
	clumps bool
	sums   ClumpState
}

// NewClumpDispersion is a Dispersion for counts of rare events — requests past a far latency
// boundary, where the baseline has almost no mass and what it has comes in clumps (an endpoint
// that stalls slows dozens of requests at once). The neighbour-pair estimate fails there: a
// clump is one clipped term among a handful, and shrinkage keeps φ near 1 while a clump of 30
// is worth one event. This one adds a third estimate, the Pearson statistic of every batch
// against the pooled rate, summed before it is divided,
//
//	φ_clump = (Σ (e_b − n_b·r)² + k) / (Σ n_b·r + k),  r = Σ e_b / Σ n_b,
//
// which for independent requests is about 1 whatever the rate (each batch's count is nearly
// Poisson: its variance is its mean), and for clumps of size c about E[c²]/E[c], the clump size
// weighted by events — the factor by which a clump is worth less than as many independent
// events (Cameron & Trivedi, "Regression Analysis of Count Data", 2nd ed., §3.2, the variance
// of a compound Poisson count). k = priorEvents pseudo-events at φ = 1 keep a baseline that has
// seen one or two stray events from tempering much. Unclipped: a change of the baseline's level
// in the far tail raises φ, and a larger φ only makes the test slower, never less valid.
func NewClumpDispersion() *Dispersion { return &Dispersion{clumps: true} }

// priorEvents is the clump estimate's shrinkage: as if this many events had been seen at φ = 1.
const priorEvents = 10

// priorDF is the shrinkage: the estimate starts as if it had seen this many degrees of freedom at
// φ = 1.
const priorDF = 10

// maxTerm clips one pair's Pearson term: a clump of c errors gives terms about c, a change of
// level one huge term.
const maxTerm = 25

// maxPhi bounds the tempering: past it the baseline is too erratic to compare with at all, and
// the test would need hours; the analysis says so in words (see Describe).
const maxPhi = 50

// ObserveBatch adds one closed batch of the baseline: its requests and events.
func (d *Dispersion) ObserveBatch(requests, events int64) {
	if d == nil || requests <= 0 {
		return
	}
	n, e := float64(requests), float64(min(events, requests))
	if d.clumps {
		d.sums.N += n
		d.sums.E += e
		d.sums.E2 += e * e
		d.sums.NE += n * e
		d.sums.N2 += n * n
	}
	if d.prevN > 0 && e+d.prevE > 0 {
		pi := n / (n + d.prevN)
		tot := e + d.prevE
		d.timeChi2 += min(maxTerm, (e-pi*tot)*(e-pi*tot)/(tot*pi*(1-pi)))
		d.pairs++
	}
	d.prevN, d.prevE = n, e
}

// SetUnits replaces the per-unit totals of the baseline (requests and events of each unit since
// the start).
func (d *Dispersion) SetUnits(requests, events []int64) {
	if d == nil {
		return
	}
	var n, e float64
	k := 0
	for i := range requests {
		if requests[i] > 0 {
			n += float64(requests[i])
			e += float64(min(events[i], requests[i]))
			k++
		}
	}
	d.unitChi2, d.unitDF = 0, 0
	if k < 2 || e == 0 || e == n {
		return
	}
	r := e / n
	for i := range requests {
		if requests[i] <= 0 {
			continue
		}
		ni, ei := float64(requests[i]), float64(min(events[i], requests[i]))
		d.unitChi2 += (ei - ni*r) * (ei - ni*r) / (ni * r * (1 - r))
	}
	d.unitDF = k - 1
}

// Phi is the dispersion to apply: the larger of the two estimates, each shrunk towards 1 and
// lowered by one standard error (so that chance alone, which makes a Pearson estimate above 1
// half the time, seldom tempers independent requests), at least 1 and at most maxPhi. A nil
// Dispersion is 1.
func (d *Dispersion) Phi() float64 {
	if d == nil {
		return 1
	}
	est := func(chi2 float64, df int) float64 {
		n := float64(df + priorDF)
		return (chi2 + priorDF) / n * (1 - math.Sqrt(2/n))
	}
	phi := 1.0
	if d.pairs > 0 {
		phi = max(phi, est(d.timeChi2, d.pairs))
	}
	if d.unitDF > 0 {
		phi = max(phi, est(d.unitChi2, d.unitDF))
	}
	if c := d.sums; d.clumps && c.E > 0 {
		r := c.E / c.N
		chi2 := c.E2 - 2*r*c.NE + r*r*c.N2 // Σ (e_b − n_b·r)², expanded
		phi = max(phi, (max(chi2, 0)+priorEvents)/(c.E+priorEvents))
	}
	if math.IsNaN(phi) {
		return 1
	}
	return min(phi, maxPhi)
}
