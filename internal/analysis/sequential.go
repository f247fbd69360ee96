package analysis

import (
	"fmt"
	"math"
	"sync"
	"time"

	"aviary.dev/aviary/internal/analysis/judge"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/metrics"
)

// sequential compares the canary with the baseline on one builtin metric, look by look.
type sequential struct {
	template string
	metric   config.AnalysisMetric
	test     *judge.CountTest

	boundary time.Duration // latency: requests slower than this are events; 0 until known
	seen     map[slotKey]counts
	history  []Point
	limit    int

	pending [5]int64 // latency: requests in flight counted as slow (see the pend* indices)
	effect  [2]int64 // latency with a slowdown effect: the canary's requests and those slower than the effect's boundary

	unitBase *[2][metrics.NumUnits]int64 // errors: the stable's per-cluster counts when the test began
	units    [2][metrics.NumUnits]int64  // errors: the stable's per-cluster counts since the test began, at the last look

	disp    *judge.Dispersion // the stable's own clumping, from its closed slots
	dispFed int64             // unix ns of the last stable slot fed to disp

	// far is a latency metric's far-tail test: requests past judge.FarFactor × the boundary (in
	// flight or ended), where the stable has almost no mass, so that hung requests are caught in
	// seconds; its evidence is averaged with test's (judge.LatencyEvidence). Nil for other metrics.
	far *judge.CountTest

	// A sequential is shared by every run of a rollout that judges the same template's metric
	// (its analysis steps and its background analysis): one e-process per rollout, so that a new
	// step neither spends alpha afresh nor starts its evidence from nothing. mu serializes the
	// runs' looks; a look reads only what is new since the last one, whichever run made it.
	mu    sync.Mutex
	start time.Time // when the first run began: what the slots and the boundary count from
}

type slotKey struct {
	version string
	role    metrics.Role
	slot    int64
}

type counts struct{ requests, events uint64 }

// Indices of sequential.pending: requests in flight past a boundary, counted as slow already.
const (
	pendCanary    = iota // the canary's, past its boundary
	pendStable           // the stable's, past the boundary
	pendEffect           // the canary's, past the detectable effect's boundary
	pendFarCanary        // the canary's, past its far boundary
	pendFarStable        // the stable's, past the far boundary
)

// boundarySamples is how many stable requests a latency boundary needs before it is trusted.
const boundarySamples = 500

func newSequential(template string, m config.AnalysisMetric, alpha float64, limit int) *sequential {
	q := &sequential{template: template, metric: m, test: judge.NewCountTest(m.Margin, alpha),
		seen: map[slotKey]counts{}, limit: limit, disp: &judge.Dispersion{}}
	q.test.Dispersion = q.disp
	if m.Builtin == config.BuiltinErrorRate {
		q.test.SetPrior(judge.Moderate) // see judge.ratioWeights
	}
	if m.Builtin == config.BuiltinLatency {
		q.far = judge.NewFarTest(alpha)
	}
	return q
}

// canaryN is the canary's requests the test has counted (runs of the rollout share it: read
// under its lock).
func (q *sequential) canaryN() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.test.CanaryN
}

// look adds what both versions served since the last look.
func (q *sequential) look(r *runner, now time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.start.IsZero() {
		q.start = r.run.StartedAt
	}
	if q.metric.BuiltinSpec().Quantiled && q.boundary == 0 && !q.findBoundary(r, now) {
		return
	}
	if q.dispFed == 0 {
		q.warmDispersion(r)
	}
	cn, ce := q.delta(r, r.run.Canary, now)
	bn, be := q.delta(r, r.run.Stable, now)
	c, b := [2]int64{int64(cn), int64(ce)}, [2]int64{int64(bn), int64(be)}
	if q.metric.BuiltinSpec().Quantiled {
		// A request still in flight past the boundary is slow already: count it now, not when
		// it ends (a canary whose requests hang would otherwise look healthy until they time out).
		c = q.pendingSlow(r, r.run.Canary, c, q.boundaryOf(r, r.run.Canary), now, pendCanary)
		b = q.pendingSlow(r, r.run.Stable, b, q.boundary, now, pendStable)
	}
	q.test.Observe(r.batch(now), c[0], c[1], b[0], b[1])
	if q.far != nil {
		q.lookFar(r, now)
	}
	if eb := q.effectBoundary(); eb > 0 {
		en, ee := q.deltaAt(r, r.run.Canary, now, eb, effectTag)
		e := q.pendingSlow(r, r.run.Canary, [2]int64{int64(en), int64(ee)}, eb, now, pendEffect)
		q.effect[0], q.effect[1] = q.effect[0]+e[0], q.effect[1]+e[1]
	}
	q.feedDispersion(r, now)
	if q.metric.Builtin == "errorRate" {
		q.feedUnits(r)
	}
}

