package main

import (
	"bytes"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	aviaryconfig "aviary.dev/aviary/internal/config"
)

// Minute outcomes fed to the threshold judges.
const (
	pass    = iota
	errFail // success rate below 99%
	latFail // p99 above the limit
	both    // both in the same minute
	noData  // no canary request in the minute
)

func minute(outcome int) measurement {
	m := measurement{requests: 600, errors: 0, logP99: 0}
	switch outcome {
	case errFail:
		m.errors = 60
	case latFail:
		m.logP99 = 2
	case both:
		m.errors, m.logP99 = 60, 2
	case noData:
		m = measurement{logP99: math.NaN()}
	}
	return m
}

// rollbackAt feeds a judge one measurement per minute (nothing in between) and returns the second
// at which it rolled back, -1 for never.
func rollbackAt(j judge, minutes []int) int {
	var k tick
	for t := 1; t <= 60*len(minutes); t++ {
		var m *measurement
		if t%60 == 0 {
			mm := minute(minutes[t/60-1])
			m = &mm
		}
		if j.observe(&k, m) {
			return t
		}
	}
	return -1
}

func TestReferenceJudgesCountAsDocumented(t *testing.T) {
	const limit = 1.0 // log ms; minute() fails latency with 2
	tests := []struct {
		name                  string
		minutes               []int
		argo0, argo3, flagger int
	}{
		{"every minute fails", []int{errFail, errFail, errFail, errFail, errFail, errFail}, 60, 240, 300},
		// Failures are counted over the run, not consecutively: passing minutes in between reset nothing.
		{"every other minute fails", []int{errFail, pass, errFail, pass, errFail, pass, errFail, pass, errFail, pass}, 60, 420, 540},
		// Argo counts per metric (each must exceed failureLimit); Flagger counts failed checks.
		{"failures spread over two metrics", []int{errFail, errFail, errFail, latFail, latFail, latFail, pass}, 60, -1, 300},
		// Flagger counts one failed check per tick, however many metrics failed; Argo counts each metric.
		{"both metrics fail together", []int{both, both, both, both, pass, pass}, 60, 240, -1},
		// No requests: Argo's NaN fails the successCondition; Flagger's "no values found" fails the check.
		{"no canary traffic", []int{noData, noData, noData, noData, noData}, 60, 240, 300},
		{"all pass", []int{pass, pass, pass, pass, pass, pass}, -1, -1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := []int{
				rollbackAt(&argo{failureLimit: 0, logMaxMs: limit}, tt.minutes),
				rollbackAt(&argo{failureLimit: 3, logMaxMs: limit}, tt.minutes),
				rollbackAt(&flagger{threshold: 5, logMaxMs: limit}, tt.minutes),
			}
			if want := []int{tt.argo0, tt.argo3, tt.flagger}; !slices.Equal(got, want) {
				t.Errorf("rollback seconds (Argo 0, Argo 3, Flagger 5) = %v, want %v", got, want)
			}
		})
	}
}

func TestSuccessRateThresholdIsInclusive(t *testing.T) {
	at := measurement{requests: 600, errors: 6}   // exactly 1%: success rate 99% meets ">= 99"
	over := measurement{requests: 600, errors: 7} // 1.17%
	if !at.successRateOK() || over.successRateOK() {
		t.Fatalf("1%% errors ok = %v (want true), 1.17%% ok = %v (want false)", at.successRateOK(), over.successRateOK())
	}
}

// An obvious regression (+5 points of errors at 1000 req/s) is caught by every judge in every run,
// the threshold judges at the minute their counting says.
func TestObviousRegressionIsDetectedByAll(t *testing.T) {
	c := defaults()
	c.minutes = 6
	sc := scenario{id: 100, name: "errors +5 pp", addErr: 0.05, latFactor: 1}
	cl := cell{load: 1000, sc: sc, runs: runCell(c.model(), 1000, sc, c.runs, 2, 7)}
	want := map[int]float64{1: 60, 2: 240, 3: 300} // Argo 0: first minute; Argo 3: 4th; Flagger: 5th
	for j, js := range judgeSpecs {
		if got := cl.rate(j); got != 1 {
			t.Errorf("%s detected %.0f%% of runs, want 100%%", js.name, 100*got)
		}
		med := cl.quantile(j, 0.5)
		if w, ok := want[j]; ok && med != w {
			t.Errorf("%s: median %v s, want %v s", js.name, med, w)
		}
		if j == aviaryIdx && med > 30 {
			t.Errorf("Aviary: median %v s for +5 points at 1000 req/s, want under 30 s", med)
		}
	}
}

