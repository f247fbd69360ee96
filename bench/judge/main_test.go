package main

import (
	"bytes"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
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
		"## Targets", "**2. +2 pp at 100 req/s", "## How far from the fastest possible",
		"## Why Aviary rolls back A/A canaries", "## What would fix the misses", "## Model",
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
		if !slices.Equal(a[i].times, b[i].times) || a[i].truth != b[i].truth {
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
