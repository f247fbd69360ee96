package main

import (
	"cmp"
	"encoding/json"
	"math"
	"slices"

	aviaryjudge "aviary.dev/aviary/internal/analysis/judge"
)

// judge decides, second by second, whether to roll the canary back. Each judge sees what its tool
// sees: Aviary's judge the counts of both versions every second; the threshold judges a
// measurement of the canary alone at the end of each interval (m is nil in between).
type judge interface {
	observe(k *tick, m *measurement) bool
}

// judgeSpec names a judge and builds it for one run.
type judgeSpec struct {
	name       string
	threshold  bool // needs the interval measurement (and so the canary's per-request latencies)
	diagnostic bool // not a judge anyone can run: reported apart, never in the table
	build      func(m model, w *world, sc scenario) judge
}

// Settings of the judges, as the issue fixes them (Aviary's margins are in model).
const (
	alpha    = 0.01 // Aviary: false-rollback probability of a rollout, as shipped (config.DefaultAlpha)
	interval = 60   // threshold judges: seconds between measurements
)

// The range of alphas Aviary's judge (and the oracle) can be evaluated at afterwards, from the
// same runs: the matched comparison gives Aviary a threshold judge's false-rollback rate as its
// alpha, capped at maxAlpha, or steps down alphaLadder to minAlpha.
const (
	maxAlpha = 0.5
	minAlpha = 1e-8
)

// alphaLadder is the 1-2-5 series of alphas the matched comparison steps down, from maxAlpha to
// minAlpha, largest first.
var alphaLadder = []float64{
	0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001,
	5e-4, 2e-4, 1e-4, 5e-5, 2e-5, 1e-5, 5e-6, 2e-6, 1e-6, 5e-7, 2e-7, 1e-7, 5e-8, 2e-8, 1e-8,
}

var judgeSpecs = []judgeSpec{
	{name: "Aviary (1 s looks, α 0.01)", build: func(m model, _ *world, _ scenario) judge { return newAviary(m) }},
	{name: "Argo failureLimit 0", threshold: true, build: func(_ model, w *world, _ scenario) judge {
		return &argo{failureLimit: 0, logMaxMs: w.logMaxMs}
	}},
	{name: "Argo failureLimit 3", threshold: true, build: func(_ model, w *world, _ scenario) judge {
		return &argo{failureLimit: 3, logMaxMs: w.logMaxMs}
	}},
	{name: "Flagger threshold 5", threshold: true, build: func(_ model, w *world, _ scenario) judge {
		return &flagger{threshold: 5, logMaxMs: w.logMaxMs}
	}},
	{name: "oracle SPRT", diagnostic: true, build: newOracle},
}

// The judges' places in judgeSpecs.
const (
	aviaryIdx = 0
	oracleIdx = 4
)

// aviary is Aviary's default judge: one count test on errors and one on requests slower than the
// boundary, alpha split equally between them (Bonferroni), rolling back when either rejects, that
// is when the larger of the two evidences reaches 1/(alpha/2). The evidence does not depend on
// alpha (only the level it must reach does), so the judge records its path, the seconds at which
// its running maximum rose, and any alpha is evaluated afterwards on the same run (evidencePath).
// It runs until the evidence has reached the level of the smallest alpha evaluated (minAlpha).
type aviary struct {
	counts
	shipped float64 // level of the shipped alpha: the cause is recorded when it is reached
	cause   uint8   // which tests had reached the shipped level when the larger one first did
	path    evidencePath
}

func newAviary(m model) *aviary {
	// The tests' own alpha plays no part here: rejection is read off the path at each level.
	return &aviary{
		counts:  newCounts(m.errMargin, m.latMargin),
		shipped: aviaryLevel(alpha),
		path:    newEvidencePath(aviaryLevel(maxAlpha), aviaryLevel(minAlpha)),
	}
}

// counts is Aviary's count tests as the analysis runs them with the default template: errors
// (alpha/2), requests slower than 1.1 × the baseline's p99 and than 1.1 × its p90 (alpha/4 each,
// margin 1, as analysis.alphaShares splits the default template), looked at every second, grouped
// in batches of one metrics slot (batchSeconds), each tempered by the dispersion the baseline's own
// closed batches show (judge.Dispersion), as internal/analysis/sequential.go feeds it. Each
// latency test has a far-tail test beside it (requests past judge.FarFactor × its boundary,
// judge.NewFarTest), its evidence averaged with the latency test's (judge.LatencyEvidence).
type counts struct {
	tests [numTests]*aviaryjudge.CountTest
	disp  [numTests]*aviaryjudge.Dispersion
	far   [numTests]*aviaryjudge.CountTest // nil for errors
	batch int64
	bn    int64           // the baseline's open batch: requests
	be    [numTests]int64 // and events per test
	bf    [numTests]int64 // and events past the far boundaries
}

