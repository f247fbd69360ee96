package stats

import (
	"fmt"
	"math"
	"sort"
)

// Adjustment is how p-values are adjusted for the number of metrics × arms.
type Adjustment string

// The adjustments; internal/config defaults to Holm.
const (
	Holm              Adjustment = "holm"
	BenjaminiHochberg Adjustment = "bh"
)

// ParseAdjustment reads an adjustment's name.
func ParseAdjustment(s string) (Adjustment, error) {
	switch a := Adjustment(s); a {
	case Holm, BenjaminiHochberg:
		return a, nil
	}
	return "", fmt.Errorf("p-value adjustment %q: use %q (family-wise, the default) or %q (false discovery rate)", s, Holm, BenjaminiHochberg)
}

// Adjust returns the adjusted p-values, in the order given. NaN p-values are left as NaN and not
// counted.
func Adjust(p []float64, a Adjustment) []float64 {
	idx := make([]int, 0, len(p))
	for i, v := range p {
		if !math.IsNaN(v) {
			idx = append(idx, i)
		}
	}
	sort.SliceStable(idx, func(i, j int) bool { return p[idx[i]] < p[idx[j]] })
	out := make([]float64, len(p))
	for i := range out {
		out[i] = math.NaN()
	}
	m := float64(len(idx))
	switch a {
	case BenjaminiHochberg:
		// Step-up: p_(i)·m/i, then the running minimum from the largest down.
		run := 1.0
		for k := len(idx) - 1; k >= 0; k-- {
			// max with p: p·m/m can round below p.
			run = math.Min(run, math.Max(p[idx[k]], p[idx[k]]*m/float64(k+1)))
			out[idx[k]] = run
		}
	default:
		// Holm's step-down: p_(i)·(m−i+1), then the running maximum from the smallest up.
		run := 0.0
		for k, i := range idx {
			run = math.Max(run, math.Min(1, p[i]*(m-float64(k))))
			out[i] = run
		}
	}
	return out
}