// The whole benchmark runs at tiny sizes and renders every section of the report.
func TestTinyBenchmarkRenders(t *testing.T) {
	c := defaults()
	c.runsAA, c.runs, c.minutes, c.seed, c.workers, c.out = 50, 50, 2, 3, 2, ""
	var out bytes.Buffer
	if err := run(c, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	md := out.String()
	for _, want := range []string{
		"| 10 | Aviary (1 s looks, α 0.01) |", "| 1000 | Flagger threshold 5 |",
		"## Targets", "**2. +2 pp at 100 req/s", "**3. At least 5× faster", "| Aviary's α |",
		"### Speed at the shipped α 0.01", "## Analysis", "## How far from the fastest possible",
		"## Why Aviary rolls back A/A canaries", "## What would help", "## Model", "-margin-latency 1 -slowdown 0.1",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func TestRunsDoNotDependOnWorkers(t *testing.T) {
	c := defaults()
	c.minutes = 2
	sc := c.scenarios()[0]
	a := runCell(c.model(), 100, sc, 40, 1, 5)
	b := runCell(c.model(), 100, sc, 40, 3, 5)
	for i := range a {
		if !slices.Equal(a[i].times, b[i].times) || a[i].truth != b[i].truth ||
			!slices.Equal(a[i].aviary, b[i].aviary) || !slices.Equal(a[i].oracle, b[i].oracle) {
			t.Fatalf("run %d differs between 1 and 3 workers: %v vs %v", i, a[i], b[i])
		}
	}
}

// The warm-up boundary is the baseline's p99, and 1% of baseline requests are above it.
func TestBoundaryIsTheBaselineP99(t *testing.T) {
	c := defaults()
	r := rand.New(rand.NewPCG(1, 1))
	w := newWorld(r, c.model(), 1000, scenario{latFactor: 1, ownSpread: true})
	p99 := math.Exp(w.logBound)
	if want := 50 * math.Exp(0.5*2.326348); math.Abs(p99/want-1) > 0.02 {
		t.Errorf("boundary %.1f ms, want about %.1f ms", p99, want)
	}
	if p := w.base[0].slowP; math.Abs(p-0.01) > 0.001 {
		t.Errorf("share above the boundary %.4f, want about 0.01", p)
	}
}

func TestSamplersHaveTheirMoments(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	const n = 200000
	check := func(name string, draw func() float64, mean, variance float64) {
		t.Helper()
		var s, s2 float64
		for range n {
			x := draw()
			s += x
			s2 += x * x
		}
		m := s / n
		v := s2/n - m*m
		if se := math.Sqrt(variance / n); math.Abs(m-mean) > 5*se {
			t.Errorf("%s: mean %.4f, want %.4f", name, m, mean)
		}
		if math.Abs(v/variance-1) > 0.03 {
			t.Errorf("%s: variance %.4f, want %.4f", name, v, variance)
		}
	}
	for _, mu := range []float64{0.5, 3, 22.5, 225} {
		check("poisson", func() float64 { return float64(poisson(r, mu)) }, mu, mu)
	}
	for _, c := range []struct {
		n int64
		p float64
	}{{100, 0.005}, {225, 0.01}, {100, 0.055}, {40, 0.9}} {
		np := float64(c.n) * c.p
		check("binomial", func() float64 { return float64(binomial(r, c.n, c.p)) }, np, np*(1-c.p))
	}
	check("gamma multiplier", func() float64 { return gammaMultiplier(r, 0.1) }, 1, 0.01)
	a, b := 99.0, 2.0
	check("beta", func() float64 { return beta(r, a, b) }, a/(a+b), a*b/((a+b)*(a+b)*(a+b+1)))
}

func TestKthSelects(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	for range 200 {
		xs := make([]float64, 1+r.IntN(300))
		for i := range xs {
			xs[i] = float64(r.IntN(50)) // ties included
		}
		k := r.IntN(len(xs))
		sorted := slices.Sorted(slices.Values(xs))
		if got := kth(xs, k); got != sorted[k] {
			t.Fatalf("kth(%d) = %v, want %v", k, got, sorted[k])
		}
	}
}

// The benchmark runs Aviary as it ships.
func TestDefaultsAreShipped(t *testing.T) {
	c := defaults()
	if c.errMargin != aviaryconfig.DefaultMargin || c.slowdown != aviaryconfig.DefaultSlowdown || c.latMargin != 1 || alpha != aviaryconfig.DefaultAlpha {
		t.Errorf("benchmark: margins %g, %g, slowdown %g, alpha %g; shipped: %g, 1, %g, %g", c.errMargin, c.latMargin, c.slowdown, alpha,
			aviaryconfig.DefaultMargin, aviaryconfig.DefaultSlowdown, aviaryconfig.DefaultAlpha)
	}
}

func TestAlphaLadder(t *testing.T) {
	if alphaLadder[0] != maxAlpha || alphaLadder[len(alphaLadder)-1] != minAlpha || !slices.Contains(alphaLadder, alpha) {
		t.Fatalf("ladder %v: want it from maxAlpha %g to minAlpha %g, through alpha %g", alphaLadder, maxAlpha, minAlpha, alpha)
	}
	for i := 1; i < len(alphaLadder); i++ {
		if alphaLadder[i] >= alphaLadder[i-1] {
			t.Fatalf("ladder not decreasing at %d: %v", i, alphaLadder)
		}
	}
}

// Reading an alpha off the evidence path gives the second at which Aviary's two count tests at that
// alpha, fed the same traffic, first reject: the path is the judge at every alpha at once.
func TestEvidencePathIsTheJudgeAtEveryAlpha(t *testing.T) {
	c := defaults()
	m := c.model()
	alphas := []float64{maxAlpha, 0.2, 0.05, alpha, 0.001, 1e-5, minAlpha}
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 11))
		sc := scenario{latFactor: 1.2, addErr: 0.002 * float64(seed%3)}
		w := newWorld(r, m, 300, sc)
		a := newAviary(m)
		want := make([]int32, len(alphas))
		tests := make([]counts, len(alphas))
		for i, al := range alphas {
			want[i] = -1
			tests[i] = newCounts(m.errMargin, m.latMargin)
			for j, ct := range tests[i].tests {
				ct.Alpha = al * share[j]
			}
		}
		var k tick
		for s := 1; s <= m.seconds; s++ {
			w.draw(r, &k, false)
			k.second = int32(s)
			a.observe(&k, nil)
			for i := range tests {
				ts := &tests[i]
				ts.look(k.second, k.canaryN, [numTests]int64{k.canaryErr, k.canarySlow, k.canarySlow90}, [numTests]int64{},
					k.baseN, [numTests]int64{k.baseErr, k.baseSlow, k.baseSlow90}, [numTests]int64{})
				if want[i] < 0 && ts.rejected() {
					want[i] = int32(s)
				}
			}
		}
		for i, al := range alphas {
			if got := first(a.path.steps, aviaryLevel(al)); got != want[i] {
				t.Errorf("seed %d, alpha %g: path says %d, the count tests %d", seed, al, got, want[i])
			}
		}
	}
}