// The tests, in order: errors, slow at p99, slow at p90.
const (
	testErrors = iota
	testSlow99
	testSlow90
	numTests
)

// share is each test's share of alpha.
var share = [numTests]float64{0.5, 0.25, 0.25}

// batchSeconds is the metrics' default slot (metrics.DefaultSlot), the analysis's batch.
const batchSeconds = 10

func newCounts(errMargin, latMargin float64) counts {
	var c counts
	for i := range numTests {
		margin := latMargin
		if i == testErrors {
			margin = errMargin
		}
		c.tests[i] = aviaryjudge.NewCountTest(margin, alpha*share[i])
		if i == testErrors {
			c.tests[i].SetPrior(aviaryjudge.Moderate) // as internal/analysis gives the error rate
		}
		c.disp[i] = &aviaryjudge.Dispersion{}
		c.tests[i].Dispersion = c.disp[i]
		if i != testErrors {
			c.far[i] = aviaryjudge.NewFarTest(alpha * share[i])
		}
	}
	return c
}

// restart takes every test through what aviary serve keeps of it across a restart of the process
// (judge.CountState, as JSON) and goes on with the restored tests, as the next process would.
func (c *counts) restart() {
	for i := range numTests {
		c.tests[i] = throughJSON(c.tests[i])
		c.disp[i] = c.tests[i].Dispersion
		if c.far[i] != nil {
			c.far[i] = throughJSON(c.far[i])
		}
	}
}

// throughJSON is t saved as JSON and restored, as the store keeps it.
func throughJSON(t *aviaryjudge.CountTest) *aviaryjudge.CountTest {
	data, err := json.Marshal(t.State())
	if err != nil {
		panic(err) // the bench's own state: a bug here, not an input
	}
	var st aviaryjudge.CountState
	if err := json.Unmarshal(data, &st); err != nil {
		panic(err)
	}
	r, err := aviaryjudge.RestoreCountTest(st)
	if err != nil {
		panic(err)
	}
	return r
}

// look feeds one second: the canary's and the baseline's requests and events of each test, and
// their events past the far boundaries (cf, bf; the errors' entries unused).
func (c *counts) look(second int32, cn int64, ce, cf [numTests]int64, bn int64, be, bf [numTests]int64) {
	b := int64(second-1) / batchSeconds
	if b != c.batch {
		for i := range numTests {
			c.disp[i].ObserveBatch(c.bn, c.be[i])
			if c.far[i] != nil {
				c.far[i].Dispersion.ObserveBatch(c.bn, c.bf[i])
			}
		}
		c.batch, c.bn, c.be, c.bf = b, 0, [numTests]int64{}, [numTests]int64{}
	}
	c.bn += bn
	for i := range numTests {
		c.be[i] += be[i]
		c.tests[i].Observe(b, cn, ce[i], bn, be[i])
		if c.far[i] != nil {
			c.bf[i] += bf[i]
			c.far[i].Observe(b, cn, cf[i], bn, bf[i])
		}
	}
}

// evidenceOf is test i's evidence as the analysis judges it: a latency test's averaged with its
// far-tail test's.
func (c *counts) evidenceOf(i int) float64 {
	return aviaryjudge.LatencyEvidence(c.tests[i], c.far[i])
}

// evidence is the largest evidence, scaled to the errors test's level: a test with a quarter of
// alpha needs twice the errors test's evidence.
func (c *counts) evidence() (e float64, which int) {
	for i := range c.tests {
		if v := c.evidenceOf(i) * share[i] / share[testErrors]; v > e {
			e, which = v, i
		}
	}
	return e, which
}

// rejected reports whether any test rejects at its own alpha.
func (c *counts) rejected() bool {
	for i, t := range c.tests {
		if c.evidenceOf(i) >= t.Needed() {
			return true
		}
	}
	return false
}

