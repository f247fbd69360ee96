package main

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	aviaryjudge "aviary.dev/aviary/internal/analysis/judge"
	aviaryconfig "aviary.dev/aviary/internal/config"
)

// Hostile cells (issue 10): real traffic is not independent requests. Each cell is a traffic
// model in which the canary is as good as the stable (A/A: any rollback is false) or carries a
// real regression, and the same runs feed Aviary's judge as it ships (batches, dispersion, caps,
// a mixture over start times, randomized traffic only) and the judge as it was before (one
// mixture likelihood ratio over every request, looks every second, every canary request counted).

// hostile is one cell: a traffic model at a load.
type hostile struct {
	id         uint64 // part of every run's seed: never reuse or renumber
	name       string
	load       float64
	aa         bool
	regression float64 // +errors (absolute) from regressAt on
	regressAt  int     // second the regression starts (0: from the start)
	// traffic shape
	burst    float64 // mean size of an error burst (geometric); 0: independent errors
	episodes bool    // each endpoint: a 10 s episode of 50% errors, once an hour on average
	stalls   bool    // each endpoint: a 3 s stall (half its requests slow), once per 10 min on average
	sticky   bool    // users stick to a version; 1% of users fail 30% of their calls
	segment  bool    // a 2% segment is routed to the canary and errs 2% on both versions
	atMargin bool    // the canary's error rate is exactly the margin times the stable's
	restarts bool    // each minute the judge before starts afresh (a new analysis step), and Aviary's tests go through a restart of the process (saved and restored)
	incident bool    // the stable errs 10% from 30 s to 150 s
	hang     float64 // share of the canary's requests that hang until the 5-minute timeout
	sigma    float64 // sigma of log latency (0: 0.5); 1.2 is a heavy tail (p99 16× the median)
	slower   float64 // the canary's latencies are multiplied by this (0: 1)
}

const (
	hBaseEPs   = 4
	hShare     = 0.1
	hErr       = 0.005
	hUsers     = 2000
	hBadShare  = 0.01
	hBadErr    = 0.30
	hSeconds   = 600
	hClusters  = 16
	hSegment   = 0.02
	hSegErr    = 0.02
	hTimeout   = 300 // seconds a hung request takes to time out
	hEpisode   = 10
	hStall     = 3
	hIncidentA = 30
	hIncidentB = 150
)

func hostileCells() []hostile {
	return []hostile{
		{id: 101, name: "A/A, independent", load: 100, aa: true},
		{id: 102, name: "A/A, error bursts of 3", load: 100, aa: true, burst: 3},
		{id: 103, name: "A/A, error bursts of 10", load: 100, aa: true, burst: 10},
		{id: 104, name: "A/A, endpoint episodes", load: 100, aa: true, episodes: true},
		{id: 105, name: "A/A, endpoint stalls", load: 100, aa: true, stalls: true},
		{id: 106, name: "A/A, sticky users", load: 100, aa: true, sticky: true},
		{id: 107, name: "A/A, segment route", load: 1000, aa: true, segment: true},
		{id: 108, name: "A/A at the margin, restarts", load: 100, aa: true, atMargin: true, restarts: true},
		{id: 109, name: "A/A, independent", load: 1000, aa: true},
		{id: 110, name: "A/A, independent", load: 10, aa: true},
		{id: 201, name: "+2 pp", load: 100, regression: 0.02},
		{id: 202, name: "+2 pp from 150 s", load: 100, regression: 0.02, regressAt: hIncidentB},
		{id: 203, name: "+2 pp from 150 s after a stable incident", load: 100, regression: 0.02, regressAt: hIncidentB, incident: true},
		{id: 204, name: "+2 pp, error bursts of 3", load: 100, regression: 0.02, burst: 3},
		{id: 205, name: "+2 pp", load: 10, regression: 0.02},
		{id: 206, name: "+2 pp", load: 1000, regression: 0.02},
		{id: 111, name: "A/A, heavy-tailed latency", load: 1000, aa: true, sigma: 1.2},
		{id: 207, name: "latency +20%, heavy tail", load: 1000, sigma: 1.2, slower: 1.2},
		{id: 208, name: "latency +20%", load: 100, slower: 1.2},
		{id: 209, name: "2% of requests hang", load: 100, hang: 0.02},
		{id: 210, name: "2% of requests hang", load: 1000, hang: 0.02},
	}
}