// feedUnits gives the dispersion estimate the stable's clusters of sticky keys since the test
// began: users who carry their own failure rate make clusters differ by more than chance, and the
// canary's share of such users differs from the stable's just as much.
func (q *sequential) feedUnits(r *runner) {
	n, e := r.a.o.Metrics.Units(r.run.Service, r.run.Stable, metrics.Primary)
	if q.unitBase == nil {
		q.unitBase = &[2][metrics.NumUnits]int64{n, e}
	}
	dn, de := &q.units[0], &q.units[1]
	for i := range n {
		dn[i], de[i] = n[i]-q.unitBase[0][i], e[i]-q.unitBase[1][i]
	}
	q.disp.SetUnits(dn[:], de[:])
}

// lookFar feeds the far-tail test what both versions served since the last look, counted past
// the far boundaries, and the requests in flight past them: read at every look, so that a hung
// request counts as soon as it has been in flight past the far boundary (give or take a slot of
// the metrics, see metrics.Series.Pending), not when it times out.
func (q *sequential) lookFar(r *runner, now time.Time) {
	cb, bb := q.farBoundary(r, r.run.Canary), q.farBoundary(r, r.run.Stable)
	cn, ce := q.deltaAt(r, r.run.Canary, now, cb, farTag)
	bn, be := q.deltaAt(r, r.run.Stable, now, bb, farTag)
	c := q.pendingSlow(r, r.run.Canary, [2]int64{int64(cn), int64(ce)}, cb, now, pendFarCanary)
	b := q.pendingSlow(r, r.run.Stable, [2]int64{int64(bn), int64(be)}, bb, now, pendFarStable)
	q.far.Observe(r.batch(now), c[0], c[1], b[0], b[1])
}

// farBoundary is a version's far boundary: judge.FarFactor × its boundary.
func (q *sequential) farBoundary(r *runner, version string) time.Duration {
	return judge.FarFactor * q.boundaryOf(r, version)
}

// farTag keeps the slots read at the far boundaries apart.
const farTag = "#far"

// pendingSlow is the package's pendingSlow for version's requests in flight past boundary, with
// q.pending[i] as what is counted of them so far.
func (q *sequential) pendingSlow(r *runner, version string, look [2]int64, boundary time.Duration, now time.Time, i int) [2]int64 {
	return pendingSlow(look, r.a.o.Metrics.Pending(r.run.Service, version, roleOf(r, version), now.Add(-boundary)), &q.pending[i])
}

// pendingSlow adds to a look's (requests, slow requests) the requests now in flight past the
// boundary that were not counted yet, and takes out those counted before that have ended since
// (they are in the look's ended requests, as slow ones). counted is how many are counted now.
func pendingSlow(look [2]int64, pending int64, counted *int64) [2]int64 {
	if d := pending - *counted; d >= 0 {
		*counted = pending
		return [2]int64{look[0] + d, look[1] + d}
	}
	// Some ended: take them out of this look as far as it holds them; the rest next time.
	sub := min(*counted-pending, look[0], look[1])
	*counted -= sub
	return [2]int64{look[0] - sub, look[1] - sub}
}