// aviaryLevel is the evidence at which Aviary's judge at alpha rolls back: each test has alpha/2
// and rejects at 1/(alpha/2), the same arithmetic as judge.CountTest.Needed.
func aviaryLevel(a float64) float64 { return 1 / (a / 2) }

func (a *aviary) observe(k *tick, _ *measurement) bool {
	// No far-tail counts: this model's lognormal (sigma 0.5) puts some 1e-12 of its mass past 10×
	// the p99, and it has no hangs or stalls (the hostile cells do).
	a.look(k.second, k.canaryN, [numTests]int64{k.canaryErr, k.canarySlow, k.canarySlow90}, [numTests]int64{},
		k.baseN, [numTests]int64{k.baseErr, k.baseSlow, k.baseSlow90}, [numTests]int64{})
	e, which := a.evidence()
	if a.cause == 0 && e >= a.shipped {
		a.cause = causeErrors
		if which != testErrors {
			a.cause = causeLatency
		}
	}
	return a.path.add(k.second, e)
}

// Causes of an Aviary rollback, as bits.
const (
	causeErrors  = 1
	causeLatency = 2
)

// measurement is what a query over the canary's last interval returns: its request and error
// counts (the success rate is 1 − errors/requests) and its p99 latency in log ms, the
// nearest-rank quantile of the interval's requests, NaN when there were none (as
// histogram_quantile over no data).
type measurement struct {
	requests, errors int64
	logP99           float64
}

// successRateOK is the success-rate condition: success rate ≥ 99%, i.e. errors ≤ 1% of requests
// (in integers, so that exactly 1% passes as it does in both tools). No requests: the rate is
// 0/0 = NaN, and NaN meets no condition.
func (m *measurement) successRateOK() bool { return m.requests > 0 && 100*m.errors <= m.requests }

// latencyOK is the latency condition, p99 ≤ the limit; a NaN p99 fails it.
func (m *measurement) latencyOK(logMaxMs float64) bool { return m.logP99 <= logMaxMs }

// window gathers the canary's traffic between two measurements.
type window struct {
	requests, errors int64
	lat              []float64
}

func (w *window) add(k *tick) {
	w.requests += k.canaryN
	w.errors += k.canaryErr
	w.lat = append(w.lat, k.lat...)
}

// measure returns the interval's measurement and starts the next interval.
func (w *window) measure() measurement {
	m := measurement{requests: w.requests, errors: w.errors, logP99: math.NaN()}
	if n := len(w.lat); n > 0 {
		m.logP99 = kth(w.lat, int(math.Ceil(0.99*float64(n)))-1)
	}
	*w = window{lat: w.lat[:0]}
	return m
}

// argo is an Argo Rollouts AnalysisRun with two metrics, each `interval: 1m` with
// `initialDelay: 1m` (no measurement of a canary that has had no traffic yet), and the same
// `failureLimit`:
//
//	success-rate: successCondition result[0] >= 0.99   (non-5xx / all over the last minute)
//	latency-p99:  successCondition result[0] <= <1.2 × baseline p99 in ms>
//
// A measurement that does not meet its successCondition is Failed; with only a successCondition,
// a NaN result (no requests in the minute) is Failed too, as Argo's documentation shows
// ("Handling Metric Results": `successCondition: result >= 0.95` with value NaN → phase Failed).
// A metric fails when its Failed measurements exceed failureLimit, counted over the whole run and
// not necessarily consecutive (`result.Failed > failureLimit`); one failed metric fails the run
// and aborts the rollout. failureLimit 0 (the default) fails at the first failed measurement.
type argo struct {
	failureLimit int
	logMaxMs     float64
	failed       [2]int // per metric: success rate, latency
}

func (a *argo) observe(_ *tick, m *measurement) bool {
	if m == nil {
		return false
	}
	if !m.successRateOK() {
		a.failed[0]++
	}
	if !m.latencyOK(a.logMaxMs) {
		a.failed[1]++
	}
	return a.failed[0] > a.failureLimit || a.failed[1] > a.failureLimit
}

