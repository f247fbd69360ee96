package analysis

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"aviary.dev/aviary/internal/analysis/judge"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/metrics"
	"aviary.dev/aviary/internal/rollout"
)

var _ rollout.EvidenceKeeper = (*Analyzer)(nil)

// EvidenceStore keeps the evidence of each service's rollout in flight across restarts of the
// process: one value per service, replaced whole. internal/store implements it in the same bbolt
// file as the rollout state.
type EvidenceStore interface {
	PutEvidence(service string, data []byte) error
	Evidence() (map[string][]byte, error)
	DeleteEvidence(service string) error
}

// savedRollout is what is kept of a rollout's sequential tests: enough to resume each exactly.
type savedRollout struct {
	Rollout string               `json:"rollout"` // service/attempt, as rolloutOf names it
	SavedAt time.Time            `json:"savedAt"`
	Tests   map[string]savedTest `json:"tests"` // by stable|canary|template|metric
}

// savedTest is one sequential's state. What lives only in the process's own metrics (the slots
// already read, the requests in flight) is not kept: after a restart the metrics begin afresh,
// so every request they count is new to the test.
type savedTest struct {
	// Spec fingerprints the metric and its alpha: a test is resumed only for the same question.
	Spec     string           `json:"spec"`
	Start    time.Time        `json:"start"`
	Boundary time.Duration    `json:"boundary,omitempty"`
	Effect   [2]int64         `json:"effect"`
	Units    *[2][]int64      `json:"units,omitempty"` // errors: the stable's requests and errors per cluster since the test began
	Test     judge.CountState `json:"test,omitzero"`
	// Far is a latency metric's far-tail test (absent from what an older aviary kept: the resumed
	// test then starts its far test afresh, a later start, which keeps the average valid).
	Far *judge.CountState `json:"far,omitempty"`

	// An LLM count metric's test (llmCount) is Test, its Boundary and Looks, the batches it has
	// numbered. An LLM mean metric's (llmMean) is Mean (tokens, cost, a score without a range) or
	// Bounded (a score with one), and Test is left empty.
	Looks   int64                   `json:"looks,omitempty"`
	Mean    *judge.MeanState        `json:"mean,omitempty"`
	Bounded *judge.BoundedMeanState `json:"bounded,omitempty"`
}

// specOf fingerprints what a sequential test tests.
func specOf(m config.AnalysisMetric, alpha float64) string {
	data, err := json.Marshal(struct {
		M     config.AnalysisMetric
		Alpha float64
	}{m, alpha})
	if err != nil { // a config type that does not encode: no test is ever resumed, none is wrong
		return ""
	}
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:8])
}

// state is what is kept of q. Called with q.mu held.
func (q *sequential) state(alpha float64) savedTest {
	s := savedTest{Spec: specOf(q.metric, alpha), Start: q.start, Boundary: q.boundary, Effect: q.effect, Test: q.test.State()}
	if q.far != nil {
		f := q.far.State()
		s.Far = &f
	}
	if q.unitBase != nil {
		s.Units = &[2][]int64{slices.Clone(q.units[0][:]), slices.Clone(q.units[1][:])} // encoded after q.mu is let go
	}
	return s
}