// hRun is what one run shows: the second each judge rolled back (-1: never), and the second the
// rule for a pass (the detectable effect ruled out on errors and slow requests, the minimum met)
// first held (-1: never).
type hRun struct{ aviary, before, pass int32 }

// hWorld is one run's draw.
type hWorld struct {
	h          hostile
	r          *rand.Rand
	canaryErr  float64
	badCanary  int     // bad users on the canary (sticky)
	badCluster []int   // bad users per cluster of the stable's users (sticky)
	episode    [5]int  // per endpoint (0..3 stable, 4 canary): seconds of episode left
	stall      [5]int  // per endpoint: seconds of stall left
	clusterN   []int64 // sticky: the stable's cumulative requests per cluster
	clusterE   []int64 // and errors
	second     int
	// probabilities of a request above each boundary: the stable's (by its own p99 and p90), the
	// canary's against the shipped boundaries (1.1 × those), and the canary's against the p99 itself
	// (the judge before)
	base, canary, canaryOld [numTests]float64
	canaryEff               [numTests]float64 // the canary's against the pass's boundaries ((1 + effect) × the stable's quantiles)
	baseFar, canaryFar      [numTests]float64 // past the far boundaries (judge.FarFactor × each version's boundary)
	hungAt                  []int             // seconds at which hung canary requests began
}

func newHWorld(h hostile, r *rand.Rand) *hWorld {
	w := &hWorld{h: h, r: r, canaryErr: hErr}
	sigma, slower := h.sigma, h.slower
	if sigma == 0 {
		sigma = 0.5
	}
	if slower == 0 {
		slower = 1
	}
	shift := math.Log(1 + aviaryconfigSlowdown)
	for i, q := range [numTests]float64{0, 0.99, 0.9} {
		if i == testErrors {
			continue
		}
		z := zUpper(1 - q)
		w.base[i] = 1 - q
		w.canary[i] = normalSF(z + (shift-math.Log(slower))/sigma)
		w.canaryOld[i] = normalSF(z - math.Log(slower)/sigma)
		w.canaryEff[i] = normalSF(z + (math.Log(1+hSlowEffect)-math.Log(slower))/sigma)
		far := math.Log(aviaryjudge.FarFactor)
		w.baseFar[i] = normalSF(z + far/sigma)
		w.canaryFar[i] = normalSF(z + (far+shift-math.Log(slower))/sigma)
	}
	if h.atMargin {
		w.canaryErr = hErr * 1.2
	}
	if h.sticky {
		bad := int(hUsers * hBadShare)
		w.badCluster = make([]int, hClusters)
		w.clusterN, w.clusterE = make([]int64, hClusters), make([]int64, hClusters)
		for range bad {
			if r.Float64() < hShare {
				w.badCanary++
			} else {
				w.badCluster[r.IntN(hClusters)]++
			}
		}
	}
	return w
}

// hTick is one second: the canary's requests placed by weight, the canary's routed requests, and
// the stable's.
type hTick struct {
	cn     int64           // canary, by weight
	ce     [numTests]int64 // its errors and slow requests against the shipped boundaries
	cf     [numTests]int64 // its requests past the far boundaries
	cold   int64           // its requests above the stable's p99 itself (the judge before)
	ceff   [numTests]int64 // its requests above the pass's boundaries (latency tests)
	errOld int64           // its errors as the judge before sees them (hung requests only at their timeout)
	rn, re int64           // canary, by a route
	bn     int64           // stable
	be     [numTests]int64
	bf     [numTests]int64 // past the far boundaries
}