// warmDispersion gives the dispersion estimate the stable's slots of the five minutes before the
// run, so that a clumping stable tempers the test from its first look.
func (q *sequential) warmDispersion(r *runner) {
	w := r.a.o.Metrics.Slot()
	start := q.start.Truncate(w)
	var n, e int64
	var fe int64
	for t := start.Add(-5 * time.Minute); t.Before(start); t = t.Add(w) {
		c := q.read(r, r.run.Stable, t)
		q.disp.ObserveBatch(int64(c.requests), int64(c.events))
		n, e = n+int64(c.requests), e+int64(c.events)
		fe += q.feedFar(r, t, c)
	}
	q.test.SetBaselineBefore(n, e)
	if q.far != nil {
		q.far.SetBaselineBefore(n, fe)
	}
	q.dispFed = start.Add(-w).UnixNano()
}

// feedDispersion gives the dispersion estimate each of the stable's slots since the run started
// once it can no longer change (two slots back, as delta reads them).
func (q *sequential) feedDispersion(r *runner, now time.Time) {
	w := r.a.o.Metrics.Slot()
	from := q.start.Truncate(w)
	if fed := time.Unix(0, q.dispFed).Add(w); q.dispFed != 0 && fed.After(from) {
		from = fed
	}
	for t := from; !t.After(now.Add(-2 * w)); t = t.Add(w) {
		c := q.read(r, r.run.Stable, t)
		q.disp.ObserveBatch(int64(c.requests), int64(c.events))
		q.feedFar(r, t, c)
		q.dispFed = t.UnixNano()
	}
}

// feedFar gives the far test's dispersion the stable's slot at t (c: its counts at the
// boundary), counted past the far boundary, and returns those events. Only slow requests can be
// far ones: a slot without any is read no further.
func (q *sequential) feedFar(r *runner, t time.Time, c counts) int64 {
	if q.far == nil || q.boundary == 0 {
		return 0
	}
	var e uint64
	if c.events > 0 {
		e = q.readAt(r, r.run.Stable, t, q.farBoundary(r, r.run.Stable)).events
	}
	q.far.Dispersion.ObserveBatch(int64(c.requests), int64(e))
	return int64(e)
}

// findBoundary sets the latency boundary: the stable's quantile before the run (when it had
// enough traffic then), else over the run so far once it has enough.
func (q *sequential) findBoundary(r *runner, now time.Time) bool {
	start := q.start
	w := r.a.o.Metrics.Window(r.run.Service, r.run.Stable, metrics.Primary, start.Add(-5*time.Minute), start)
	if w.Latency.Count() < boundarySamples {
		w = r.a.o.Metrics.Window(r.run.Service, r.run.Stable, metrics.Primary, start, now)
		if w.Latency.Count() < boundarySamples {
			return false
		}
	}
	q.boundary = w.Latency.Quantile(q.metric.Quantile)
	// From here on, count only what is new: remember every slot as seen.
	q.markSeen(r, r.run.Canary, now)
	q.markSeen(r, r.run.Stable, now)
	return true
}

// slots lists the slot starts that may still change: from the run's start (or two slots back,
// whichever is later) to now.
func slots(reg *metrics.Registry, since, now time.Time) []time.Time {
	w := reg.Slot()
	from := since.Truncate(w)
	if recent := now.Add(-2 * w).Truncate(w); recent.After(from) {
		from = recent
	}
	var out []time.Time
	for t := from; !t.After(now); t = t.Add(w) {
		out = append(out, t)
	}
	return out
}

// roleOf is how a version is measured now.
func roleOf(r *runner, version string) metrics.Role {
	if version == r.run.Canary {
		return r.canaryRole()
	}
	return metrics.Primary
}

// read is a version's counts in the slot starting at t.
func (q *sequential) read(r *runner, version string, t time.Time) counts {
	return q.readAt(r, version, t, q.boundaryOf(r, version))
}

// readAt is read with the latency boundary given.
func (q *sequential) readAt(r *runner, version string, t time.Time, boundary time.Duration) counts {
	w := r.a.o.Metrics.Window(r.run.Service, version, roleOf(r, version), t, t.Add(time.Nanosecond))
	c := counts{requests: w.Requests, events: w.Errors}
	if q.metric.BuiltinSpec().Quantiled {
		c.events = w.Latency.CountAbove(boundary)
	}
	return c
}

