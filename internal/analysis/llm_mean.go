package analysis

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"aviary.dev/aviary/internal/analysis/judge"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/quality"
)

// QualitySource gives the evaluation and feedback totals of a version (package quality).
type QualitySource interface {
	Totals(service, version string) map[string]quality.Totals
}

// scoreRanger is a QualitySource that knows the range its scores fall in (quality.Quality: it
// drops every score outside it), so that their means can be judged with finite-sample validity.
type scoreRanger interface {
	ScoreRange(service, key string) (config.ScoreRange, bool)
}

// meanJudge is judge.MeanTest (asymptotic) or judge.BoundedMeanTest (bounded scores).
type meanJudge interface {
	Observe(canaryN int64, canarySum, canarySumSq float64, baseN int64, baseSum, baseSumSq float64)
	Evidence() float64
	Needed() float64
	Rejected() bool
	Means() (canary, base float64)
	Effect() float64
	Describe() string
	Counts() (canary, base int64)
}

// moments are cumulative count, sum and sum of squares.
type moments struct {
	n       int64
	sum, sq float64
}

// llmMean compares per-request means: output tokens, cost, evaluation scores, feedback scores.
// Like llmCount's, the test is one per rollout, shared by its runs and kept across restarts.
type llmMean struct {
	template string
	metric   config.AnalysisMetric
	alpha    float64
	a        *Analyzer

	mu      sync.Mutex
	test    meanJudge
	prev    map[string]moments
	history []Point
}

// newLLMMean judges a mean builtin (higher is worse) or a score builtin's mean (lower is worse):
// a score whose range is known (every score outside it dropped) by the betting test, valid for
// any number of values; any other mean by the asymptotic one. The range is read once, when the
// test begins: a reload that widens it mid-rollout lets scores in that the test's bounds do not
// cover (docs/llm.md says so).
func (a *Analyzer) newLLMMean(service, template string, m config.AnalysisMetric, alpha float64) *llmMean {
	q := &llmMean{template: template, metric: m, alpha: alpha, a: a, prev: map[string]moments{}}
	if m.BuiltinSpec().Test != config.ScoreTest {
		q.test = judge.NewMeanTest(judge.Higher, m.Margin, alpha)
		return q
	}
	if rs, ok := a.o.Quality.(scoreRanger); ok {
		if r, ok := rs.ScoreRange(service, q.key(false)); ok {
			q.test = judge.NewBoundedMeanTest(judge.Lower, m.Margin, alpha, r.Min, r.Max)
			return q
		}
	}
	q.test = judge.NewMeanTest(judge.Lower, m.Margin, alpha)
	return q
}

// key is the quality totals' key of a score metric: its evaluation score or the feedback score,
// a mirror's when mirror.
func (q *llmMean) key(mirror bool) string {
	key := quality.KeyFeedbackScore
	if q.metric.BuiltinSpec().NamedScore {
		key = quality.EvaluationKey(q.metric.Score)
	}
	if mirror {
		key = quality.MirrorPrefix + key
	}
	return key
}

func (q *llmMean) id() (string, string) { return q.template, q.metric.Name }
func (q *llmMean) points() []Point {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.history)
}

// same reports whether q tests metric m at alpha.
func (q *llmMean) same(m config.AnalysisMetric, alpha float64) bool {
	return q.metric == m && q.alpha == alpha
}

// ready: a mean is judged on enough values on both sides; late signals (evaluations, feedback)
// make a step wait for them rather than pass on none.
func (q *llmMean) ready() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	c, b := q.test.Counts()
	return c >= meanMinSamples && b >= meanMinSamples
}

// meanMinSamples is how many values each side needs before a mean may let a step pass.
const meanMinSamples = 30

// totals is a version's cumulative moments of the metric.
func (q *llmMean) totals(r *runner, version string) moments {
	mirror := version == r.run.Canary && r.shadow.Load()
	if q.metric.BuiltinSpec().Reads == config.FromLLM {
		if q.a.o.LLM == nil {
			return moments{}
		}
		t := q.a.o.LLM.Totals(r.run.Service, version, mirror)
		if q.metric.Builtin == config.BuiltinOutputTokens {
			return moments{t.UsageN, t.OutputSum, t.OutputSumSq}
		}
		return moments{t.CostN, t.CostSum, t.CostSumSq}
	}
	if q.a.o.Quality == nil {
		return moments{}
	}
	t := q.a.o.Quality.Totals(r.run.Service, version)[q.key(mirror)]
	return moments{t.N, t.Sum, t.SumSq}
}

func (q *llmMean) look(r *runner, now time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var d [2]moments
	for i, v := range []string{r.run.Canary, r.run.Stable} {
		cur := q.totals(r, v)
		p := q.prev[v]
		if cur.n >= p.n {
			d[i] = moments{cur.n - p.n, cur.sum - p.sum, cur.sq - p.sq}
		}
		q.prev[v] = cur
	}
	q.test.Observe(d[0].n, d[0].sum, d[0].sq, d[1].n, d[1].sum, d[1].sq)
}

func (q *llmMean) result(r *runner, minimumMet bool, now time.Time) MetricResult {
	q.mu.Lock()
	defer q.mu.Unlock()
	t := q.test
	cm, bm := t.Means()
	res := MetricResult{Template: q.template, Metric: q.metric.Name, Kind: "sequential", Critical: q.metric.Critical,
		Canary: &Side{Version: r.run.Canary, Rate: finite(cm)}, Baseline: &Side{Version: r.run.Stable, Rate: finite(bm)},
		Effect: finite(t.Effect()), Margin: q.metric.Margin, Evidence: t.Evidence(), Needed: t.Needed(), Phase: Running}
	decision := decide(&res, t.Rejected(), q.metric, minimumMet)
	what := string(q.metric.Builtin)
	if q.metric.BuiltinSpec().NamedScore {
		what += " " + q.metric.Score
	}
	res.Text = fmt.Sprintf("%s: %s %s (margin %g×); %s", q.metric.Name, what, t.Describe(), q.metric.Margin, decision)
	q.history = recordPoint(q.history, q.a.o.History, now, res)
	return res
}