// Several alphas evaluated on one run: a smaller alpha never rolls back earlier, and the shipped
// alpha is the judge of the main table.
func TestAlphasOnOnePathAreMonotone(t *testing.T) {
	c := defaults()
	c.minutes = 4
	for _, sc := range []scenario{c.scenarios()[0], c.scenarios()[2], c.scenarios()[3]} {
		cl := cell{load: 1000, sc: sc, runs: runCell(c.model(), 1000, sc, 60, 2, 9)}
		if got, want := cl.aviaryAt(alpha), cl.times(aviaryIdx); !slices.Equal(got, want) {
			t.Fatalf("%s: at the shipped alpha the path gives %v, the judge %v", sc.name, got, want)
		}
		if got, want := cl.oracleAt(alpha), cl.times(oracleIdx); !slices.Equal(got, want) {
			t.Fatalf("%s: oracle at the shipped alpha %v, judged %v", sc.name, got, want)
		}
		never := func(t int32) int32 {
			if t < 0 {
				return math.MaxInt32
			}
			return t
		}
		for i := range cl.runs {
			prev := int32(0)
			for _, a := range alphaLadder {
				at := never(cl.aviaryAt(a)[i])
				if at < prev {
					t.Fatalf("%s run %d: alpha %g rolls back at %d, before a larger alpha (%d)", sc.name, i, a, at, prev)
				}
				prev = at
			}
		}
	}
}