// effectBoundary is the canary's boundary for the pass when the detectable effect is a slowdown
// (0: none): (1 + effect) × the stable's quantile.
func (q *sequential) effectBoundary() time.Duration {
	e := q.metric.DetectableEffect
	if q.metric.Builtin != "latency" || e == nil || e.Slowdown <= 0 || q.boundary == 0 {
		return 0
	}
	return time.Duration(float64(q.boundary) * (1 + e.Slowdown))
}

// boundaryOf is what "slow" means for a version: the stable's quantile for the stable, and
// (1 + slowdown) × it for the canary, so that "the canary's slow share is at most the stable's"
// (margin 1) is "the canary's quantile is at most (1 + slowdown) × the stable's".
func (q *sequential) boundaryOf(r *runner, version string) time.Duration {
	if version == r.run.Canary {
		return time.Duration(float64(q.boundary) * (1 + q.metric.Slowdown))
	}
	return q.boundary
}

func (q *sequential) delta(r *runner, version string, now time.Time) (n, e uint64) {
	return q.deltaAt(r, version, now, q.boundaryOf(r, version), "")
}

// deltaAt is delta with the latency boundary given; tag keeps its slots apart from delta's.
func (q *sequential) deltaAt(r *runner, version string, now time.Time, boundary time.Duration, tag string) (n, e uint64) {
	for _, t := range slots(r.a.o.Metrics, q.start, now) {
		k := slotKey{version + tag, roleOf(r, version), t.UnixNano()}
		c := q.readAt(r, version, t, boundary)
		prev := q.seen[k]
		if c.requests >= prev.requests {
			n += c.requests - prev.requests
		}
		if c.events >= prev.events {
			e += c.events - prev.events
		}
		q.seen[k] = c
	}
	q.forgetOld(now, r.a.o.Metrics.Slot())
	return n, e
}

func (q *sequential) markSeen(r *runner, version string, now time.Time) {
	for _, t := range slots(r.a.o.Metrics, q.start, now) {
		q.seen[slotKey{version, roleOf(r, version), t.UnixNano()}] = q.read(r, version, t)
		if b := q.effectBoundary(); b > 0 && version == r.run.Canary {
			q.seen[slotKey{version + effectTag, roleOf(r, version), t.UnixNano()}] = q.readAt(r, version, t, b)
		}
		if q.far != nil {
			q.seen[slotKey{version + farTag, roleOf(r, version), t.UnixNano()}] = q.readAt(r, version, t, q.farBoundary(r, version))
		}
	}
}

// effectTag keeps the slots read at the detectable effect's boundary apart.
const effectTag = "#effect"

func (q *sequential) forgetOld(now time.Time, w time.Duration) {
	oldest := now.Add(-3 * w).UnixNano()
	for k := range q.seen {
		if k.slot < oldest {
			delete(q.seen, k)
		}
	}
}

// result is the metric's evidence now. minimumMet says whether a non-critical metric may fail.
func (q *sequential) result(r *runner, minimumMet bool, now time.Time) MetricResult {
	q.mu.Lock()
	defer q.mu.Unlock()
	t := q.test
	res := countResult(q.template, q.metric, r, t)
	what := ""
	if q.metric.BuiltinSpec().Quantiled {
		what = fmt.Sprintf("requests slower than %s (stable p%g): ", q.boundary.Round(time.Microsecond), 100*q.metric.Quantile)
		if sd := q.metric.Slowdown; sd > 0 {
			what = fmt.Sprintf("p%g at most %g%% slower: canary requests slower than %s against stable requests slower than %s (its p%g): ",
				100*q.metric.Quantile, 100*sd, time.Duration(float64(q.boundary)*(1+sd)).Round(time.Microsecond),
				q.boundary.Round(time.Microsecond), 100*q.metric.Quantile)
		}
		res.Boundary = q.boundary.String()
		if q.boundary == 0 {
			res.Text = fmt.Sprintf("%s: waiting for %d stable requests to set the latency boundary", q.metric.Name, boundarySamples)
			return res
		}
	}
	res.Evidence = judge.LatencyEvidence(t, q.far)
	decision := decide(&res, res.Evidence >= t.Needed(), q.metric, minimumMet)
	res.Text = fmt.Sprintf("%s: %s%s (margin %g×)%s; %s", q.metric.Name, what, t.Describe(), q.metric.Margin, q.describeFar(r), decision)
	if e := q.metric.DetectableEffect; e != nil && e.Slowdown > 0 && q.metric.Builtin == "latency" {
		s := t.RuledOutAgainst(q.effect[0], q.effect[1], t.Alpha)
		res.Safe = &s.Safe
		res.RuledOut = fmt.Sprintf("%s over %d canary requests",
			s.DescribeSlowdown(q.effectBoundary(), q.boundary, q.metric.Quantile, e.Slowdown, t.Alpha), q.effect[0])
		res.Text += "; " + res.RuledOut
	} else if e != nil {
		eff := judge.Effect{Ratio: e.Ratio, Points: e.Points / 100}
		s := t.RuledOut(eff, t.Alpha)
		res.Safe, res.RuledOut = &s.Safe, fmt.Sprintf("%s over %d canary requests", s.Describe(eff, t.Alpha), t.CanaryN)
		res.Text += "; " + res.RuledOut
	}
	q.history = recordPoint(q.history, q.limit, now, res)
	return res
}