// flagger is Flagger's canary analysis with `interval: 1m`, `threshold: 5` and the two builtin
// checks, each over `interval: 1m`:
//
//	request-success-rate: thresholdRange.min 99   (percent of non-5xx requests)
//	request-duration:     thresholdRange.max <1.2 × baseline p99 in ms>   (P99)
//
// At each interval a check that fails any metric adds one to FailedChecks (one per check, however
// many metrics failed), and the canary is rolled back when FailedChecks reaches threshold; failed
// checks are not reset by passing ones. A query with no values ("Halt advancement no values found
// … probably … is not receiving traffic") also returns false from the metric checks in Flagger's
// scheduler and so counts as a failed check. Flagger acts on the count at the start of its next
// tick; this judge records the rollback at the check that reached the threshold, one interval
// earlier than Flagger itself would: the benchmark errs in Flagger's favour.
type flagger struct {
	threshold, failedChecks int
	logMaxMs                float64
}

func (f *flagger) observe(_ *tick, m *measurement) bool {
	if m == nil {
		return false
	}
	if !m.successRateOK() || !m.latencyOK(f.logMaxMs) {
		f.failedChecks++
	}
	return f.failedChecks >= f.threshold
}

// oracle is a judge nobody can run: a sequential probability ratio test of the regressed metric
// that knows the canary's true ratio to the baseline, at Aviary's alpha for one metric. It rejects
// "ratio ≤ margin" when the likelihood ratio of the true ratio against the margin reaches 2/alpha.
// Knowing the alternative exactly, it detects about as fast as any test with that false-alarm
// guarantee can on the same data (Wald–Wolfowitz): the gap between it and Aviary is what a better
// grid, margin or alpha split could still win; the rest is missing data.
//
// Like Aviary's judge, it records the path of its log likelihood ratio, so that any alpha can be
// read off the same run.
type oracle struct {
	slow   bool    // tests slow requests, not errors
	margin float64 // Aviary's margin on that metric
	rho    float64 // true ratio of the canary's rate to the baseline's
	logLR  float64
	path   evidencePath
}

func newOracle(m model, w *world, sc scenario) judge {
	errs, slow := w.ratios()
	o := &oracle{margin: m.errMargin, rho: errs, path: newEvidencePath(oracleLevel(maxAlpha), oracleLevel(minAlpha))}
	if sc.latFactor != 1 {
		o.slow, o.margin, o.rho = true, m.latMargin, slow
	}
	return o
}

// oracleLevel is the log likelihood ratio at which the oracle rejects, at alpha/2 (one metric's
// share of Aviary's alpha).
func oracleLevel(a float64) float64 { return math.Log(2 / a) }

func (o *oracle) observe(k *tick, _ *measurement) bool {
	if o.rho <= o.margin {
		return false // no regression beyond the margin: nothing to detect
	}
	ce, be := k.canaryErr, k.baseErr
	if o.slow {
		ce, be = k.canarySlow, k.baseSlow
	}
	if k.canaryN > 0 && k.baseN > 0 && ce+be > 0 {
		nc, nb := float64(k.canaryN), float64(k.baseN)
		th0, th1 := o.margin*nc/(o.margin*nc+nb), o.rho*nc/(o.rho*nc+nb)
		o.logLR += float64(ce)*math.Log(th1/th0) + float64(be)*math.Log((1-th1)/(1-th0))
	}
	return o.path.add(k.second, o.logLR)
}

// evidencePath records when a sequential test's evidence first reaches each level: one step per
// second in which its running maximum rose, from level lo (the largest alpha evaluated) up to the
// first step at or above hi (the smallest). A test at level L rolls back at the first step whose
// evidence is ≥ L: the evidence was below L at every earlier second, since it never rose above
// the running maximum.
type evidencePath struct {
	lo, hi, peak float64
	steps        []step
}

type step struct {
	second   int32
	evidence float64
}

func newEvidencePath(lo, hi float64) evidencePath {
	return evidencePath{lo: lo, hi: hi, peak: math.Inf(-1)}
}

// add records the evidence at second t and reports whether the path is complete (hi reached):
// no later second can change a rollback time at any evaluated level.
func (p *evidencePath) add(t int32, evidence float64) bool {
	if p.peak >= p.hi {
		return true
	}
	if evidence > p.peak {
		p.peak = evidence
		if evidence >= p.lo {
			p.steps = append(p.steps, step{t, evidence})
		}
	}
	return p.peak >= p.hi
}

// first is the second at which the evidence first reached level (lo ≤ level ≤ hi), -1 for never.
func first(steps []step, level float64) int32 {
	i, _ := slices.BinarySearchFunc(steps, level, func(s step, l float64) int { return cmp.Compare(s.evidence, l) })
	if i == len(steps) {
		return -1
	}
	return steps[i].second
}
