package judge

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// poisson draws from a Poisson distribution (Knuth for small means, normal approximation above).
func poisson(r *rand.Rand, mean float64) int64 {
	if mean <= 0 {
		return 0
	}
	if mean > 50 {
		return max(0, int64(math.Round(mean+math.Sqrt(mean)*r.NormFloat64())))
	}
	l, k, p := math.Exp(-mean), int64(0), 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// binomial draws the number of events among n requests with probability p (Poisson for small p).
func binomial(r *rand.Rand, n int64, p float64) int64 { return min(n, poisson(r, float64(n)*p)) }

// run simulates one rollout of `seconds` looks at rps requests per second, share to the canary,
// and returns the second at which the test rejected (-1: never).
func run(r *rand.Rand, rps, share, baseRate, canaryRate float64, seconds int, alpha float64) int {
	t := NewCountTest(1.2, alpha)
	for s := 1; s <= seconds; s++ {
		n := poisson(r, rps)
		nc := binomial(r, n, share)
		nb := n - nc
		t.Observe(int64(s)/10, nc, binomial(r, nc, canaryRate), nb, binomial(r, nb, baseRate))
		if t.Rejected() {
			return s
		}
	}
	return -1
}

func TestCountTestHoldsAlphaUnderRepeatedLooks(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const runs, alpha = 2000, 0.01
	for _, rps := range []float64{10, 100, 1000} {
		false := 0
		for range runs {
			if run(r, rps, 0.1, 0.005, 0.005, 600, alpha) >= 0 {
				false++
			}
		}
		// Anytime-valid: at most alpha, looked at every second for ten minutes. Allow sampling noise
		// (three standard errors of a 1% rate over 2,000 runs is 0.7 points).
		if rate := float64(false) / runs; rate > alpha+0.007 {
			t.Errorf("%g req/s: false rejections %.2f%% > alpha %.0f%%", rps, 100*rate, 100*alpha)
		}
	}
}

func TestCountTestDetectsARegressionFast(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var times []int
	for range 300 {
		times = append(times, run(r, 100, 0.1, 0.005, 0.025, 600, 0.01))
	}
	detected, slow := 0, 0
	for _, s := range times {
		if s >= 0 {
			detected++
		}
		if s < 0 || s > 120 {
			slow++
		}
	}
	if detected < 295 {
		t.Errorf("+2 points at 100 req/s detected in %d of 300 runs", detected)
	}
	if slow > 30 {
		t.Errorf("+2 points at 100 req/s took over two minutes in %d of 300 runs", slow)
	}
}

func TestCountTestSeesNoEvidenceWithoutEvents(t *testing.T) {
	c := NewCountTest(1.2, 0.01)
	c.Observe(0, 100, 0, 900, 0)
	c.Observe(1, 0, 0, 900, 3) // no canary traffic: no information
	c.Observe(2, 100, 0, 0, 0)
	if e := c.Evidence(); math.Abs(e-1) > 1e-12 {
		t.Fatalf("evidence without informative events = %v, want 1", e)
	}
	if !strings.Contains(c.Describe(), "over 200 / 1,800 requests") {
		t.Fatalf("describe: %s", c.Describe())
	}
}
