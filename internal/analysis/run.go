package analysis

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"aviary.dev/aviary/internal/analysis/provider"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/metrics"
	"aviary.dev/aviary/internal/rollout"
)

// runner measures one check's metrics on its own goroutine and keeps its latest verdict.
type runner struct {
	a         *Analyzer
	run       rollout.Run
	templates []config.AnalysisTemplate
	seq       []comparative
	thr       []*threshold

	savedBatch int64 // the batch in which the run last kept its rollout's evidence (see persist)

	weight      atomic.Int64 // the canary's weight now; it moves with the steps
	weightSince atomic.Int64 // unix ns when the weight last changed
	shadow      atomic.Bool  // the canary is measured by its mirrored copies

	mu      sync.Mutex
	verdict rollout.Verdict
	report  RunReport
}

// newRunner prepares a run; a template it cannot find or a provider it cannot make is a Fail
// with the reason, decided at once (validation stops both in a config that is checked).
func newRunner(a *Analyzer, r rollout.Run, templates map[string]config.AnalysisTemplate) *runner {
	if now := a.o.Now(); now.Sub(r.StartedAt) > restoredAfter {
		// A check restored after a restart: the measurements before it are gone with the process,
		// so its minimum and its maxWait count from now.
		r.StartedAt = now
	}
	rn := &runner{a: a, run: r}
	rn.weight.Store(int64(r.Weight))
	rn.weightSince.Store(r.StartedAt.UnixNano())
	rn.shadow.Store(r.Shadow)
	rn.report = RunReport{ID: r.ID, Kind: r.Kind, Service: r.Service, Stable: r.Stable, Canary: r.Canary,
		Templates: r.Templates, StartedAt: r.StartedAt, Verdict: string(rollout.Running)}
	for _, name := range r.Templates {
		t, ok := templates[name]
		if !ok {
			rn.decide(rollout.Fail, fmt.Sprintf("no analysis template named %q; define it under analysis.templates", name), nil)
			return rn
		}
		rn.templates = append(rn.templates, t)
		share := alphaShares(t.Metrics)
		for i, m := range t.Metrics {
			if sequentialMetric(m) {
				rn.seq = append(rn.seq, a.newComparative(r, t.Name, m, t.Alpha*share[i]))
				continue
			}
			p, err := provider.New(provider.Of(m), a.o.Providers)
			var th *threshold
			if err == nil {
				th, err = newThreshold(t.Name, m, p, r.StartedAt, a.o.History)
			}
			if err != nil {
				rn.decide(rollout.Fail, fmt.Sprintf("template %s, metric %s: %v", t.Name, m.Name, err), nil)
				return rn
			}
			rn.thr = append(rn.thr, th)
		}
	}
	return rn
}

// alphaShares is each comparative metric's share of its template's alpha (Bonferroni, so the
// false-rollback rate of the whole template stays within it): shared equally by the kinds of
// signal the template judges (its builtins; each Prometheus counter its own), then equally by the
// metrics of each kind — the default template's errors get half, its two latency quantiles a
// quarter each, so that watching a second quantile does not slow the errors test down.
func alphaShares(ms []config.AnalysisMetric) []float64 {
	kindOf := func(i int) string {
		if ms[i].Builtin != "" {
			return string(ms[i].Builtin)
		}
		return fmt.Sprint("#", i)
	}
	perKind := map[string]int{}
	for i, m := range ms {
		if sequentialMetric(m) {
			perKind[kindOf(i)]++
		}
	}
	out := make([]float64, len(ms))
	for i, m := range ms {
		if sequentialMetric(m) {
			out[i] = 1 / float64(len(perKind)) / float64(perKind[kindOf(i)])
		}
	}
	return out
}

// restoredAfter: a check whose run starts this long after the check did was restored.
const restoredAfter = 5 * time.Second

// comparative is a metric judged canary against baseline, look by look.
type comparative interface {
	look(r *runner, now time.Time)
	result(r *runner, minimumMet bool, now time.Time) MetricResult
	ready() bool // it has measured something (a latency metric needs its boundary first)
	id() (template, metric string)
	points() []Point
}

