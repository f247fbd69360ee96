package judge

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// farRun is ten minutes of a latency metric at 100 req/s, 10% on the canary, in 10 s batches:
// its quantile test (1% of each version past the boundary) and its far test, fed as the analysis
// feeds them. hang is the share of the canary's requests that hang (counted past both boundaries
// one batch after they began, as metrics.Series.Pending shows them); stalls makes each of the
// five endpoints (four stable, one canary) stall for 3 s once per 10 minutes on average, half its
// requests then past every boundary. It returns the second the average of the two tests reached
// 1/alpha, or -1.
func farRun(r *rand.Rand, hang float64, stalls bool) int {
	const alpha = 0.0025 // a latency metric's share of the default template's 0.01
	q, far := NewCountTest(1, alpha), NewFarTest(alpha)
	q.Dispersion = &Dispersion{}
	stall := [5]int{}
	// second draws one second: the stable's and the canary's requests, slow ones and far ones.
	second := func() (bn, bs, bf, cn, cs, cf int64) {
		for ep := range 5 {
			if stalls && stall[ep] == 0 && r.Float64() < 1.0/600 {
				stall[ep] = 3
			}
			rate := 22.5
			if ep == 4 {
				rate = 10
			}
			n := poisson(r, rate)
			s, f := binomial(r, n, 0.01), int64(0)
			if stall[ep] > 0 {
				stall[ep]--
				half := binomial(r, n, 0.5)
				s, f = s+half, half
			}
			if ep == 4 {
				cn, cs, cf = cn+n, cs+s, cf+f
			} else {
				bn, bs, bf = bn+n, bs+s, bf+f
			}
		}
		return
	}
	for range 30 { // five minutes of the stable before the canary: both dispersions
		var n, s, f int64
		for range 10 {
			bn, bs, bf, cn, cs, cf := second()
			n, s, f = n+bn+cn, s+bs+cs, f+bf+cf
		}
		q.Dispersion.ObserveBatch(n, s)
		far.Dispersion.ObserveBatch(n, f)
	}
	stall = [5]int{}
	var hung []int
	var bn, bs, bf int64
	for sec := 1; sec <= 600; sec++ {
		b := int64(sec-1) / 10
		if sec > 1 && b != int64(sec-2)/10 {
			q.Dispersion.ObserveBatch(bn, bs)
			far.Dispersion.ObserveBatch(bn, bf)
			bn, bs, bf = 0, 0, 0
		}
		n, s, f, cn, cs, cf := second()
		h := binomial(r, cn, hang)
		cn, cs = cn-h, max(0, cs-h)
		for range h {
			hung = append(hung, sec)
		}
		for _, at := range hung {
			if sec-at == 10 {
				cn, cs, cf = cn+1, cs+1, cf+1
			}
		}
		bn, bs, bf = bn+n, bs+s, bf+f
		q.Observe(b, cn, cs, n, s)
		far.Observe(b, cn, cf, n, f)
		if LatencyEvidence(q, far) >= q.Needed() {
			return sec
		}
	}
	return -1
}

// A canary whose requests hang is caught within a minute by the far test, where the quantile
// test alone takes minutes: 2% hanging at 100 req/s is 0.2 more slow requests a second against
// the stable's 0.9 at the boundary, but against none past the far one.
func TestTheFarTestCatchesHungRequestsWithinAMinute(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 9))
	var secs []int
	for range 50 {
		secs = append(secs, farRun(r, 0.02, false))
	}
	med := medianSecond(secs)
	if med < 0 || med > 60 {
		t.Fatalf("2%% of the canary's requests hang: median second of rollback %d (runs %v), want within 60 s", med, secs)
	}
}

// Stalls that slow half of an endpoint's requests for 3 s, on the stable and the canary alike,
// put clumps of requests past the far boundary where there is nothing else: the stable's clumps
// temper the far test (the clump dispersion), and the batch cap keeps one of the canary's own
// from rolling it back. The check allows 1% of 600 runs, four times the metric's alpha (0.25%):
// a rate at alpha exceeds it with probability about 0.1%; without the clump dispersion the rate
// was 0.65% in the hostile bench's stall cell, with it 0 of 1,000 there (and 3 of 1,000 runs of this model).
func TestTheFarTestHoldsAlphaWhenEndpointsStall(t *testing.T) {
	if testing.Short() {
		t.Skip("Monte Carlo")
	}
	r := rand.New(rand.NewPCG(5, 11))
	const runs = 600
	rejected := 0
	for range runs {
		if farRun(r, 0, true) >= 0 {
			rejected++
		}
	}
	if rejected > runs/100 {
		t.Fatalf("A/A with stalls: %d of %d runs rolled back, want at most %d (alpha 0.25%%)", rejected, runs, runs/100)
	}
}

// The clump estimate sees clumps among rare events (a stall: dozens past the far boundary at
// once) and stays near 1 for rare independent ones.
func TestTheClumpDispersionSeesClumpsOfRareEvents(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	indep, clumped := NewClumpDispersion(), NewClumpDispersion()
	for b := range 60 {
		indep.ObserveBatch(1000, poisson(r, 0.5))
		e := int64(0)
		if b%20 == 7 {
			e = 30
		}
		clumped.ObserveBatch(1000, e)
	}
	if phi := indep.Phi(); phi > 1.5 {
		t.Errorf("independent rare events: φ = %.2f, want about 1", phi)
	}
	if phi := clumped.Phi(); phi < 15 {
		t.Errorf("three clumps of 30: φ = %.2f, want near the clump size", phi)
	}
	if phi := (&Dispersion{}).Phi(); phi != 1 {
		t.Errorf("no data: φ = %v, want 1", phi)
	}
}

// A far test goes through its state (JSON, as the store keeps it) with its grid and its clump
// sums, and decides bit for bit as the original.
func TestARestoredFarTestDecidesBitForBitAsTheOriginal(t *testing.T) {
	orig := NewFarTest(0.0025)
	for b := range int64(20) {
		orig.Dispersion.ObserveBatch(1000, b%7/6*25)
		orig.Observe(b, 100, b%3/2, 900, b%7/6*25)
	}
	data, err := json.Marshal(orig.State())
	if err != nil {
		t.Fatal(err)
	}
	var st CountState
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	restored, err := RestoreCountTest(st)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	for b := int64(20); b < 60; b++ {
		for _, ft := range []*CountTest{orig, restored} {
			ft.Dispersion.ObserveBatch(1000, b%11/10*30)
			ft.Observe(b, 100, b%4/3, 900, b%11/10*30)
		}
		if math.Float64bits(restored.Evidence()) != math.Float64bits(orig.Evidence()) || restored.Phi() != orig.Phi() {
			t.Fatalf("batch %d: evidence %v φ %v restored, %v φ %v original", b, restored.Evidence(), restored.Phi(), orig.Evidence(), orig.Phi())
		}
	}
	if orig.Phi() < 2 || len(orig.grid) != len(farRatios) {
		t.Fatalf("the far test saw too little to mean anything: φ %v, grid %v", orig.Phi(), orig.grid)
	}
}

// medianSecond is the median of rollback seconds, a run that never rolled back (-1) counting as
// later than any.
func medianSecond(xs []int) int {
	s := make([]int, len(xs))
	for i, x := range xs {
		s[i] = x
		if x < 0 {
			s[i] = math.MaxInt
		}
	}
	slices.Sort(s)
	if m := s[len(s)/2]; m != math.MaxInt {
		return m
	}
	return -1
}