// describeFar says what the far-tail test shows (nothing for a metric without one): "; far tail
// (past 1.2s, 10× the boundary, in flight included): canary 14 of 610 requests, stable 0 of
// 5,480; evidence of the two averaged 31 < 400 needed".
func (q *sequential) describeFar(r *runner) string {
	f := q.far
	if f == nil {
		return ""
	}
	op := "<"
	e := judge.LatencyEvidence(q.test, f)
	if e >= q.test.Needed() {
		op = "≥"
	}
	s := fmt.Sprintf("; far tail (past %s, %d× the boundary, in flight included): canary %d of %d requests, stable %d of %d; evidence of the two averaged %.3g %s %.3g needed",
		q.farBoundary(r, r.run.Stable).Round(time.Microsecond), judge.FarFactor, f.CanaryEvents, f.CanaryN, f.BaseEvents, f.BaseN, e, op, q.test.Needed())
	if phi := f.Phi(); phi > 1.05 {
		s += fmt.Sprintf(" (stable's far-tail clumping %.2g× applied)", phi)
	}
	return s
}

// countResult is a sequential count metric's result before its words: both versions' counts
// and rates, the effect, and the evidence so far.
func countResult(template string, m config.AnalysisMetric, r *runner, t *judge.CountTest) MetricResult {
	cr, br := t.Rates()
	return MetricResult{Template: template, Metric: m.Name, Kind: "sequential", Critical: m.Critical,
		Canary:   &Side{Version: r.run.Canary, Requests: t.CanaryN, Events: t.CanaryEvents, Rate: finite(cr)},
		Baseline: &Side{Version: r.run.Stable, Requests: t.BaseN, Events: t.BaseEvents, Rate: finite(br)},
		Effect:   finite(t.Effect()), Margin: m.Margin, Evidence: t.Evidence(), Needed: t.Needed(), Phase: Running,
		Dispersion: t.Phi()}
}

// decide turns a sequential test's verdict into the result's phase and says it in words: a
// regression fails a critical metric at once, any other once the minimum exposure is met.
func decide(res *MetricResult, rejected bool, m config.AnalysisMetric, minimumMet bool) string {
	switch {
	case rejected && (m.Critical || minimumMet):
		res.Phase = Failed
		return "rollback"
	case rejected:
		return "regression shown; the rollback waits for the minimum exposure (not critical)"
	}
	return "no evidence of a regression beyond the margin"
}

// recordPoint keeps a point of a sequential metric's history every ten seconds and at a
// decision, the last limit of them.
func recordPoint(history []Point, limit int, now time.Time, res MetricResult) []Point {
	if n := len(history); n > 0 && now.Sub(history[n-1].At) < 10*time.Second && res.Phase == Running {
		return history
	}
	history = append(history, Point{At: now, Value: res.Effect, Phase: res.Phase, Evidence: res.Evidence})
	if len(history) > limit {
		history = history[len(history)-limit:]
	}
	return history
}

func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}
