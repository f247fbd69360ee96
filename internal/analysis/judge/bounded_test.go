package judge

import (
	"math"
	"strings"
	"testing"
)

// The bounded test holds alpha for any scores within their bounds, at the edge of H0 (the canary's
// mean exactly the margin times the baseline's) and looked at every second for ten minutes: scores
// that are 1 or 0 with 97% of ones (the most skewed a score in [0, 1] can be, and the shape of
// thumbs-up feedback), and a grader's scores piled up near 1. The asymptotic MeanTest runs on the
// same data beside it, for comparison. Each rate is reported with its 95% Wilson interval; the
// check is that the interval's lower end is at most alpha (a rate truly at alpha fails it one
// time in forty).
func TestBoundedMeanTestHoldsAlphaOnHostileScores(t *testing.T) {
	if testing.Short() {
		t.Skip("Monte Carlo")
	}
	const margin = 0.95
	levels := []float64{20, 100} // alpha 5% and 1%
	for k, c := range []struct {
		name         string
		base, canary dist
		rate         float64
		runs         int
	}{
		{"two-point 97% ones", twoPoint(0.97), twoPoint(margin * 0.97), 10, 2000},
		{"two-point 97% ones", twoPoint(0.97), twoPoint(margin * 0.97), 1, 500},
		{"two-point 97% ones", twoPoint(0.97), twoPoint(margin * 0.97), 100, 300},
		{"grader's scores, mean 0.85", score(0.85), score(0.85).times(margin), 10, 1000},
	} {
		o := rollout{rate: c.rate, share: 0.1, seconds: 600, base: c.base, canary: c.canary}
		res := simulate(c.runs, 2000+uint64(k), func(s *source) [][]int {
			return o.run(s, levels, NewBoundedMeanTest(Lower, margin, 0.05, 0, 1), NewMeanTest(Lower, margin, 0.05))
		})
		for j, l := range levels {
			alpha := 1 / l
			n := len(reached(res, 0, j))
			lo, hi := wilson(n, c.runs)
			if lo > alpha {
				t.Errorf("%s, %g values/s: the bounded test rejected %d of %d runs [%.2f%%, %.2f%%] at alpha %g%%", c.name, c.rate, n, c.runs, 100*lo, 100*hi, 100*alpha)
			}
			na := len(reached(res, 1, j))
			alo, ahi := wilson(na, c.runs)
			t.Logf("A/A at the margin, %s, %g values/s, alpha %g%%: bounded %.2f%% [%.2f, %.2f], asymptotic %.2f%% [%.2f, %.2f] of %d runs",
				c.name, c.rate, 100*alpha, 100*float64(n)/float64(c.runs), 100*lo, 100*hi, 100*float64(na)/float64(c.runs), 100*alo, 100*ahi, c.runs)
		}
	}
}

// A real drop of a score is caught: 0.7 against 0.85 with 0.95 tolerated (the asymptotic test's
// case in TestMeanTestDetectsALowerScore), and thumbs-up feedback falling from 90% to 75%.
func TestBoundedMeanTestDetectsALowerScore(t *testing.T) {
	const runs = 200
	for k, c := range []struct {
		name         string
		base, canary dist
		rate         float64
	}{
		{"grader's score 0.7 vs 0.85", score(0.85), score(0.7), 10},
		{"thumbs-up 75% vs 90%", twoPoint(0.9), twoPoint(0.75), 10},
	} {
		o := rollout{rate: c.rate, share: 0.1, seconds: 600, base: c.base, canary: c.canary}
		res := simulate(runs, 3000+uint64(k), func(s *source) [][]int {
			return o.run(s, []float64{100}, NewBoundedMeanTest(Lower, 0.95, 0.01, 0, 1), NewMeanTest(Lower, 0.95, 0.01))
		})
		secs, asym := reached(res, 0, 0), reached(res, 1, 0)
		t.Logf("%s, margin 0.95, alpha 1%%, 1 canary value/s: bounded detected %d of %d runs, median %ds; asymptotic %d, median %ds",
			c.name, len(secs), runs, median(secs), len(asym), median(asym))
		if len(secs) < runs*95/100 {
			t.Errorf("%s: detected in %d of %d runs within ten minutes", c.name, len(secs), runs)
		}
	}
	// The same scores, the other way round, are no regression.
	o := rollout{rate: 10, share: 0.1, seconds: 600, base: score(0.7), canary: score(0.85)}
	res := simulate(runs, 3100, func(s *source) [][]int {
		return o.run(s, []float64{100}, NewBoundedMeanTest(Lower, 0.95, 0.01, 0, 1))
	})
	if n := len(reached(res, 0, 0)); n > 0 {
		t.Errorf("a better canary rolled back in %d of %d runs", n, runs)
	}
}

// A score that drifts over the rollout while the canary's share rises is no regression: each
// block compares the versions at the same time.
func TestBoundedMeanTestTrafficDriftCancels(t *testing.T) {
	const runs = 300
	o := rollout{rate: 20, share: 0.1, seconds: 600, base: score(0.8), canary: score(0.8),
		shareAt: func(sec int) float64 { return 0.05 + 0.45*float64(sec)/600 },
		levelAt: func(sec int) float64 { return 1 - 0.4*float64(sec)/600 }}
	res := simulate(runs, 3200, func(s *source) [][]int {
		return o.run(s, []float64{100}, NewBoundedMeanTest(Lower, 1, 0.01, 0, 1))
	})
	if n := len(reached(res, 0, 0)); n > runs/50 {
		t.Errorf("a drifting score with a rising share: rolled back in %d of %d runs", n, runs)
	}
}

func TestBoundedMeanTestWithoutBothSidesHasNoEvidence(t *testing.T) {
	b := NewBoundedMeanTest(Lower, 0.95, 0.01, 0, 1)
	for range 100 {
		b.Observe(3, 0, 0, 0, 0, 0) // the canary scores 0, the baseline says nothing
	}
	if e := b.Evidence(); e != 1 {
		t.Fatalf("no baseline values: evidence %v, want 1", e)
	}
	b.Observe(0, 0, 0, 5, 5, 5)
	if e := b.Evidence(); !(e > 1) || math.IsNaN(e) {
		t.Fatalf("one block, canary 0 against baseline 1: evidence %v, want above 1", e)
	}
	if d := b.Describe(); !strings.Contains(d, "scores in 0..1, finite-sample") || !strings.Contains(d, "1 blocks") {
		t.Fatalf("describe: %s", d)
	}
	// Bounds that are no range never reject.
	bad := NewBoundedMeanTest(Higher, 1.05, 0.01, 1, 1)
	bad.Observe(10, 10, 10, 10, 10, 10)
	if bad.Rejected() {
		t.Fatal("a test with an empty range rejected")
	}
}

// wilson is the 95% Wilson score interval of k successes in n trials.
func wilson(k, n int) (lo, hi float64) {
	const z = 1.959963984540054
	p, nf := float64(k)/float64(n), float64(n)
	c := (p + z*z/(2*nf)) / (1 + z*z/nf)
	h := z * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf)) / (1 + z*z/nf)
	return max(0, c-h), min(1, c+h)
}
