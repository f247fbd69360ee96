package stats

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"
)

// aaRates runs A/A experiments read every `every` units up to `units` and returns the share of
// runs in which the confidence sequence, and the fixed-horizon interval read as often, ever
// declared a difference.
func aaRates(t *testing.T, runs, units, every int, draw func(*rand.Rand) float64) (seq, fixed int) {
	t.Helper()
	o := opts()
	o.PlannedUnits = float64(units)
	for run := 0; run < runs; run++ {
		r := rand.New(rand.NewPCG(uint64(run), 99))
		var c, a Moments
		var seqHit, fixedHit bool
		for i := 1; i <= units; i++ {
			if r.IntN(2) == 0 {
				c.Add(draw(r))
			} else {
				a.Add(draw(r))
			}
			if i%every != 0 {
				continue
			}
			cmp, err := Compare(c, a, o)
			if err != nil {
				continue
			}
			seqHit = seqHit || cmp.Absolute.Sequential.Excludes(0)
			fixedHit = fixedHit || cmp.Absolute.Fixed.Excludes(0)
		}
		if seqHit {
			seq++
		}
		if fixedHit {
			fixed++
		}
	}
	return seq, fixed
}

// upperBound is the one-sided 99% Clopper–Pearson upper bound of a binomial rate.
func upperBound(k, n int) float64 {
	if k == n {
		return 1
	}
	return distuv.Beta{Alpha: float64(k + 1), Beta: float64(n - k)}.Quantile(0.99)
}

func lowerBound(k, n int) float64 {
	if k == 0 {
		return 0
	}
	return distuv.Beta{Alpha: float64(k), Beta: float64(n - k + 1)}.Quantile(0.01)
}

// The promise: results may be read as often as one likes. A/A runs read 100 times each
// must declare a false winner at most alpha of the time; the same runs read with the fixed-horizon
// interval must not (that is what peeking does).
func TestAAFalseWinnersUnderAlphaWhenReadOften(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("400 simulated experiments: run without -short and -race")
	}
	for _, m := range []struct {
		name string
		draw func(*rand.Rand) float64
	}{
		{"conversion 10%", func(r *rand.Rand) float64 { return b2f(r.Float64() < 0.1) }},
		{"revenue, lognormal", func(r *rand.Rand) float64 { return math.Exp(r.NormFloat64()) }},
	} {
		t.Run(m.name, func(t *testing.T) {
			const runs = 400
			seq, fixed := aaRates(t, runs, 20000, 200, m.draw)
			t.Logf("false winners in %d A/A runs read 100 times: sequential %d (%.3f, 99%% upper bound %.3f), fixed-horizon peeked %d (%.3f)",
				runs, seq, float64(seq)/runs, upperBound(seq, runs), fixed, float64(fixed)/runs)
			if lowerBound(seq, runs) > 0.05 {
				t.Errorf("sequential false-winner rate %d/%d is significantly above alpha 0.05", seq, runs)
			}
			if lowerBound(fixed, runs) <= 0.05 {
				t.Errorf("peeking at the fixed-horizon interval gave %d/%d: it should be clearly above alpha, or this test cannot tell", fixed, runs)
			}
		})
	}
}