// errorsOf draws the errors of n requests at rate p, in bursts when the cell says so.
func (w *hWorld) errorsOf(n int64, p float64) int64 {
	if n == 0 || p <= 0 {
		return 0
	}
	if w.h.burst <= 1 {
		return binomial(w.r, n, min(p, 1))
	}
	clumps := poisson(w.r, float64(n)*p/w.h.burst)
	var e int64
	for range clumps {
		// geometric size with mean burst
		e += 1 + int64(math.Floor(math.Log(1-w.r.Float64())/math.Log(1-1/w.h.burst)))
	}
	return min(e, n)
}

// endpoint draws one endpoint's second: requests at rate, errors at p, requests above each
// boundary with the probabilities slow, and those above the far boundaries (far) among them.
func (w *hWorld) endpoint(i int, rate, p float64, slow, far [numTests]float64) (n int64, ev, evFar [numTests]int64) {
	if w.h.episodes && w.episode[i] == 0 && w.r.Float64() < 1.0/3600 {
		w.episode[i] = hEpisode
	}
	if w.h.stalls && w.stall[i] == 0 && w.r.Float64() < 1.0/600 {
		w.stall[i] = hStall
	}
	stalled := false
	if w.episode[i] > 0 {
		w.episode[i]--
		p = 0.5
	}
	if w.stall[i] > 0 {
		w.stall[i]--
		stalled = true
	}
	n = poisson(w.r, rate)
	ev[testErrors] = w.errorsOf(n, p)
	for t := testSlow99; t < numTests; t++ {
		q, qf := slow[t], far[t]
		if stalled {
			q, qf = 0.5+0.5*q, 0.5+0.5*qf // half the requests stall: slower than any boundary
		}
		ev[t] = binomial(w.r, n, q)
		evFar[t] = binomial(w.r, ev[t], qf/max(q, 1e-300)) // the far ones among the slow
	}
	return n, ev, evFar
}

func (w *hWorld) tick(k *hTick) {
	w.second++
	*k = hTick{}
	h, load := w.h, w.h.load
	stableErr, canaryErr := hErr, w.canaryErr
	if h.incident && w.second > hIncidentA && w.second <= hIncidentB {
		stableErr = 0.10
	}
	if h.regression > 0 && w.second > h.regressAt {
		canaryErr += h.regression
	}
	if h.sticky {
		w.stickyTick(k, stableErr, canaryErr)
		return
	}
	weighted := load
	if h.segment {
		weighted = load * (1 - hSegment)
		// The segment goes to the canary by its route and errs more on both versions: a
		// request of the segment is never placed by weight.
		k.rn = poisson(w.r, load*hSegment)
		k.re = w.errorsOf(k.rn, hSegErr)
	}
	for i := range hBaseEPs {
		n, ev, evFar := w.endpoint(i, weighted*(1-hShare)/hBaseEPs, stableErr, w.base, w.baseFar)
		k.bn += n
		for t := range numTests {
			k.be[t] += ev[t]
			k.bf[t] += evFar[t]
		}
	}
	k.cn, k.ce, k.cf = w.endpoint(hBaseEPs, weighted*hShare, canaryErr, w.canary, w.canaryFar)
	// The judge before counted the canary's slow requests against the stable's p99 itself: the
	// same requests, so drawn as those above the shipped boundary plus those in between.
	between := max(0, w.canaryOld[testSlow99]-w.canary[testSlow99]) / max(1e-12, 1-w.canary[testSlow99])
	k.cold = k.ce[testSlow99] + binomial(w.r, k.cn-k.ce[testSlow99], between)
	for t := testSlow99; t < numTests; t++ { // the requests above the pass's (higher) boundary, among those above the shipped one
		k.ceff[t] = binomial(w.r, k.ce[t], w.canaryEff[t]/max(1e-12, w.canary[t]))
	}
	k.errOld = k.ce[testErrors]
	w.hangs(k)
}

