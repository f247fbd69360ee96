package analysis

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"aviary.dev/aviary/internal/analysis/judge"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/llmstats"
	"aviary.dev/aviary/internal/metrics"
	"aviary.dev/aviary/internal/quality"
)

// LLM metrics are compared from cumulative totals (package llmstats), differenced look by look:
// they never leave a window and need no slots.

// llmCount compares a count of events among LLM calls (stream errors among calls; first tokens or
// chunk gaps slower than the stable's quantile among those measured).
//
// Like a builtin's, the test is one per rollout, shared by its runs (rolloutLLM) and kept across
// restarts (persist.go): mu serializes the runs' looks, and a look reads only the totals' growth
// since the last one, whichever run made it.
type llmCount struct {
	template string
	metric   config.AnalysisMetric
	alpha    float64
	stats    *llmstats.Registry
	quality  QualitySource // label rates of evaluation and feedback
	limit    int

	mu       sync.Mutex
	test     *judge.CountTest
	boundary time.Duration // ttft and interTokenLatency: 0 until known
	prev     map[string][2]uint64
	history  []Point
	looks    int64 // looks taken: each is a batch of the count test
}

// llmBoundarySamples is how many stable measurements a TTFT or gap boundary needs.
const llmBoundarySamples = 100

// newLLMCount judges a count builtin read from the LLM totals, or a score builtin's label rate.
func (a *Analyzer) newLLMCount(template string, m config.AnalysisMetric, alpha float64) *llmCount {
	q := &llmCount{template: template, metric: m, alpha: alpha, stats: a.o.LLM, test: judge.NewCountTest(m.Margin, alpha),
		prev: map[string][2]uint64{}, limit: a.o.History}
	if m.Label != "" {
		q.quality = a.o.Quality
	}
	return q
}

func (q *llmCount) id() (string, string) { return q.template, q.metric.Name }
func (q *llmCount) points() []Point {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.history)
}
func (q *llmCount) ready() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.hasBoundary()
}

// same reports whether q tests metric m at alpha (a reload may change either: a new test then).
func (q *llmCount) same(m config.AnalysisMetric, alpha float64) bool {
	return q.metric == m && q.alpha == alpha
}

// hasBoundary: the metric needs no boundary, or has it. Called with q.mu held.
func (q *llmCount) hasBoundary() bool {
	return !q.metric.BuiltinSpec().Quantiled || q.metric.Label != "" || q.boundary != 0
}

// totals is a version's cumulative (measured, events).
func (q *llmCount) totals(r *runner, version string) (n, e uint64) {
	if q.metric.Label != "" {
		if q.quality == nil {
			return 0, 0
		}
		key := quality.KeyFeedback
		if q.metric.BuiltinSpec().NamedScore {
			key = quality.KeyEvaluation
		}
		if version == r.run.Canary && r.shadow.Load() {
			key = quality.MirrorPrefix + key
		}
		t := q.quality.Totals(r.run.Service, version)[key]
		return uint64(t.N), uint64(t.Labels[q.metric.Label])
	}
	if q.stats == nil {
		return 0, 0
	}
	t := q.stats.Totals(r.run.Service, version, version == r.run.Canary && r.shadow.Load())
	switch q.metric.Builtin {
	case config.BuiltinStreamErrorRate:
		return uint64(t.Requests), uint64(t.StreamErrors)
	case config.BuiltinTTFT:
		return t.TTFT.Count(), t.TTFT.CountAbove(q.boundary)
	default:
		return t.Gaps.Count(), t.Gaps.CountAbove(q.boundary)
	}
}

func (q *llmCount) hist(r *runner, version string) *metrics.Histogram {
	t := q.stats.Totals(r.run.Service, version, false)
	if q.metric.Builtin == config.BuiltinTTFT {
		return t.TTFT
	}
	return t.Gaps
}

func (q *llmCount) look(r *runner, now time.Time) {
	if q.stats == nil && q.metric.Label == "" {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.hasBoundary() {
		h := q.hist(r, r.run.Stable)
		if h.Count() < llmBoundarySamples {
			return
		}
		q.boundary = h.Quantile(q.metric.Quantile)
		for _, v := range []string{r.run.Canary, r.run.Stable} { // count from here on
			n, e := q.totals(r, v)
			q.prev[v] = [2]uint64{n, e}
		}
		return
	}
	var d [2][2]int64
	for i, v := range []string{r.run.Canary, r.run.Stable} {
		n, e := q.totals(r, v)
		p := q.prev[v]
		d[i] = [2]int64{int64(n - min(n, p[0])), int64(e - min(e, p[1]))}
		q.prev[v] = [2]uint64{n, e}
	}
	// Each look is its own batch: LLM calls are few and slow (a look holds a handful), so the
	// count test keeps its per-look form here, without the slot batches, the baseline's dispersion
	// or a cap that binds (see docs/llm.md).
	q.looks++
	q.test.Observe(q.looks, d[0][0], d[0][1], d[1][0], d[1][1])
}

func (q *llmCount) result(r *runner, minimumMet bool, now time.Time) MetricResult {
	q.mu.Lock()
	defer q.mu.Unlock()
	t := q.test
	res := countResult(q.template, q.metric, r, t)
	what := "LLM streams that failed after a 200: "
	switch {
	case q.metric.Label != "":
		what = fmt.Sprintf("%s labelled %q: ", q.metric.Builtin, q.metric.Label)
	case q.stats == nil:
		res.Text = q.metric.Name + ": no LLM measurements in this process (the service needs an llm setting)"
		return res
	case !q.hasBoundary():
		res.Text = fmt.Sprintf("%s: waiting for %d stable measurements to set the boundary", q.metric.Name, llmBoundarySamples)
		return res
	case q.metric.Builtin == config.BuiltinTTFT:
		what = fmt.Sprintf("first tokens slower than %s (stable p%g): ", q.boundary.Round(time.Millisecond), 100*q.metric.Quantile)
	case q.metric.Builtin == config.BuiltinInterTokenLatency:
		what = fmt.Sprintf("gaps between chunks longer than %s (stable p%g): ", q.boundary.Round(time.Microsecond), 100*q.metric.Quantile)
	}
	res.Boundary = q.boundary.String()
	decision := decide(&res, t.Rejected(), q.metric, minimumMet)
	res.Text = fmt.Sprintf("%s: %s%s (margin %g×); %s", q.metric.Name, what, t.Describe(), q.metric.Margin, decision)
	q.history = recordPoint(q.history, q.limit, now, res)
	return res
}
