package stats

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// SRMThreshold is the p-value under which a split counts as mismatched (Fabijan et al. 2019).
const SRMThreshold = 0.001

// SRM is the sample ratio mismatch check of the units each arm received against the configured
// split.
type SRM struct {
	ChiSquare   float64 `json:"chiSquare"`
	PChiSquare  float64 `json:"pChiSquare"`
	PSequential float64 `json:"pSequential"` // 1/Bayes factor of the Dirichlet-multinomial mixture
	// Mismatch is the sequential test's verdict, the one that blocks a winner: it may be read
	// every minute. χ² is valid read once; read every minute for two weeks it raised a false alarm
	// in about 4% of even splits (bench/experiment, 1000 runs), so it is reported, not acted on.
	Mismatch bool `json:"mismatch"`
	// ChiSquareMismatch is χ² under SRMThreshold: a mismatch if this is a single planned read.
	ChiSquareMismatch bool `json:"chiSquareMismatch"`
}

// SampleRatio tests the units per arm against the configured weights (any positive scale).
// concentration is c in the Dirichlet(c·p₀) prior of the sequential test: about 1/δ² tunes it for
// a share that is off by δ (10,000 for 1 point).
func SampleRatio(units, weights []float64, concentration float64) (SRM, error) {
	if len(units) != len(weights) || len(units) < 2 {
		return SRM{}, fmt.Errorf("sample ratio: %d arms with %d weights: give one weight per arm, at least two arms", len(units), len(weights))
	}
	if !(concentration > 0) {
		return SRM{}, errors.New("sample ratio: the concentration must be above 0 (10000 is a good default)")
	}
	var wsum, n float64
	for i, w := range weights {
		if !(w > 0) || units[i] < 0 {
			return SRM{}, fmt.Errorf("sample ratio: arm %d has weight %v and %v units: weights must be above 0, units at least 0", i, w, units[i])
		}
		wsum += w
		n += units[i]
	}
	if n == 0 {
		return SRM{ChiSquare: 0, PChiSquare: 1, PSequential: 1}, nil
	}
	var chi, logBF float64
	a0 := concentration
	lg := func(x float64) float64 { v, _ := math.Lgamma(x); return v }
	logBF = lg(a0) - lg(a0+n)
	for i, w := range weights {
		p := w / wsum
		e := n * p
		chi += (units[i] - e) * (units[i] - e) / e
		a := concentration * p
		logBF += lg(a+units[i]) - lg(a) - units[i]*math.Log(p)
	}
	s := SRM{ChiSquare: chi}
	s.PChiSquare = distuv.ChiSquared{K: float64(len(units) - 1)}.Survival(chi)
	s.PSequential = math.Min(1, math.Exp(-logBF))
	s.Mismatch = s.PSequential < SRMThreshold
	s.ChiSquareMismatch = s.PChiSquare < SRMThreshold
	return s, nil
}