// hangs draws the canary's requests that hang: they never end, so the judge now counts them as
// slow once their start slot has passed (Series.Pending, within a batch), while the judge before
// saw them only at their timeout, as slow errors.
func (w *hWorld) hangs(k *hTick) {
	if w.h.hang == 0 {
		return
	}
	h := binomial(w.r, k.cn, w.h.hang)
	k.cn -= h // they have not ended: not among this second's requests
	for range h {
		w.hungAt = append(w.hungAt, w.second)
	}
	for _, at := range w.hungAt {
		switch w.second - at {
		case batchSeconds: // counted as in flight past the boundary, and past the far one
			k.cn++
			for t := testSlow99; t < numTests; t++ {
				k.ce[t]++
				k.ceff[t]++
				k.cf[t]++
			}
		case hTimeout: // the judge before: ends as a 504
			k.errOld++
			k.cold++
		}
	}
}

// stickyTick draws a second of sticky users: each version's normal and bad users, the stable's by
// cluster (buckets of the sticky key) so the dispersion over units can be read.
func (w *hWorld) stickyTick(k *hTick, stableErr, canaryErr float64) {
	perUser := w.h.load / hUsers
	users := float64(hUsers) * hShare
	n := poisson(w.r, (users-float64(w.badCanary))*perUser)
	nb := poisson(w.r, float64(w.badCanary)*perUser)
	k.cn, k.ce[testErrors] = n+nb, binomial(w.r, n, canaryErr)+binomial(w.r, nb, min(1, hBadErr+canaryErr-hErr))
	for t := testSlow99; t < numTests; t++ {
		k.ce[t] = binomial(w.r, k.cn, w.canary[t])
		k.ceff[t] = binomial(w.r, k.ce[t], w.canaryEff[t]/max(1e-12, w.canary[t]))
		k.cf[t] = binomial(w.r, k.ce[t], w.canaryFar[t]/max(1e-300, w.canary[t]))
	}
	k.cold, k.errOld = k.ce[testSlow99], k.ce[testErrors]
	perCluster := float64(hUsers) * (1 - hShare) / hClusters
	for c := range hClusters {
		n := poisson(w.r, (perCluster-float64(w.badCluster[c]))*perUser)
		nb := poisson(w.r, float64(w.badCluster[c])*perUser)
		e := binomial(w.r, n, stableErr) + binomial(w.r, nb, hBadErr)
		w.clusterN[c] += n + nb
		w.clusterE[c] += e
		k.bn, k.be[testErrors] = k.bn+n+nb, k.be[testErrors]+e
	}
	for t := testSlow99; t < numTests; t++ {
		k.be[t] = binomial(w.r, k.bn, w.base[t])
		k.bf[t] = binomial(w.r, k.be[t], w.baseFar[t]/w.base[t])
	}
}

// warmup feeds the dispersion estimates the stable's 30 batches before the canary starts: the
// same traffic with the canary's share served by the stable, and episodes and stalls of its own.
func (w *hWorld) warmup(c *counts) {
	saved, hang := w.second, w.h.hang
	w.second, w.h.hang = -hSeconds, 0 // before any incident, regression or hang
	var k hTick
	var tn, te, tf [numTests]int64
	for range 30 {
		var n int64
		var e, f [numTests]int64
		for range batchSeconds {
			w.tick(&k)
			n += k.bn
			for t := range numTests {
				e[t] += k.be[t]
				f[t] += k.bf[t]
			}
		}
		for t := range numTests {
			c.disp[t].ObserveBatch(n, e[t])
			tn[t], te[t], tf[t] = tn[t]+n, te[t]+e[t], tf[t]+f[t]
			if c.far[t] != nil {
				c.far[t].Dispersion.ObserveBatch(n, f[t])
			}
		}
	}
	for t := range numTests {
		c.tests[t].SetBaselineBefore(tn[t], te[t])
		if c.far[t] != nil {
			c.far[t].SetBaselineBefore(tn[t], tf[t])
		}
	}
	w.second, w.h.hang = saved, hang
	w.episode, w.stall = [5]int{}, [5]int{}
}