func TestMatchAlpha(t *testing.T) {
	// aviaryK is a step function of alpha: how many A/A runs Aviary rolls back at each.
	step := func(counts map[float64]int) func(float64) int {
		return func(a float64) int {
			best, k := math.Inf(1), 0
			for l, c := range counts {
				if l >= a && l < best {
					best, k = l, c
				}
			}
			return k
		}
	}
	tests := []struct {
		name          string
		judgeK, n     int
		counts        map[float64]int
		want          float64
		wantOK        bool
		wantAtMostFor float64 // the judge's rate: confirmed rates must not exceed it
	}{
		{"judge above the shipped alpha: its rate", 712, 2000, map[float64]int{1: 150}, 0.356, true, 0.356},
		{"judge near 100%: capped", 1989, 2000, map[float64]int{1: 227}, maxAlpha, true, 0.9945},
		{"judge above, Aviary higher at its rate: step down", 100, 2000, map[float64]int{1: 120, 0.02: 90}, 0.02, true, 0.05},
		{"judge at or under alpha, Aviary lower: alpha", 17, 2000, map[float64]int{1: 2}, alpha, true, 0.0085},
		{"judge under alpha, Aviary higher: step down", 2, 2000,
			map[float64]int{1: 11, 0.002: 9, 1e-4: 5, 1e-6: 3, 5e-7: 2}, 5e-7, true, 0.001},
		{"never low enough", 0, 2000, map[float64]int{1: 2}, minAlpha, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := step(tt.counts)
			got, ok := matchAlpha(tt.judgeK, tt.n, k)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("matchAlpha = %g, %v; want %g, %v", got, ok, tt.want, tt.wantOK)
			}
			if ok && float64(k(got))/float64(tt.n) > tt.wantAtMostFor {
				t.Fatalf("confirmed rate %d/%d above the judge's %g", k(got), tt.n, tt.wantAtMostFor)
			}
		})
	}
}

// On simulated runs, a confirmed match never leaves Aviary with more false rollbacks than the
// threshold judge, and its alpha is the judge's rate (or lower) when that is above the shipped one.
func TestMatchedNeverExceedsTheJudgesRate(t *testing.T) {
	c := defaults()
	c.runsAA, c.runs, c.minutes, c.loads, c.workers = 300, 60, 4, []float64{10, 1000}, 2
	r := report{c: c, m: c.model()}
	for _, load := range c.loads {
		for _, sc := range c.scenarios()[:4] {
			r.cells = append(r.cells, cell{load: load, sc: sc, runs: runCell(r.m, load, sc, c.runsOf(sc), c.workers, 4)})
		}
	}
	ps := r.matchedPairs()
	if len(ps) != 6 {
		t.Fatalf("%d matched pairs, want 2 loads × 3 threshold judges", len(ps))
	}
	for _, p := range ps {
		aa, _ := r.cell(p.load, idAA)
		rate := float64(p.judgeK) / float64(p.n)
		if p.aviK != rolledBack(aa.aviaryAt(p.alpha)) {
			t.Errorf("%g req/s %s: confirmed count %d is not Aviary's at alpha %g", p.load, judgeSpecs[p.judge].name, p.aviK, p.alpha)
		}
		if p.ok && p.aviK > p.judgeK {
			t.Errorf("%g req/s %s: Aviary %d of %d at alpha %g, judge %d", p.load, judgeSpecs[p.judge].name, p.aviK, p.n, p.alpha, p.judgeK)
		}
		if p.alpha > max(alpha, min(rate, maxAlpha)) {
			t.Errorf("%g req/s %s: alpha %g above the judge's rate %g", p.load, judgeSpecs[p.judge].name, p.alpha, rate)
		}
		if len(p.regs) != 3 {
			t.Errorf("%d regressions, want 3", len(p.regs))
		}
	}
}