func (q *sequential) ready() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return !q.metric.BuiltinSpec().Quantiled || q.boundary != 0
}
func (q *sequential) id() (template, metric string) { return q.template, q.metric.Name }
func (q *sequential) points() []Point {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.history)
}

// newComparative makes the comparative judge of a metric judged canary against baseline: the
// builtin's row of config's table says which test it takes and what it reads.
func (a *Analyzer) newComparative(r rollout.Run, template string, m config.AnalysisMetric, alpha float64) comparative {
	spec, builtin := m.Builtin.Spec()
	switch {
	case !builtin: // a prometheus metric with requests and errors counters
		c, err := a.rolloutPromCount(r, template, m, alpha)
		if err == nil {
			return c
		}
		a.o.Logger.Error("no prometheus provider", "err", err) // registered in init: cannot happen
	case spec.Reads == config.FromGateway:
	default:
		return a.rolloutLLM(r, template, m, alpha)
	}
	return a.rolloutSequential(r, template, m, alpha)
}

// llmTest is an LLM metric's test: one per rollout, as a builtin's (see rolloutLLM).
type llmTest interface {
	comparative
	same(m config.AnalysisMetric, alpha float64) bool // it tests m at alpha
	state() savedTest                                 // what is kept of it (taken under its lock)
}

// llmCounted: an LLM metric judged by a count test (stream errors, slow first tokens or gaps, a
// label's rate), not a mean test.
func llmCounted(m config.AnalysisMetric) bool {
	return m.BuiltinSpec().Test == config.CountTest || m.Label != ""
}

// rolloutLLM is the test of an LLM metric for the rollout r belongs to, as rolloutSequential is a
// builtin's: the one an earlier run of the same rollout began, the one the store kept of it before
// a restart, or a new one. Called with a.mu held.
func (a *Analyzer) rolloutLLM(r rollout.Run, template string, m config.AnalysisMetric, alpha float64) llmTest {
	attempt, key := evidenceKey(r, template, m)
	if q, ok := a.llm[key]; ok && q.same(m, alpha) {
		return q
	}
	a.dropEarlier(attempt)
	delete(a.evidence, key) // a reload that made the metric an LLM one
	delete(a.proms, key)
	q := a.restoredLLM(r, attempt, strings.TrimPrefix(key, attempt+"|"), m, template, alpha)
	if q == nil {
		if llmCounted(m) {
			q = a.newLLMCount(template, m, alpha)
		} else {
			q = a.newLLMMean(r.Service, template, m, alpha)
		}
	}
	a.llm[key] = q
	return q
}

// dropEarlier drops the tests of the owner's earlier attempts than attempt. The evidence belongs
// to the owner the check's ID names (its service for a rollout's check; an experiment's guardrails
// name the experiment, and judge a service's versions beside any rollout of it), and only an
// earlier attempt of that owner is dropped. Called with a.mu held.
func (a *Analyzer) dropEarlier(attempt string) {
	prefix := serviceOf(attempt) + "/"
	for k := range a.evidence {
		if strings.HasPrefix(k, prefix) && !strings.HasPrefix(k, attempt+"|") {
			delete(a.evidence, k)
			delete(a.proms, k)
		}
	}
	for k := range a.llm {
		if strings.HasPrefix(k, prefix) && !strings.HasPrefix(k, attempt+"|") {
			delete(a.llm, k)
		}
	}
}