// before is the judge as it was: per grid ratio, one log likelihood ratio summed over every look,
// every canary request counted (routed ones too), started afresh each minute in the restart cell.
type before struct {
	logLR [2][]float64
}

// The shipped settings the hostile cells use.
var (
	aviaryconfigSlowdown      = aviaryconfig.DefaultSlowdown
	aviaryconfigLatencyMargin = aviaryconfig.DefaultLatencyMargin // the judge before: 1.8 on the share above the stable's p99
)

var beforeRatios = []float64{1.25, 1.6, 2, 3, 5, 8, 13, 25}

func (b *before) reset() {
	for i := range b.logLR {
		b.logLR[i] = make([]float64, len(beforeRatios))
	}
}

func (b *before) observe(i int, margin float64, cn, ce, bn, be int64) bool {
	if cn > 0 && bn > 0 && ce+be > 0 {
		nc, nb := float64(cn), float64(bn)
		th := func(rho float64) float64 { return rho * nc / (rho*nc + nb) }
		th0 := th(margin)
		for j, r := range beforeRatios {
			th1 := th(margin * r)
			b.logLR[i][j] += float64(ce)*math.Log(th1/th0) + float64(be)*math.Log((1-th1)/(1-th0))
		}
	}
	sum := 0.0
	for _, l := range b.logLR[i] {
		sum += math.Exp(l)
	}
	return sum/float64(len(beforeRatios)) >= 2/alpha
}

// Aviary's shipped detectable effects (config.DefaultEffect, DefaultLatencyEffect).
var (
	hErrEffect  = aviaryjudge.Effect{Ratio: aviaryconfig.DefaultEffect.Ratio, Points: aviaryconfig.DefaultEffect.Points / 100}
	hSlowEffect = aviaryconfig.DefaultLatencyEffect.Slowdown
)

func hostileRun(h hostile, m model, seed [2]uint64) hRun {
	r := rand.New(rand.NewPCG(seed[0], seed[1]))
	w := newHWorld(h, r)
	out := hRun{-1, -1, -1}
	c := newCounts(m.errMargin, m.latMargin)
	var b before
	b.reset()
	var k hTick
	// Five minutes before the canary starts, the stable serves everything; the analysis reads
	// its slots from then (as it reads the latency boundary) to know the stable's dispersion.
	w.warmup(&c)
	var effN int64
	var effE [numTests]int64
	for t := int32(1); t <= hSeconds; t++ {
		w.tick(&k)
		if h.restarts && t%60 == 1 {
			b.reset()
			c.restart()
		}
		c.look(t, k.cn, k.ce, k.cf, k.bn, k.be, k.bf)
		effN += k.cn
		for i := range numTests {
			effE[i] += k.ceff[i]
		}
		if h.sticky {
			c.disp[testErrors].SetUnits(w.clusterN, w.clusterE)
		}
		if out.aviary < 0 && c.rejected() {
			out.aviary = t
		}
		e1 := b.observe(0, m.errMargin, k.cn+k.rn, k.errOld+k.re, k.bn, k.be[testErrors])
		e2 := b.observe(1, aviaryconfigLatencyMargin, k.cn+k.rn, k.cold, k.bn, k.be[testSlow99])
		if out.before < 0 && (e1 || e2) {
			out.before = t
		}
		if out.pass < 0 && out.aviary < 0 && t >= 30 && c.tests[testErrors].CanaryN >= 200 && c.safe(effN, effE) {
			out.pass = t
		}
		if out.aviary >= 0 && out.before >= 0 {
			break
		}
	}
	return out
}

// safe is the rule for a pass: every test's detectable effect ruled out at its alpha — for errors
// max(2×, +1.5 pp), for latency the quantile slower by config.DefaultLatencyEffect, from the canary's requests above (1 + it) ×
// the stable's quantile (effN, effE).
func (c *counts) safe(effN int64, effE [numTests]int64) bool {
	if !c.tests[testErrors].RuledOut(hErrEffect, c.tests[testErrors].Alpha).Safe {
		return false
	}
	for i := testSlow99; i < numTests; i++ {
		if !c.tests[i].RuledOutAgainst(effN, effE[i], c.tests[i].Alpha).Safe {
			return false
		}
	}
	return true
}

