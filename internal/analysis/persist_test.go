package analysis

import (
	"context"
	"encoding/json"
	"maps"
	"sync"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/rollout"
)

// memoryEvidence is a fake of the store's evidence bucket (internal/store keeps it in bbolt and
// is tested there and, with a real file across a restart, in internal/server): a map.
type memoryEvidence struct {
	mu   sync.Mutex
	data map[string][]byte
	puts int
}

func (m *memoryEvidence) PutEvidence(service string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil {
		m.data = map[string][]byte{}
	}
	m.data[service] = append([]byte(nil), data...)
	m.puts++
	return nil
}

func (m *memoryEvidence) Evidence() (map[string][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.data), nil
}

func (m *memoryEvidence) DeleteEvidence(service string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.data, service)
	return nil
}

// errorsTest is the errors metric's shared test of a run.
func errorsTest(t *testing.T, rn *runner) *sequential {
	t.Helper()
	for _, q := range rn.seq {
		if sq, ok := q.(*sequential); ok && sq.metric.Name == "errors" {
			return sq
		}
	}
	t.Fatal("the run judges no errors metric")
	return nil
}

// A process that stops without a word (a crash) loses at most the batch in progress: the next
// process resumes each of the rollout's tests from what the last closed batch kept — its counts,
// its evidence, its latency boundary — instead of starting afresh. Once the rollout ends, what was
// kept goes; a new attempt never resumes an old one's.
func TestACrashResumesTheRolloutsTestsFromTheLastBatch(t *testing.T) {
	store := &memoryEvidence{}
	tr := newTraffic(t)
	for range 300 { // the stable's five minutes before: the latency boundaries
		tr.second("v1", 100, 0.005, 50*time.Millisecond)
		tr.now = tr.now.Add(time.Second)
	}
	run := rollout.Run{ID: "shop/1/1/analysis", Kind: rollout.StepAnalysis, Service: "shop", Stable: "v1", Canary: "v2",
		Templates: []string{"default"}, StartedAt: tr.now, Weight: 10}
	start := func(tr *traffic) (*Analyzer, *runner) {
		a := New(Options{Metrics: tr.reg, History: configHistory(t), Now: func() time.Time { return tr.now }, Evidence: store})
		a.mu.Lock()
		defer a.mu.Unlock()
		return a, newRunner(a, run, a.templates)
	}
	serve := func(tr *traffic, rn *runner, seconds int) {
		for range seconds {
			tr.second("v1", 90, 0.005, 50*time.Millisecond)
			tr.second("v2", 10, 0.012, 50*time.Millisecond)
			tr.now = tr.now.Add(time.Second)
			rn.look(context.Background(), tr.now)
		}
	}
	_, first := start(tr)
	serve(tr, first, 95) // the crash comes mid-batch
	q1 := errorsTest(t, first)
	q1.mu.Lock()
	kept := q1.test.State()
	boundary := latencyBoundary(t, first)
	q1.mu.Unlock()
	farKept := latencyTest(t, first).far.State()
	if farKept.CanaryN < 800 || farKept.Dispersion == nil || farKept.Dispersion.Clumps == nil {
		t.Fatalf("before the crash the latency's far-tail test counted %d canary requests (dispersion %+v): too little to mean anything", farKept.CanaryN, farKept.Dispersion)
	}
	if kept.CanaryN < 800 || kept.CanaryEvents == 0 {
		t.Fatalf("before the crash the errors test counted %d canary requests, %d errors: too little to mean anything", kept.CanaryN, kept.CanaryEvents)
	}

	// The crash: the next process has metrics of its own, from nothing, and the store's evidence.
	tr2 := newTraffic(t)
	tr2.now = tr.now.Add(5 * time.Second)
	a2, second := start(tr2)
	second.look(context.Background(), tr2.now) // no traffic yet
	q2 := errorsTest(t, second)
	q2.mu.Lock()
	resumed := q2.test.State()
	q2.mu.Unlock()
	if resumed.CanaryN < 800 || resumed.CanaryN > kept.CanaryN || resumed.Closed < 8 {
		t.Fatalf("after the crash the errors test has %d canary requests over %d batches; before it %d: want it resumed from the last closed batch",
			resumed.CanaryN, resumed.Closed, kept.CanaryN)
	}
	if far := latencyTest(t, second).far.State(); far.CanaryN < 800 || far.CanaryN > farKept.CanaryN || far.Closed != resumed.Closed {
		t.Fatalf("after the crash the far-tail test has %d canary requests over %d batches; before it %d: want it resumed with the latency test",
			far.CanaryN, far.Closed, farKept.CanaryN)
	}
	if got := latencyBoundary(t, second); got != boundary {
		t.Fatalf("after the crash the latency boundary is %s, before it %s: the stable's history before the rollout is gone with the process, and must come from the store", got, boundary)
	}
	serve(tr2, second, 30)
	if n := errorsTest(t, second).test.CanaryN; n < resumed.CanaryN+250 {
		t.Fatalf("after 30 s more the test counts %d canary requests, want the resumed %d and the new ones", n, resumed.CanaryN)
	}

	// The rollout ends: its evidence goes, from memory and from the store.
	a2.RolloutEnded("shop")
	if got, _ := store.Evidence(); len(got) != 0 {
		t.Fatalf("after the rollout ended the store keeps %s", got["shop"])
	}
	// A store that still has an earlier attempt's evidence (the end was not seen) resumes nothing
	// for a new attempt.
	_ = store.PutEvidence("shop", []byte(mustJSON(t, savedRollout{Rollout: "shop/1", Tests: map[string]savedTest{
		"v1|v2|default|errors": {Spec: specOf(q2.metric, q2.test.Alpha), Test: kept}}})))
	a3 := New(Options{Metrics: tr2.reg, History: configHistory(t), Now: func() time.Time { return tr2.now }, Evidence: store})
	a3.mu.Lock()
	fresh := a3.rolloutSequential(rollout.Run{ID: "shop/2/1/analysis", Service: "shop", Stable: "v1", Canary: "v2"}, "default", q2.metric, q2.test.Alpha)
	a3.mu.Unlock()
	if fresh.test.CanaryN != 0 {
		t.Fatalf("a new attempt resumed %d canary requests of the old one", fresh.test.CanaryN)
	}
}