// rolloutSequential is the sequential test of a builtin metric for the rollout r belongs to: the
// one an earlier run of the same rollout (same attempt, versions, template and metric) began, the
// one the store kept of it before a restart (see persist), or a new one. Called with a.mu held. Tests of the service's earlier attempts are dropped.
func (a *Analyzer) rolloutSequential(r rollout.Run, template string, m config.AnalysisMetric, alpha float64) *sequential {
	attempt, key := evidenceKey(r, template, m)
	if q, ok := a.evidence[key]; ok && q.metric == m && q.test.Alpha == alpha {
		return q
	}
	a.dropEarlier(attempt)
	delete(a.llm, key) // a reload that made the metric a builtin one
	q := a.restored(serviceOf(attempt), attempt, strings.TrimPrefix(key, attempt+"|"), m, template, alpha)
	if q == nil {
		q = newSequential(template, m, alpha, a.o.History)
	}
	a.evidence[key] = q
	return q
}

// evidenceKey is the rollout attempt r belongs to, and the key of its test of template's metric m
// in Analyzer.evidence: the attempt, the versions, the template and the metric.
func evidenceKey(r rollout.Run, template string, m config.AnalysisMetric) (attempt, key string) {
	attempt = rolloutOf(r.ID)
	return attempt, strings.Join([]string{attempt, r.Stable, r.Canary, template, m.Name}, "|")
}

// rolloutOf is the rollout a check belongs to: its ID without the step and the kind
// (service/attempt/step/kind, as rollout names checks).
func rolloutOf(checkID string) string {
	parts := strings.Split(checkID, "/")
	if len(parts) < 3 {
		return checkID
	}
	return strings.Join(parts[:len(parts)-2], "/")
}

func sequentialMetric(m config.AnalysisMetric) bool {
	return (m.Builtin != "" || m.Prometheus.Counted()) && m.SuccessCondition == "" && m.FailureCondition == ""
}

// loop looks every interval until the verdict is final or ctx ends.
func (rn *runner) loop(ctx context.Context, every time.Duration) {
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		if rn.final() {
			return
		}
		rn.look(ctx, rn.a.o.Now())
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
	}
}

func (rn *runner) final() bool {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	return rn.verdict.Phase != "" && rn.verdict.Phase != rollout.Running
}

// look takes the measurements that are due and decides.
func (rn *runner) look(ctx context.Context, now time.Time) {
	for _, q := range rn.seq {
		q.look(rn, now)
	}
	if b := rn.batch(now); b != rn.savedBatch {
		// A batch closed: keep the rollout's evidence as it stands (once per batch, the tests'
		// unit; a crash loses at most the batch in progress).
		rn.savedBatch = b
		rn.persist()
	}
	for _, t := range rn.thr {
		if t.due(now) {
			t.measure(ctx, provider.Query{Service: rn.run.Service, Stable: rn.run.Stable, Canary: rn.run.Canary,
				Version: rn.run.Canary, Metric: t.metric, Now: now})
		}
	}
	rn.judge(now)
}

// persist keeps the evidence of the rollout the run belongs to, when it judges any builtin metric
// by a rollout's shared test.
func (rn *runner) persist() {
	for _, q := range rn.seq {
		switch q.(type) {
		case *sequential, *promCount, *llmCount, *llmMean:
			rn.a.persist(rolloutOf(rn.run.ID))
			return
		}
	}
}

// exposure is what the canary has had so far: time since the run started, and requests (within
// the metrics' retention).
// The window is bounded by the metrics' retention; the error-rate tests count every request since
// the run began, so a long run takes the larger of the two.
func (rn *runner) exposure(now time.Time) (time.Duration, uint64) {
	c := rn.a.o.Metrics.Window(rn.run.Service, rn.run.Canary, rn.canaryRole(), rn.run.StartedAt, now)
	n := c.Requests
	for _, q := range rn.seq {
		switch sq := q.(type) {
		case *sequential:
			if !sq.metric.BuiltinSpec().Quantiled { // errors count every request
				n = max(n, uint64(sq.canaryN()))
			}
		case *promCount:
			n = max(n, uint64(sq.canaryN()))
		}
	}
	return now.Sub(rn.run.StartedAt), n
}