func hostileCell(h hostile, m model, runs, workers int, seed uint64) []hRun {
	return parallel(runs, workers, func(i int64) hRun {
		return hostileRun(h, m, [2]uint64{seed, splitmix(splitmix(seed^h.id) ^ uint64(i))})
	})
}

// runHostile simulates every hostile cell and writes its report.
func runHostile(c config, stdout, progress io.Writer) (string, error) {
	start := time.Now()
	m := c.model()
	var b strings.Builder
	fmt.Fprintf(&b, "# Judge benchmark on hostile traffic (issue 10)\n\nGenerated by `go run ./bench/judge -hostile -runs-aa %d -runs %d -seed %d` in %%s. ", c.runsAA, c.runs, c.seed)
	b.WriteString("Each run is a 10-minute rollout with the canary on 10% of the traffic (placed by weight), baseline error rate 0.5%, lognormal latency (sigma 0.5; 1.2 for the heavy tail), 4 stable endpoints and 1 canary endpoint, α 0.01. Aviary runs the default template as it ships: errors (α/2, margin 1.2) and the p99 and p90 at most 10% slower (α/4 each). ")
	b.WriteString("*Aviary* is the judge as it ships now; *before* is the judge as it was (one likelihood ratio over every request, looked at every second). ")
	b.WriteString("Rates carry a 95% Wilson interval. *Pass* is the share of runs in which the rule for a pass (a regression past the detectable effect ruled out on errors and on slow requests, the minimum of 30 s and 200 canary requests met, no rollback) held at some point within the 10 minutes, and its median time.\n\n")
	b.WriteString("| load (req/s) | cell | runs | Aviary: rolled back | median s | before: rolled back | median s | pass | pass median s |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, h := range hostileCells() {
		if c.only != "" && !strings.Contains(h.name, c.only) {
			continue
		}
		runs := c.runs
		if h.aa {
			runs = c.runsAA
		}
		t0 := time.Now()
		rs := hostileCell(h, m, runs, c.workers, c.seed)
		var a, bf, p []int32
		for _, x := range rs {
			a, bf, p = append(a, shift(x.aviary, h.regressAt)), append(bf, shift(x.before, h.regressAt)), append(p, x.pass)
		}
		fmt.Fprintf(progress, "%5g req/s  %-44s %5d runs  %5.1fs  Aviary %.2f%%, before %.2f%%, pass %.1f%%\n", h.load, h.name, runs,
			time.Since(t0).Seconds(), 100*float64(rolledBack(a))/float64(runs), 100*float64(rolledBack(bf))/float64(runs), 100*float64(rolledBack(p))/float64(runs))
		fmt.Fprintf(&b, "| %g | %s | %d | %s | %s | %s | %s | %s | %s |\n", h.load, h.name, runs,
			rateCI(rolledBack(a), runs), hsecs(quantileOf(a, 0.5)), rateCI(rolledBack(bf), runs), hsecs(quantileOf(bf, 0.5)),
			pct(float64(rolledBack(p))/float64(runs), 1), hsecs(quantileOf(p, 0.5)))
	}
	b.WriteString("\nTimes of the cells whose regression starts at 150 s are counted from 150 s. A run whose judge rolled back before the regression started counts as a rollback at 0 s.\n")
	return strings.Replace(b.String(), "%s", fmt.Sprintf("%.0f s", time.Since(start).Seconds()), 1), nil
}

// shift counts a rollback time from the regression's start.
func shift(t int32, from int) int32 {
	if t < 0 {
		return t
	}
	return max(0, t-int32(from))
}

func hsecs(v float64) string {
	if math.IsInf(v, 1) || math.IsNaN(v) {
		return "> 600"
	}
	return fmt.Sprintf("%.0f", v)
}
