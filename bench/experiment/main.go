// Command experiment benchmarks the statistics of Aviary's experiments (internal/experiment/stats)
// on simulated traffic (issue 14):
//
//	go run ./bench/experiment [-runs 1000] [-seed 1] [-out bench/results/experiment.md]
//
// It prints a markdown report to stdout and writes it to -out. Each run has its own PCG stream
// derived from -seed, the scenario and the run's index, so a report is the same whatever the number
// of cores; runs are spread over GOMAXPROCS goroutines.
//
// # Model
//
// Units arrive as a Poisson process, 20,000 over two simulated weeks (about one a minute: 10,000
// per arm), and are split 50/50 at random. A unit's outcome is known when it arrives (a
// conversion at rate p, or a normal value); the experiment is read every simulated minute, 20,160
// reads. "Sequential" is Aviary's confidence sequence (a winner when its always-valid p < alpha =
// 0.05, planned units 20,000); "peeking" is the fixed-horizon Welch test read at every minute as
// if each read were the last; "fixed" is Welch read once at the end, as it is meant to be read.
//
// Scenarios: A/A at 10% conversion (false winners); a +2% relative lift at 10% and at 50%
// conversion (power); CUPED on a normal metric whose pre-experiment value has correlation 0.5
// with it, 10,000 units per arm (the reported variance reduction, and the spread of the estimates
// across runs with and without it); sample ratio mismatch when 1% of one arm's units are lost (the
// units until the sequential test and χ² at p < 0.001 fire, read every 1,000 units up to 4 million),
// and the same checks' false alarms on an even split read every minute for two weeks.
package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"gonum.org/v1/gonum/stat/distuv"

	"aviary.dev/aviary/internal/experiment/stats"
)

const (
	minutes      = 14 * 24 * 60
	unitsPerRun  = 20000
	alpha        = 0.05
	srmConc      = 10000 // as internal/experiment uses
	srmMaxUnits  = 4_000_000
	srmReadEvery = 1000
)

var opts = stats.Options{Alpha: alpha, PlannedUnits: unitsPerRun, Power: 0.8, MDE: 0.02, MinUnits: 100} // as config's defaults

func main() {
	runs := flag.Int("runs", 1000, "runs per scenario")
	seed := flag.Uint64("seed", 1, "seed of every run's PCG stream")
	out := flag.String("out", "bench/results/experiment.md", "where the report is written (also printed)")
	flag.Parse()
	if *runs < 10 {
		fmt.Fprintln(os.Stderr, "-runs must be at least 10")
		os.Exit(2)
	}
	start := time.Now()
	var b strings.Builder
	report(&b, *runs, *seed)
	fmt.Fprintf(&b, "\nRun: `go run ./bench/experiment -runs %d -seed %d` in %s on %d cores.\n", *runs, *seed, time.Since(start).Round(time.Second), runtime.GOMAXPROCS(0))
	fmt.Print(b.String())
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err == nil {
		err = os.WriteFile(*out, []byte(b.String()), 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "write the report:", err)
			os.Exit(1)
		}
	}
}

// parallel runs f(run, rng) for every run over GOMAXPROCS workers.
func parallel(runs int, seed, scenario uint64, f func(run int, r *rand.Rand)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Go(func() {
			for i := range next {
				f(i, rand.New(rand.NewPCG(seed, scenario<<32|uint64(i))))
			}
		})
	}
	for i := 0; i < runs; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