// restoreSequential resumes a sequential test from what was kept of it, as of now.
func restoreSequential(template string, m config.AnalysisMetric, alpha float64, limit int, s savedTest, now time.Time, slot time.Duration) (*sequential, error) {
	if s.Spec == "" || s.Spec != specOf(m, alpha) {
		return nil, fmt.Errorf("the metric or its alpha changed since it was saved")
	}
	t, err := judge.RestoreCountTest(s.Test)
	if err != nil {
		return nil, err
	}
	if s.Boundary < 0 || s.Effect[0] < 0 || s.Effect[1] < 0 || s.Effect[1] > s.Effect[0] {
		return nil, fmt.Errorf("its latency boundary %s or effect counts %v are out of range", s.Boundary, s.Effect)
	}
	q := newSequential(template, m, alpha, limit)
	q.test, q.start, q.boundary, q.effect = t, s.Start, s.Boundary, s.Effect
	if t.Dispersion == nil {
		t.Dispersion = &judge.Dispersion{}
	}
	q.disp = t.Dispersion
	if s.Far != nil && q.far != nil {
		f, err := judge.RestoreCountTest(*s.Far)
		if err != nil {
			return nil, fmt.Errorf("its far-tail test: %w", err)
		}
		if f.Dispersion == nil {
			f.Dispersion = judge.NewClumpDispersion()
		}
		q.far = f
	}
	// The stable's slots before now are gone with the process that counted them: the dispersion
	// goes on from the first slot of the new one, and is not warmed again.
	q.dispFed = now.Truncate(slot).Add(-slot).UnixNano()
	if u := s.Units; u != nil {
		if len(u[0]) != metrics.NumUnits || len(u[1]) != metrics.NumUnits {
			return nil, fmt.Errorf("it has %d clusters of sticky keys, and this aviary counts %d", len(u[0]), metrics.NumUnits)
		}
		// The new process counts its clusters from zero: start from minus what was counted, so
		// that the counts since the test began go on where they stood.
		q.unitBase = &[2][metrics.NumUnits]int64{}
		for i := range metrics.NumUnits {
			q.units[0][i], q.units[1][i] = u[0][i], u[1][i]
			q.unitBase[0][i], q.unitBase[1][i] = -u[0][i], -u[1][i]
		}
	}
	return q, nil
}

// state is what is kept of q.
func (q *llmCount) state() savedTest {
	q.mu.Lock()
	defer q.mu.Unlock()
	return savedTest{Spec: specOf(q.metric, q.alpha), Boundary: q.boundary, Looks: q.looks, Test: q.test.State()}
}

// restoreLLMCount resumes an LLM count metric's test from what was kept of it. The totals read at
// the last look are not kept: the new process's totals begin at zero, so its first look counts
// every call it has measured, all of them made after the test's last kept batch.
func (a *Analyzer) restoreLLMCount(template string, m config.AnalysisMetric, alpha float64, s savedTest) (*llmCount, error) {
	if s.Spec == "" || s.Spec != specOf(m, alpha) {
		return nil, fmt.Errorf("the metric or its alpha changed since it was saved")
	}
	if s.Mean != nil || s.Bounded != nil {
		return nil, fmt.Errorf("it holds a mean test, and the metric is judged by a count test")
	}
	t, err := judge.RestoreCountTest(s.Test)
	if err != nil {
		return nil, err
	}
	if s.Boundary < 0 || s.Looks < 0 || s.Looks < s.Test.Batch {
		return nil, fmt.Errorf("its boundary %s or its %d looks (its test at batch %d) are out of range", s.Boundary, s.Looks, s.Test.Batch)
	}
	q := a.newLLMCount(template, m, alpha)
	q.test, q.boundary, q.looks = t, s.Boundary, s.Looks
	return q, nil
}

// state is what is kept of q.
func (q *llmMean) state() savedTest {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := savedTest{Spec: specOf(q.metric, q.alpha)}
	switch t := q.test.(type) {
	case *judge.MeanTest:
		m := t.State()
		s.Mean = &m
	case *judge.BoundedMeanTest:
		b := t.State()
		s.Bounded = &b
	}
	return s
}

