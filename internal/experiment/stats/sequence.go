package stats

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// boundary is the normal-mixture boundary of Waudby-Smith et al. (2024, Theorem 2.2) with its
// mixing parameter ρ² fixed by the planned size; see the package comment.
type boundary struct{ rho2, alpha float64 }

func newBoundary(alpha, planned float64) boundary {
	l := -2 * math.Log(alpha)
	return boundary{rho2: (l + math.Log(l+1)) / planned, alpha: alpha}
}

// halfWidth is σ̂·√(2(tρ²+1)/(t²ρ²)·log(√(tρ²+1)/α)) with σ̂ = se·√t: the half-width at t units
// of an estimator whose standard error is se.
func (b boundary) halfWidth(se, t, alpha float64) float64 { return se * b.multiplier(t, alpha) }

// multiplier is halfWidth/se: the sequence's critical value at t units, in standard errors.
func (b boundary) multiplier(t, alpha float64) float64 {
	tr := t * b.rho2
	return math.Sqrt(2 * (tr + 1) / tr * (0.5*math.Log1p(tr) - math.Log(alpha)))
}

// pValue is the smallest α at which the sequence excludes 0: solving d = halfWidth(α) for α.
func (b boundary) pValue(d, se, t float64) float64 {
	if se == 0 {
		return degenerateP(d)
	}
	tr := t * b.rho2
	logP := 0.5*math.Log1p(tr) - d*d*tr/(2*se*se*(tr+1))
	return math.Min(1, math.Exp(logP))
}

// unitsNeeded is the smallest total t at which halfWidth + z_power·se(t) ≤ mde, where the
// per-unit standard deviation sigma stays as it is today (se(t) = sigma/√t).
func (b boundary) unitsNeeded(mde, sigma, power float64) float64 {
	if sigma == 0 {
		return 2
	}
	z := distuv.UnitNormal.Quantile(power)
	ok := func(t float64) bool {
		se := sigma / math.Sqrt(t)
		return b.halfWidth(se, t, b.alpha)+z*se <= mde
	}
	lo, hi := 2.0, 4.0
	for !ok(hi) {
		lo, hi = hi, hi*2
		if hi > 1e15 {
			return math.Inf(1)
		}
	}
	for hi-lo > 1 && hi/lo > 1.001 {
		mid := (lo + hi) / 2
		if ok(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return math.Ceil(hi)
}