// poisson draws a Poisson count with mean lambda (small lambda: Knuth's product method).
func poisson(r *rand.Rand, lambda float64) int {
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// outcome of one sequential run.
type outcome struct {
	seq, peek, fixed bool    // a winner declared (any direction for A/A; the right one otherwise)
	seqAt            float64 // units when the sequence first declared it
}

// readEveryMinute simulates one run: draw gives a unit's value in arm 0 or 1; wantSign is 0 for
// A/A (any difference is false), +1 when the true effect is positive.
func readEveryMinute(r *rand.Rand, draw func(r *rand.Rand, arm int) float64, wantSign float64) outcome {
	var ms [2]stats.Moments
	var o outcome
	lambda := float64(unitsPerRun) / minutes
	for m := 0; m < minutes; m++ {
		n := poisson(r, lambda)
		if n == 0 {
			continue // the same data read again gives the same answer
		}
		for ; n > 0; n-- {
			a := r.IntN(2)
			ms[a].Add(draw(r, a))
		}
		seq, fixed, err := stats.PValues(ms[0], ms[1], opts)
		if err != nil {
			continue
		}
		d := ms[1].Mean() - ms[0].Mean()
		right := wantSign == 0 || d*wantSign > 0
		if seq < alpha && right && !o.seq {
			o.seq, o.seqAt = true, ms[0].N+ms[1].N
		}
		o.peek = o.peek || (fixed < alpha && right)
		o.fixed = fixed < alpha && right // overwritten until the last read: Welch read once at the end
	}
	return o
}

// rate is k/n with its 95% Clopper–Pearson interval.
func rate(k, n int) string {
	lo, hi := 0.0, 1.0
	if k > 0 {
		lo = distuv.Beta{Alpha: float64(k), Beta: float64(n - k + 1)}.Quantile(0.025)
	}
	if k < n {
		hi = distuv.Beta{Alpha: float64(k + 1), Beta: float64(n - k)}.Quantile(0.975)
	}
	return fmt.Sprintf("%.3f (%.3f–%.3f)", float64(k)/float64(n), lo, hi)
}

func bernoulli(p0, p1 float64) func(*rand.Rand, int) float64 {
	return func(r *rand.Rand, arm int) float64 {
		p := p0
		if arm == 1 {
			p = p1
		}
		if r.Float64() < p {
			return 1
		}
		return 0
	}
}

func report(w io.Writer, runs int, seed uint64) {
	fmt.Fprintf(w, "# Experiments: the statistics on simulated traffic\n\n")
	fmt.Fprintf(w, "Model and method: `bench/experiment/main.go` (package comment) and `internal/experiment/stats` (package comment). "+
		"%d runs per scenario; rates with 95%% Clopper–Pearson intervals.\n\n", runs)
	sequential(w, runs, seed)
	cuped(w, runs, seed)
	srm(w, runs, seed)
}

func sequential(w io.Writer, runs int, seed uint64) {
	fmt.Fprintf(w, "## False winners (A/A) and power, read every minute for two weeks\n\n")
	fmt.Fprintf(w, "20,000 units (10,000 per arm), alpha %.2f.\n\n", alpha)
	fmt.Fprintf(w, "| scenario | sequential (Aviary), any read | fixed-horizon peeked every minute | fixed-horizon read once at the end | median units when the sequence fired |\n| --- | --- | --- | --- | --- |\n")
	for i, sc := range []struct {
		name   string
		p0, p1 float64
		sign   float64
	}{
		{"A/A, conversion 10%", 0.10, 0.10, 0},
		{"+2% relative, conversion 10%", 0.10, 0.102, 1},
		{"+2% relative, conversion 50%", 0.50, 0.51, 1},
		{"+10% relative, conversion 10%", 0.10, 0.11, 1},
	} {
		res := make([]outcome, runs)
		parallel(runs, seed, uint64(10+i), func(run int, r *rand.Rand) { res[run] = readEveryMinute(r, bernoulli(sc.p0, sc.p1), sc.sign) })
		var s, p, f int
		var at []float64
		for _, o := range res {
			if o.seq {
				s++
				at = append(at, o.seqAt)
			}
			if o.peek {
				p++
			}
			if o.fixed {
				f++
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", sc.name, rate(s, runs), rate(p, runs), rate(f, runs), median(at))
	}
	// What it would take: the units the stats say a 2% lift needs with 80% power.
	for _, p := range []float64{0.10, 0.50} {
		r := rand.New(rand.NewPCG(seed, 99))
		var c, a stats.Moments
		for i := 0; i < 10000; i++ {
			c.Add(bernoulli(p, p)(r, 0))
			a.Add(bernoulli(p, p)(r, 0))
		}
		cmp, err := stats.Compare(c, a, opts)
		if err == nil {
			fixed := 2 * math.Pow(1.959964+0.841621, 2) * 2 * p * (1 - p) / math.Pow(0.02*p, 2)
			fmt.Fprintf(w, "\nAt %.0f%% conversion, a +2%% relative lift needs about %.0f units (both arms) for 80%% power with the confidence sequence "+
				"(stats' UnitsNeeded), against %.0f for a fixed-horizon test read once.", 100*p, cmp.UnitsNeeded, fixed)
		}
	}
	fmt.Fprintln(w)
}

func median(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	sort.Float64s(v)
	return fmt.Sprintf("%.0f", v[len(v)/2])
}

func cuped(w io.Writer, runs int, seed uint64) {
	const n, rho = 10000, 0.5
	raw, adj, red := make([]float64, runs), make([]float64, runs), make([]float64, runs)
	parallel(runs, seed, 20, func(run int, r *rand.Rand) {
		var c, a stats.Moments
		for i := 0; i < 2*n; i++ {
			x := r.NormFloat64()
			y := 10 + rho*x + math.Sqrt(1-rho*rho)*r.NormFloat64()
			if i%2 == 0 {
				c.AddWithPre(y, x)
			} else {
				a.AddWithPre(y, x)
			}
		}
		cmp, err := stats.Compare(c, a, opts)
		if err != nil || cmp.CUPED == nil {
			return
		}
		raw[run], adj[run], red[run] = cmp.CUPED.UnadjustedEffect, cmp.Absolute.Estimate, cmp.CUPED.VarianceReduction
	})
	fmt.Fprintf(w, "\n## CUPED, correlation 0.5, 10,000 units per arm\n\n")
	fmt.Fprintf(w, "| reported variance reduction (mean over runs) | variance of the estimates across runs: 1 − CUPED/raw | expected 1 − (1 − ρ²) |\n| --- | --- | --- |\n")
	fmt.Fprintf(w, "| %.3f | %.3f | %.3f |\n", mean(red), 1-variance(adj)/variance(raw), rho*rho)
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func variance(v []float64) float64 {
	m, s := mean(v), 0.0
	for _, x := range v {
		s += (x - m) * (x - m)
	}
	return s / float64(len(v)-1)
}

func srm(w io.Writer, runs int, seed uint64) {
	fmt.Fprintf(w, "\n## Sample ratio mismatch: 1%% of one arm's units lost\n\n")
	srmRuns := max(runs/10, 10)
	seqAt, chiAt := make([]float64, srmRuns), make([]float64, srmRuns)
	chiAt10k := make([]bool, srmRuns)
	parallel(srmRuns, seed, 30, func(run int, r *rand.Rand) {
		var counts [2]float64
		seqAt[run], chiAt[run] = math.Inf(1), math.Inf(1)
		for total := 0; total < srmMaxUnits; total++ {
			a := r.IntN(2)
			if a == 1 && r.Float64() < 0.01 {
				continue // lost
			}
			counts[a]++
			n := counts[0] + counts[1]
			if int(n)%srmReadEvery != 0 {
				continue
			}
			s, _ := stats.SampleRatio(counts[:], []float64{1, 1}, srmConc)
			if n == 20000 {
				chiAt10k[run] = s.PChiSquare < stats.SRMThreshold
			}
			if s.PSequential < stats.SRMThreshold && math.IsInf(seqAt[run], 1) {
				seqAt[run] = n
			}
			if s.PChiSquare < stats.SRMThreshold && math.IsInf(chiAt[run], 1) {
				chiAt[run] = n
			}
			if !math.IsInf(seqAt[run], 1) && !math.IsInf(chiAt[run], 1) && n > 20000 {
				break
			}
		}
	})
	k := 0
	for _, b := range chiAt10k {
		if b {
			k++
		}
	}
	fmt.Fprintf(w, "%d runs, read every %d units up to %d.\n\n", srmRuns, srmReadEvery, srmMaxUnits)
	fmt.Fprintf(w, "| check | median units to detect | detected by 4M units | detected at 10,000 per arm (read once) |\n| --- | --- | --- | --- |\n")
	fmt.Fprintf(w, "| sequential (Dirichlet-multinomial, p < 0.001) | %s | %s | - |\n", median(finite(seqAt)), rate(len(finite(seqAt)), srmRuns))
	fmt.Fprintf(w, "| χ² (p < 0.001), first read under it | %s | %s | %s |\n", median(finite(chiAt)), rate(len(finite(chiAt)), srmRuns), rate(k, srmRuns))

	// False alarms on an even split read every minute for two weeks.
	seqFA, chiFA := make([]bool, runs), make([]bool, runs)
	parallel(runs, seed, 31, func(run int, r *rand.Rand) {
		var counts [2]float64
		lambda := float64(unitsPerRun) / minutes
		for m := 0; m < minutes; m++ {
			n := poisson(r, lambda)
			if n == 0 {
				continue
			}
			for ; n > 0; n-- {
				counts[r.IntN(2)]++
			}
			s, _ := stats.SampleRatio(counts[:], []float64{1, 1}, srmConc)
			seqFA[run] = seqFA[run] || s.PSequential < stats.SRMThreshold
			chiFA[run] = chiFA[run] || s.PChiSquare < stats.SRMThreshold
		}
	})
	fmt.Fprintf(w, "\nFalse alarms on an even split, read every minute for two weeks (20,000 units): sequential %s, χ² peeked %s.\n",
		rate(count(seqFA), runs), rate(count(chiFA), runs))
}

func finite(v []float64) []float64 {
	var out []float64
	for _, x := range v {
		if !math.IsInf(x, 0) {
			out = append(out, x)
		}
	}
	return out
}

func count(v []bool) int {
	k := 0
	for _, b := range v {
		if b {
			k++
		}
	}
	return k
}