// restoreLLMMean resumes an LLM mean metric's test from what was kept of it, when it is the test
// the metric would be given now: the same kind, and for a score the same range (a range widened
// by a reload since would let in scores the kept bettors' bounds do not cover). As for
// restoreLLMCount, the new process's totals begin at zero and its first look counts them all.
func (a *Analyzer) restoreLLMMean(service, template string, m config.AnalysisMetric, alpha float64, s savedTest) (*llmMean, error) {
	if s.Spec == "" || s.Spec != specOf(m, alpha) {
		return nil, fmt.Errorf("the metric or its alpha changed since it was saved")
	}
	q := a.newLLMMean(service, template, m, alpha)
	switch t := q.test.(type) {
	case *judge.MeanTest:
		if s.Mean == nil {
			return nil, fmt.Errorf("it holds no asymptotic mean test, and the metric is judged by one (a score whose range is no longer known?)")
		}
		r, err := judge.RestoreMeanTest(*s.Mean)
		if err != nil {
			return nil, err
		}
		if r.Worse != t.Worse || r.Margin != t.Margin || r.Alpha != t.Alpha {
			return nil, fmt.Errorf("its test is of another direction, margin or alpha than the metric's")
		}
		q.test = r
	case *judge.BoundedMeanTest:
		if s.Bounded == nil {
			return nil, fmt.Errorf("it holds no bounded mean test, and the metric's scores now have a range")
		}
		r, err := judge.RestoreBoundedMeanTest(*s.Bounded)
		if err != nil {
			return nil, err
		}
		if r.Worse != t.Worse || r.Margin != t.Margin || r.Alpha != t.Alpha || r.Lo != t.Lo || r.Hi != t.Hi {
			return nil, fmt.Errorf("its scores were in %g..%g, now in %g..%g (or its direction, margin or alpha changed)", r.Lo, r.Hi, t.Lo, t.Hi)
		}
		q.test = r
	}
	return q, nil
}

// loadEvidence reads what the store kept of the rollouts in flight when the process stopped.
func (a *Analyzer) loadEvidence() {
	if a.o.Evidence == nil {
		return
	}
	all, err := a.o.Evidence.Evidence()
	if err != nil {
		a.o.Logger.Error("analysis evidence not read; rollouts in flight start their tests afresh", "err", err)
		return
	}
	for service, data := range all {
		var s savedRollout
		if err := json.Unmarshal(data, &s); err != nil || !strings.HasPrefix(s.Rollout, service+"/") {
			a.o.Logger.Error("analysis evidence unreadable; the service's rollout starts its tests afresh", "service", service, "err", err)
			continue
		}
		a.saved[service] = s
	}
}

// restored is the test key names that the store kept for attempt's rollout, resumed as of now, or
// nil. Called with a.mu held. What was kept for an earlier attempt of the service is dropped.
func (a *Analyzer) restored(service, attempt, key string, m config.AnalysisMetric, template string, alpha float64) *sequential {
	st, s, ok := a.takeSaved(service, attempt, key)
	if !ok {
		return nil
	}
	now := a.o.Now()
	q, err := restoreSequential(template, m, alpha, a.o.History, st, now, a.o.Metrics.Slot())
	if err != nil {
		a.o.Logger.Warn("analysis evidence not resumed; the test starts afresh", "rollout", attempt, "metric", m.Name, "err", err)
		return nil
	}
	a.o.Logger.Info("analysis evidence resumed after a restart", "rollout", attempt, "template", template, "metric", m.Name,
		"evidence", q.test.Evidence(), "canaryRequests", q.test.CanaryN, "savedAt", s.SavedAt)
	return q
}

// takeSaved is what the store kept of the test key names for attempt's rollout, once: from here on
// the test lives in a.evidence or a.llm. Called with a.mu held. What was kept for an earlier
// attempt of the service is dropped.
func (a *Analyzer) takeSaved(service, attempt, key string) (savedTest, savedRollout, bool) {
	s, ok := a.saved[service]
	if !ok {
		return savedTest{}, s, false
	}
	if s.Rollout != attempt {
		delete(a.saved, service)
		return savedTest{}, s, false
	}
	st, ok := s.Tests[key]
	if ok {
		delete(s.Tests, key)
	}
	return st, s, ok
}

