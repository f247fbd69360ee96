package main

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	aviaryjudge "aviary.dev/aviary/internal/analysis/judge"
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
	restarts bool    // the judge before restarted each minute (a new analysis step)
	incident bool    // the stable errs 10% from 30 s to 150 s
}

const (
	hBaseEPs   = 4
	hShare     = 0.1
	hErr       = 0.005
	hSlow      = 0.01 // share of requests above the boundary (the stable's p99)
	hUsers     = 2000
	hBadShare  = 0.01
	hBadErr    = 0.30
	hSeconds   = 600
	hClusters  = 16
	hSegment   = 0.02
	hSegErr    = 0.02
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
	_          [0]func() // not comparable
}

func newHWorld(h hostile, r *rand.Rand) *hWorld {
	w := &hWorld{h: h, r: r, canaryErr: hErr}
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
	cn, ce, cs int64 // canary, by weight
	rn, re     int64 // canary, by a route
	bn, be, bs int64 // stable
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

// endpoint draws one endpoint's second: requests at rate, errors at p, slow share slow.
func (w *hWorld) endpoint(i int, rate, p float64) (n, e, s int64) {
	if w.h.episodes && w.episode[i] == 0 && w.r.Float64() < 1.0/3600 {
		w.episode[i] = hEpisode
	}
	if w.h.stalls && w.stall[i] == 0 && w.r.Float64() < 1.0/600 {
		w.stall[i] = hStall
	}
	slow := hSlow
	if w.episode[i] > 0 {
		w.episode[i]--
		p = 0.5
	}
	if w.stall[i] > 0 {
		w.stall[i]--
		slow = 0.5
	}
	n = poisson(w.r, rate)
	return n, w.errorsOf(n, p), binomial(w.r, n, slow)
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
		n, e, s := w.endpoint(i, weighted*(1-hShare)/hBaseEPs, stableErr)
		k.bn, k.be, k.bs = k.bn+n, k.be+e, k.bs+s
	}
	k.cn, k.ce, k.cs = w.endpoint(hBaseEPs, weighted*hShare, canaryErr)
}

// stickyTick draws a second of sticky users: each version's normal and bad users, the stable's by
// cluster (buckets of the sticky key) so the dispersion over units can be read.
func (w *hWorld) stickyTick(k *hTick, stableErr, canaryErr float64) {
	perUser := w.h.load / hUsers
	users := float64(hUsers) * hShare
	n := poisson(w.r, (users-float64(w.badCanary))*perUser)
	nb := poisson(w.r, float64(w.badCanary)*perUser)
	k.cn, k.ce = n+nb, binomial(w.r, n, canaryErr)+binomial(w.r, nb, min(1, hBadErr+canaryErr-hErr))
	k.cs = binomial(w.r, k.cn, hSlow)
	perCluster := float64(hUsers) * (1 - hShare) / hClusters
	for c := range hClusters {
		n := poisson(w.r, (perCluster-float64(w.badCluster[c]))*perUser)
		nb := poisson(w.r, float64(w.badCluster[c])*perUser)
		e := binomial(w.r, n, stableErr) + binomial(w.r, nb, hBadErr)
		w.clusterN[c] += n + nb
		w.clusterE[c] += e
		k.bn, k.be = k.bn+n+nb, k.be+e
	}
	k.bs = binomial(w.r, k.bn, hSlow)
}

// warmup feeds the dispersion estimates the stable's 30 batches before the canary starts: the
// same traffic with the canary's share served by the stable, and episodes and stalls of its own.
func (w *hWorld) warmup(errs, slow *aviaryjudge.Dispersion) {
	saved := w.second
	w.second = -hSeconds // before any incident or regression
	var k hTick
	for range 30 {
		var n, e, s int64
		for range batchSeconds {
			w.tick(&k)
			n, e, s = n+k.bn+k.cn+k.rn, e+k.be+k.ce+k.re, s+k.bs+k.cs
		}
		errs.ObserveBatch(n, e)
		slow.ObserveBatch(n, s)
	}
	w.second = saved
	w.episode, w.stall = [5]int{}, [5]int{}
}

// before is the judge as it was: per grid ratio, one log likelihood ratio summed over every look,
// every canary request counted (routed ones too), started afresh each minute in the restart cell.
type before struct {
	logLR [2][]float64
}

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
	hErrEffect  = aviaryjudge.Effect{Ratio: 2, Points: 0.015}
	hSlowEffect = aviaryjudge.Effect{Ratio: 3, Points: 0.03}
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
	w.warmup(c.errDisp, c.slowDisp)
	for t := int32(1); t <= hSeconds; t++ {
		w.tick(&k)
		if h.restarts && t%60 == 1 {
			b.reset()
		}
		c.look(t, k.cn, k.ce, k.cs, k.bn, k.be, k.bs)
		if h.sticky {
			c.errDisp.SetUnits(w.clusterN, w.clusterE)
		}
		if out.aviary < 0 && (c.errs.Rejected() || c.slow.Rejected()) {
			out.aviary = t
		}
		e1 := b.observe(0, m.errMargin, k.cn+k.rn, k.ce+k.re, k.bn, k.be)
		e2 := b.observe(1, m.latMargin, k.cn+k.rn, k.cs, k.bn, k.bs)
		if out.before < 0 && (e1 || e2) {
			out.before = t
		}
		if out.pass < 0 && out.aviary < 0 && t >= 30 && c.errs.CanaryN >= 200 &&
			c.errs.RuledOut(hErrEffect, alpha/2).Safe && c.slow.RuledOut(hSlowEffect, alpha/2).Safe {
			out.pass = t
		}
		if out.aviary >= 0 && out.before >= 0 {
			break
		}
	}
	return out
}

func hostileCell(h hostile, m model, runs, workers int, seed uint64) []hRun {
	out := make([]hRun, runs)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(runs) {
					return
				}
				out[i] = hostileRun(h, m, [2]uint64{seed, splitmix(splitmix(seed^h.id) ^ uint64(i))})
			}
		})
	}
	wg.Wait()
	return out
}

// runHostile simulates every hostile cell and writes its report.
func runHostile(c config, stdout, progress io.Writer) (string, error) {
	start := time.Now()
	m := c.model()
	var b strings.Builder
	fmt.Fprintf(&b, "# Judge benchmark on hostile traffic (issue 10)\n\nGenerated by `go run ./bench/judge -hostile -runs-aa %d -runs %d -seed %d` in %%s. ", c.runsAA, c.runs, c.seed)
	b.WriteString("Each run is a 10-minute rollout with the canary on 10% of the traffic (placed by weight), baseline error rate 0.5%, 4 stable endpoints and 1 canary endpoint, α 0.01. ")
	b.WriteString("*Aviary* is the judge as it ships now; *before* is the judge as it was (one likelihood ratio over every request, looked at every second). ")
	b.WriteString("Rates carry a 95% Wilson interval. *Pass* is the share of runs in which the rule for a pass (a regression past the detectable effect ruled out on errors and on slow requests, the minimum of 30 s and 200 canary requests met, no rollback) held at some point within the 10 minutes, and its median time.\n\n")
	b.WriteString("| load (req/s) | cell | runs | Aviary: rolled back | median s | before: rolled back | median s | pass | pass median s |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, h := range hostileCells() {
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