// A test is resumed only for the same question: a metric whose margin changed in the config
// between the two processes starts afresh.
func TestAChangedMetricIsNotResumed(t *testing.T) {
	store := &memoryEvidence{}
	tr := newTraffic(t)
	run := rollout.Run{ID: "shop/1/1/analysis", Kind: rollout.StepAnalysis, Service: "shop", Stable: "v1", Canary: "v2",
		Templates: []string{"errs"}, StartedAt: tr.now, Weight: 10}
	tmpl := func(margin string) config.AnalysisTemplate {
		cfg, err := config.Parse([]byte("analysis: {templates: [{name: errs, metrics: [{name: errors, builtin: errorRate, margin: " + margin + "}]}]}\n"))
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Analysis.Templates[0]
	}
	a := New(Options{Metrics: tr.reg, History: configHistory(t), Now: func() time.Time { return tr.now }, Evidence: store, Templates: []config.AnalysisTemplate{tmpl("1.2")}})
	a.mu.Lock()
	rn := newRunner(a, run, a.templates)
	a.mu.Unlock()
	for range 30 {
		tr.second("v1", 90, 0.01, 50*time.Millisecond)
		tr.second("v2", 10, 0.01, 50*time.Millisecond)
		tr.now = tr.now.Add(time.Second)
		rn.look(context.Background(), tr.now)
	}
	a.Close()
	if store.puts == 0 {
		t.Fatal("nothing was kept")
	}
	b := New(Options{Metrics: tr.reg, History: configHistory(t), Now: func() time.Time { return tr.now }, Evidence: store, Templates: []config.AnalysisTemplate{tmpl("1.5")}})
	b.mu.Lock()
	rn = newRunner(b, run, b.templates)
	b.mu.Unlock()
	if n := errorsTest(t, rn).test.CanaryN; n != 0 {
		t.Fatalf("a test of margin 1.5 resumed one of margin 1.2 (%d canary requests)", n)
	}
}

func latencyBoundary(t *testing.T, rn *runner) time.Duration {
	t.Helper()
	return latencyTest(t, rn).boundary
}

// latencyTest is the latency metric's shared test of a run.
func latencyTest(t *testing.T, rn *runner) *sequential {
	t.Helper()
	for _, q := range rn.seq {
		if sq, ok := q.(*sequential); ok && sq.metric.Name == "latency" {
			return sq
		}
	}
	t.Fatal("the run judges no latency metric")
	return nil
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