// routingFailure reports a canary that should get traffic and gets none while the stable does. It
// counts only since the weight last changed (whole slots after it), so a weight that has just risen
// is given time; and it needs 30 expected canary requests (none arrive by chance with probability
// e^-30).
func (rn *runner) routingFailure(now time.Time) string {
	w := int(rn.weight.Load())
	slot := rn.a.o.Metrics.Slot()
	since := time.Unix(0, rn.weightSince.Load()).Add(slot)
	if w <= 0 || w >= 100 || now.Sub(since) < slot {
		return ""
	}
	reg := rn.a.o.Metrics
	c := reg.Window(rn.run.Service, rn.run.Canary, rn.canaryRole(), since, now)
	b := reg.Window(rn.run.Service, rn.run.Stable, metrics.Primary, since, now)
	if c.Requests > 0 || float64(b.Requests)*float64(w)/float64(100-w) < 30 {
		return ""
	}
	return fmt.Sprintf("routing: %s got no requests at %d%% weight while %s served %d: the canary is not reachable",
		rn.run.Canary, w, rn.run.Stable, b.Requests)
}

// batch is the number of the batch a look at now belongs to: the metrics' slot, so that the
// count tests group looks as the gateway's windows do (see judge.CountTest).
func (rn *runner) batch(now time.Time) int64 {
	return now.UnixNano() / int64(rn.a.o.Metrics.Slot())
}

// setWeight records the canary's weight now, and when it last changed.
func (rn *runner) setWeight(w int, now time.Time) {
	if old := rn.weight.Swap(int64(w)); old != int64(w) {
		rn.weightSince.Store(now.UnixNano())
	}
}

// canaryRole is how the canary is measured now: its own requests, or in a shadow phase the copies.
func (rn *runner) canaryRole() metrics.Role {
	if rn.shadow.Load() {
		return metrics.Mirror
	}
	return metrics.Primary
}

// judge turns the metrics' results into the run's verdict.
func (rn *runner) judge(now time.Time) {
	age, canaryN := rn.exposure(now)
	minDur, minReq, maxWait, onInconclusive := rn.minimum()
	minimumMet := age >= minDur && canaryN >= uint64(minReq)
	var results []MetricResult
	var failed, unsafe []string
	for _, q := range rn.seq {
		r := q.result(rn, minimumMet, now)
		results = append(results, r)
		if r.Phase == Failed {
			failed = append(failed, r.Text)
		}
		if r.Safe != nil && !*r.Safe {
			unsafe = append(unsafe, r.Metric+": "+r.RuledOut)
		}
	}
	results, failed, inconclusive, thresholdsPassed := rn.thresholds(results, failed)
	// A canary that should get traffic and gets none while the baseline does: routing is broken.
	if msg := rn.routingFailure(now); msg != "" {
		failed = append(failed, msg)
	}
	// A latency metric still without its boundary has measured nothing: no pass on its behalf.
	waiting := rn.waiting()
	seqReady := len(waiting) == 0
	background := rn.run.Kind == rollout.BackgroundAnalysis
	switch {
	case len(failed) > 0:
		rn.decide(rollout.Fail, strings.Join(failed, "; "), results)
	case len(inconclusive) > 0:
		rn.decideInconclusive(onInconclusive, strings.Join(inconclusive, "; "), results)
	case !background && minimumMet && thresholdsPassed && seqReady && len(unsafe) == 0:
		rn.decide(rollout.Pass, fmt.Sprintf("%s over %s and %d canary requests; %s", passWords(results), age.Round(time.Second), canaryN, texts(results)), results)
	case !background && age >= maxWait && !seqReady:
		rn.decideInconclusive(onInconclusive, fmt.Sprintf("after %s there are still too few measurements to judge %s: too little traffic (or too few late signals) to judge",
			age.Round(time.Second), strings.Join(waiting, ", ")), results)
	case !background && age >= maxWait && minimumMet && thresholdsPassed && len(unsafe) > 0:
		rn.decideInconclusive(onInconclusive, fmt.Sprintf("after %s no regression was shown, but none was ruled out either (%s): too little traffic to pass; lower the detectable effect's demands or wait longer (maxWait)",
			age.Round(time.Second), strings.Join(unsafe, "; ")), results)
	case !background && age >= maxWait:
		rn.decideInconclusive(onInconclusive, fmt.Sprintf("after %s the canary served %d of the %d requests needed (minimum %s): too little traffic to judge",
			age.Round(time.Second), canaryN, minReq, minDur), results)
	default:
		rn.decide(rollout.Running, texts(results), results)
	}
}