// restoredLLM is the LLM metric's test key names that the store kept for attempt's rollout, or nil
// (see restored). Called with a.mu held.
func (a *Analyzer) restoredLLM(r rollout.Run, attempt, key string, m config.AnalysisMetric, template string, alpha float64) llmTest {
	st, s, ok := a.takeSaved(serviceOf(attempt), attempt, key)
	if !ok {
		return nil
	}
	var q llmTest
	var err error
	if llmCounted(m) {
		q, err = a.restoreLLMCount(template, m, alpha, st)
	} else {
		q, err = a.restoreLLMMean(r.Service, template, m, alpha, st)
	}
	if err != nil {
		a.o.Logger.Warn("analysis evidence not resumed; the test starts afresh", "rollout", attempt, "metric", m.Name, "err", err)
		return nil
	}
	a.o.Logger.Info("analysis evidence resumed after a restart", "rollout", attempt, "template", template, "metric", m.Name, "savedAt", s.SavedAt)
	return q
}

// persist keeps the sequential tests of a rollout (service/attempt) in the store, replacing what
// was kept. The runs of the rollout call it once per batch (the tests' unit of evidence), on
// Forget and on Close; a crash loses at most the batch in progress, and a test resumed from an
// earlier batch is as valid as one that never saw the lost looks (see the package comment).
func (a *Analyzer) persist(rolloutID string) {
	if a.o.Evidence == nil {
		return
	}
	a.saveMu.Lock()
	defer a.saveMu.Unlock()
	a.mu.Lock()
	tests := map[string]*sequential{}
	for k, q := range a.evidence {
		if rest, ok := strings.CutPrefix(k, rolloutID+"|"); ok {
			tests[rest] = q
		}
	}
	llms := map[string]llmTest{}
	for k, q := range a.llm {
		if rest, ok := strings.CutPrefix(k, rolloutID+"|"); ok {
			llms[rest] = q
		}
	}
	a.mu.Unlock()
	if len(tests)+len(llms) == 0 {
		return
	}
	s := savedRollout{Rollout: rolloutID, SavedAt: a.o.Now(), Tests: map[string]savedTest{}}
	for k, q := range tests {
		q.mu.Lock()
		s.Tests[k] = q.state(q.test.Alpha)
		q.mu.Unlock()
	}
	for k, q := range llms {
		s.Tests[k] = q.state()
	}
	data, err := json.Marshal(s)
	if err == nil {
		err = a.o.Evidence.PutEvidence(serviceOf(rolloutID), data)
	}
	if err != nil {
		a.o.Logger.Error("analysis evidence not saved; a restart now would start the rollout's tests afresh", "rollout", rolloutID, "err", err)
	}
}

// RolloutEnded implements rollout.EvidenceKeeper: service's rollout is over, so its tests and
// what the store kept of them go.
func (a *Analyzer) RolloutEnded(service string) {
	a.saveMu.Lock()
	defer a.saveMu.Unlock()
	a.mu.Lock()
	_, had := a.saved[service]
	delete(a.saved, service)
	prefix := service + "/"
	for k := range a.evidence {
		if strings.HasPrefix(k, prefix) {
			delete(a.evidence, k)
			delete(a.proms, k)
			had = true
		}
	}
	for k := range a.llm {
		if strings.HasPrefix(k, prefix) {
			delete(a.llm, k)
			had = true
		}
	}
	a.mu.Unlock()
	if !had || a.o.Evidence == nil {
		return
	}
	if err := a.o.Evidence.DeleteEvidence(service); err != nil {
		a.o.Logger.Error("analysis evidence of an ended rollout not deleted; the next rollout of the service replaces it", "service", service, "err", err)
	}
}

// persistAll keeps every rollout's tests (on Close).
func (a *Analyzer) persistAll() {
	a.mu.Lock()
	ids := map[string]bool{}
	for k := range a.evidence {
		id, _, _ := strings.Cut(k, "|")
		ids[id] = true
	}
	for k := range a.llm {
		id, _, _ := strings.Cut(k, "|")
		ids[id] = true
	}
	a.mu.Unlock()
	for id := range ids {
		a.persist(id)
	}
}

// serviceOf is the service of a rollout ID (service/attempt).
func serviceOf(rolloutID string) string {
	i := strings.LastIndex(rolloutID, "/")
	if i < 0 {
		return rolloutID
	}
	return rolloutID[:i]
}