// thresholds adds the threshold metrics' results, failures and inconclusive ones, and says
// whether they all passed.
func (rn *runner) thresholds(results []MetricResult, failed []string) (_ []MetricResult, _, inconclusive []string, passed bool) {
	passed = true
	for _, t := range rn.thr {
		r := t.res
		results = append(results, r)
		switch {
		case r.DryRun:
		case r.Phase == Failed || r.Phase == Error:
			failed = append(failed, r.Text)
		case r.Phase == Inconclusive:
			inconclusive = append(inconclusive, r.Text)
		}
		passed = passed && t.passed()
	}
	return results, failed, inconclusive, passed
}

// waiting names the comparative metrics that have measured nothing yet.
func (rn *runner) waiting() []string {
	var out []string
	for _, q := range rn.seq {
		if !q.ready() {
			_, name := q.id()
			out = append(out, name)
		}
	}
	return out
}

func passWords(results []MetricResult) string {
	if len(results) == 1 {
		return "no regression in " + results[0].Metric
	}
	return fmt.Sprintf("no regression in any of %d metrics", len(results))
}

func texts(results []MetricResult) string {
	var out []string
	for _, r := range results {
		out = append(out, r.Text)
	}
	return strings.Join(out, "; ")
}

// minimum combines the templates: the strictest minimum, the longest wait, and abort when any
// template says so.
func (rn *runner) minimum() (dur time.Duration, requests int, maxWait time.Duration, onInconclusive string) {
	onInconclusive = "pause"
	for _, t := range rn.templates {
		dur = max(dur, t.Minimum.Duration.Duration)
		requests = max(requests, t.Minimum.Requests)
		maxWait = max(maxWait, t.MaxWait.Duration)
		if t.OnInconclusive == "abort" {
			onInconclusive = "abort"
		}
	}
	return
}

func (rn *runner) decideInconclusive(policy, msg string, results []MetricResult) {
	if policy == "abort" {
		rn.decide(rollout.Fail, "inconclusive, and the template says onInconclusive: abort: "+msg, results)
		return
	}
	rn.decide(rollout.Inconclusive, msg, results)
}

// decide records the verdict (the first final one sticks).
func (rn *runner) decide(phase rollout.VerdictPhase, msg string, results []MetricResult) {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	if rn.verdict.Phase != "" && rn.verdict.Phase != rollout.Running {
		return
	}
	rn.verdict = rollout.Verdict{Phase: phase, Message: msg, At: rn.a.o.Now()}
	if results != nil {
		rn.verdict.Evidence = slices.Clone(results)
	}
	rn.report.Verdict, rn.report.Message, rn.report.Metrics = string(phase), msg, slices.Clone(results)
	for i := range rn.report.Metrics {
		rn.report.Metrics[i].Measurements = rn.historyOf(rn.report.Metrics[i])
	}
}

// historyOf is the measurement history of a metric, for reports (not for verdicts, which are
// stored with the rollout and stay small).
func (rn *runner) historyOf(r MetricResult) []Point {
	for _, q := range rn.seq {
		if tmpl, name := q.id(); tmpl == r.Template && name == r.Metric {
			return q.points()
		}
	}
	for _, t := range rn.thr {
		if t.template == r.Template && t.metric.Name == r.Metric {
			return slices.Clone(t.history)
		}
	}
	return nil
}

func (rn *runner) latest() (rollout.Verdict, RunReport) {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	v := rn.verdict
	if v.Phase == "" {
		v.Phase = rollout.Running
	}
	return v, rn.report
}
