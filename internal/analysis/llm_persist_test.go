package analysis

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"aviary.dev/aviary/internal/analysis/judge"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/llm"
	"aviary.dev/aviary/internal/llmstats"
	"aviary.dev/aviary/internal/quality"
	"aviary.dev/aviary/internal/rollout"
)

// llmTemplate judges the three kinds of LLM test: a count (time to first token past the stable's
// p90), an asymptotic mean (output tokens) and a betting mean (thumbs-up feedback, a score in 0..1).
const llmTemplate = "analysis:\n  templates:\n    - name: llm\n      metrics: [{name: ttft, builtin: ttft}, {name: tokens, builtin: outputTokens}, {name: thumbs, builtin: feedback}]\n"

// llmProcess is one aviary process judging LLM metrics: its own measurements (real llmstats and
// quality), from nothing, and the store's evidence.
type llmProcess struct {
	a     *Analyzer
	stats *llmstats.Registry
	qual  *quality.Quality
	id    int
}

func newLLMProcess(t *testing.T, tr *traffic, store EvidenceStore, logs *bytes.Buffer) *llmProcess {
	t.Helper()
	cfg, err := config.Parse([]byte(llmTemplate))
	if err != nil {
		t.Fatal(err)
	}
	p := &llmProcess{stats: llmstats.New(nil)}
	p.qual = quality.New(quality.Options{Window: time.Hour, MaxEntries: 100000, Scores: cfg.LLM.FeedbackScores, Now: func() time.Time { return tr.now }})
	t.Cleanup(p.qual.Close)
	o := Options{Metrics: tr.reg, LLM: p.stats, Quality: p.qual, Templates: cfg.Analysis.Templates, History: cfg.Analysis.History,
		Now: func() time.Time { return tr.now }, Evidence: store}
	if logs != nil {
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	p.a = New(o)
	return p
}

// call records one LLM call to version: its first token, output tokens and a thumbs up or down.
func (p *llmProcess) call(t *testing.T, now time.Time, version string, ttft time.Duration, tokens int64, liked bool) {
	p.stats.Record(llm.Record{Service: "chat", Version: version, Duration: time.Second, Exchange: llm.Exchange{Stream: true, Complete: true,
		Usage: llm.Usage{Known: true, Input: 100, Output: tokens}, FirstToken: ttft}})
	p.id++
	rid := fmt.Sprint("r", p.id)
	p.qual.Served(quality.Served{RequestID: rid, Service: "chat", Version: version, At: now})
	score := 0.0
	if liked {
		score = 1
	}
	if _, _, err := p.qual.Feedback(quality.Feedback{RequestID: rid, Score: &score}); err != nil {
		t.Fatal(err)
	}
}

func (p *llmProcess) runner(id string, startedAt time.Time) *runner {
	p.a.mu.Lock()
	defer p.a.mu.Unlock()
	return newRunner(p.a, rollout.Run{ID: id, Kind: rollout.StepAnalysis, Service: "chat", Stable: "v1", Canary: "v2",
		Templates: []string{"llm"}, StartedAt: startedAt, Weight: 10}, p.a.templates)
}

// llmSecond is one second of calls: 18 to the stable, 2 to a canary whose first tokens are 20%
// slower, whose answers are half as long again and liked 80% of the time against 90%. Integer tokens and
// 0/1 scores keep the totals' sums exact, so that two processes that record the same calls see the
// same differences look by look.
type llmSecond struct {
	ttft   [20]time.Duration
	tokens [20]int64
	liked  [20]bool
}

func drawSecond(r *rand.Rand) llmSecond {
	var s llmSecond
	for i := range 20 {
		canary := i >= 18
		ttft, tokens, liked := 300.0, 400.0, 0.9
		if canary {
			ttft, tokens, liked = 360, 600, 0.8
		}
		s.ttft[i] = time.Duration(ttft*(0.6+0.8*r.Float64())) * time.Millisecond
		s.tokens[i] = int64(math.Round(tokens * math.Exp(0.5*r.NormFloat64())))
		s.liked[i] = r.Float64() < liked
	}
	return s
}

func (p *llmProcess) serve(t *testing.T, now time.Time, s llmSecond) {
	for i := range 20 {
		v := "v1"
		if i >= 18 {
			v = "v2"
		}
		p.call(t, now, v, s.ttft[i], s.tokens[i], s.liked[i])
	}
}

// llmComparative is the run's test of the named metric.
func llmComparative(t *testing.T, rn *runner, name string) llmTest {
	t.Helper()
	for _, q := range rn.seq {
		if _, m := q.id(); m == name {
			if lq, ok := q.(llmTest); ok {
				return lq
			}
		}
	}
	t.Fatalf("the run judges no LLM metric %s", name)
	return nil
}

// evidenceOf is an LLM test's evidence now, and the values it has counted on the canary's side.
func evidenceOf(q llmTest) (float64, int64) {
	switch q := q.(type) {
	case *llmCount:
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.test.Evidence(), q.test.CanaryN
	case *llmMean:
		q.mu.Lock()
		defer q.mu.Unlock()
		c, _ := q.test.Counts()
		return q.test.Evidence(), c
	}
	panic("not an LLM test")
}

var llmMetrics = []string{"ttft", "tokens", "thumbs"}

// The LLM metrics' tests are one per rollout, as the builtins' are: the rollout's runs (its
// analysis steps, its background analysis) share them, and a new attempt starts afresh. Kept by
// the store and resumed by the next process, each decides bit for bit as the one that never
// stopped: two processes fed the same calls from the save on show the same evidence, to the bit,
// at every look. When the rollout ends, what was kept goes.
func TestLLMTestsAreOnePerRolloutAndResumedBitForBit(t *testing.T) {
	store := &memoryEvidence{}
	tr := newTraffic(t)
	p1 := newLLMProcess(t, tr, store, nil)
	step1 := p1.runner("chat/1/1/analysis", tr.now)
	r := rand.New(rand.NewPCG(5, 6))
	for range 60 {
		p1.serve(t, tr.now, drawSecond(r))
		tr.now = tr.now.Add(time.Second)
		step1.look(context.Background(), tr.now)
	}
	// The next step of the same rollout shares the tests.
	step2 := p1.runner("chat/1/2/analysis", tr.now)
	for _, m := range llmMetrics {
		q := llmComparative(t, step1, m)
		if llmComparative(t, step2, m) != q {
			t.Fatalf("%s: the rollout's second step has a test of its own; want the rollout's, shared", m)
		}
		if _, n := evidenceOf(q); n < 60 {
			t.Fatalf("%s: after a minute the test counted %d canary values: too few to mean anything", m, n)
		}
	}
	for range 60 { // the two runs look at once, as their goroutines do
		p1.serve(t, tr.now, drawSecond(r))
		tr.now = tr.now.Add(time.Second)
		var wg sync.WaitGroup
		for _, rn := range []*runner{step1, step2} {
			wg.Go(func() { rn.look(context.Background(), tr.now) })
		}
		wg.Wait()
	}
	p1.a.persist("chat/1")

	// A restart: the next process has measurements of its own, from nothing, and the store.
	p2 := newLLMProcess(t, tr, store, nil)
	resumed := p2.runner("chat/1/2/analysis", tr.now.Add(-2*time.Minute))
	for _, m := range llmMetrics {
		e1, n1 := evidenceOf(llmComparative(t, step2, m))
		e2, n2 := evidenceOf(llmComparative(t, resumed, m))
		if math.Float64bits(e1) != math.Float64bits(e2) || n1 != n2 {
			t.Fatalf("%s: resumed with evidence %v over %d canary values, saved %v over %d", m, e2, n2, e1, n1)
		}
	}
	// Both processes see the same calls from here on: the evidence stays the same, bit for bit.
	rejected := map[string]bool{}
	for sec := range 600 {
		s := drawSecond(r)
		p1.serve(t, tr.now, s)
		p2.serve(t, tr.now, s)
		tr.now = tr.now.Add(time.Second)
		step2.look(context.Background(), tr.now)
		resumed.look(context.Background(), tr.now)
		for _, m := range llmMetrics {
			q1, q2 := llmComparative(t, step2, m), llmComparative(t, resumed, m)
			e1, n1 := evidenceOf(q1)
			e2, n2 := evidenceOf(q2)
			if math.Float64bits(e1) != math.Float64bits(e2) || n1 != n2 {
				t.Fatalf("%s, second %d after the restart: evidence %v over %d canary values resumed, %v over %d in the process that kept running", m, sec, e2, n2, e1, n1)
			}
			res1 := q1.result(step2, true, tr.now)
			res2 := q2.result(resumed, true, tr.now)
			if res1.Phase != res2.Phase {
				t.Fatalf("%s, second %d: resumed %s, original %s", m, sec, res2.Phase, res1.Phase)
			}
			rejected[m] = rejected[m] || res1.Phase == Failed
		}
	}
	for _, m := range llmMetrics {
		if !rejected[m] {
			t.Errorf("%s: the canary's regression was never shown in 12 minutes: the comparison tested too little", m)
		}
	}

	p2.a.persist("chat/1")
	if got, _ := store.Evidence(); len(got["chat"]) == 0 {
		t.Fatal("the resumed process kept nothing of the rollout's LLM tests")
	}
	// A new attempt of the service starts afresh, and the old attempt's tests go.
	next := p2.runner("chat/2/1/analysis", tr.now)
	for _, m := range llmMetrics {
		if _, n := evidenceOf(llmComparative(t, next, m)); n != 0 {
			t.Fatalf("%s: a new attempt's test begins with %d canary values of the old one", m, n)
		}
	}
	p2.a.mu.Lock()
	for k := range p2.a.llm {
		if strings.HasPrefix(k, "chat/1|") {
			t.Errorf("the new attempt's runs left the old attempt's test %s", k)
		}
	}
	p2.a.mu.Unlock()

	// The rollout ends: its LLM tests go, from memory and from the store.
	p2.a.RolloutEnded("chat")
	if got, _ := store.Evidence(); len(got) != 0 {
		t.Fatalf("after the rollout ended the store keeps %s", got["chat"])
	}
	p2.a.mu.Lock()
	n := len(p2.a.llm)
	p2.a.mu.Unlock()
	if n != 0 {
		t.Fatalf("after the rollout ended the analyzer holds %d LLM tests", n)
	}
}

// What the store kept is resumed only when it is the test the metric would get now and could have
// come from a test: a corrupt count state, a mean state that is not finite, a score range changed
// since, a mean test where a count test is wanted, each start afresh with a warning that says why.
func TestInvalidSavedLLMTestsAreRefused(t *testing.T) {
	tr := newTraffic(t)
	// The questions as a process asks them: each metric and its share of the template's alpha.
	fresh := newLLMProcess(t, tr, nil, nil).runner("chat/1/1/analysis", tr.now)
	ms, alphas := map[string]config.AnalysisMetric{}, map[string]float64{}
	for _, name := range llmMetrics {
		switch q := llmComparative(t, fresh, name).(type) {
		case *llmCount:
			ms[name], alphas[name] = q.metric, q.alpha
		case *llmMean:
			ms[name], alphas[name] = q.metric, q.alpha
		}
	}
	alpha := func(name string) float64 { return alphas[name] }
	spec := func(name string) string { return specOf(ms[name], alpha(name)) }
	count := judge.NewCountTest(ms["ttft"].Margin, alpha("ttft")).State()
	count.Open = count.Open[1:]
	mean := judge.NewMeanTest(judge.Higher, ms["tokens"].Margin, alpha("tokens")).State()
	mean.SumW = -1
	bounded := judge.NewBoundedMeanTest(judge.Lower, ms["thumbs"].Margin, alpha("thumbs"), 0, 5).State()
	for _, c := range []struct {
		name string
		st   map[string]savedTest
		want []string
	}{
		{"corrupt", map[string]savedTest{
			"v1|v2|llm|ttft":   {Spec: spec("ttft"), Test: count, Boundary: time.Second},
			"v1|v2|llm|tokens": {Spec: spec("tokens"), Mean: &mean},
			"v1|v2|llm|thumbs": {Spec: spec("thumbs"), Bounded: &bounded},
		}, []string{"open log likelihood ratios", "not finite", "scores were in 0..5, now in 0..1"}},
		{"another kind", map[string]savedTest{
			"v1|v2|llm|ttft":   {Spec: spec("ttft"), Mean: &mean},
			"v1|v2|llm|tokens": {Spec: spec("tokens"), Bounded: &bounded},
			"v1|v2|llm|thumbs": {Spec: spec("thumbs"), Mean: &mean},
		}, []string{"holds a mean test", "no asymptotic mean test", "no bounded mean test"}},
	} {
		store := &memoryEvidence{}
		_ = store.PutEvidence("chat", []byte(mustJSON(t, savedRollout{Rollout: "chat/1", Tests: c.st})))
		var logs bytes.Buffer
		p := newLLMProcess(t, tr, store, &logs)
		rn := p.runner("chat/1/1/analysis", tr.now)
		for _, m := range llmMetrics {
			if e, n := evidenceOf(llmComparative(t, rn, m)); e != 1 || n != 0 {
				t.Errorf("%s, %s: resumed a test with evidence %v over %d canary values from a state no test could have written", c.name, m, e, n)
			}
		}
		for _, w := range c.want {
			if !strings.Contains(logs.String(), w) {
				t.Errorf("%s: no warning says %q:\n%s", c.name, w, logs.String())
			}
		}
		if got := strings.Count(logs.String(), "analysis evidence not resumed"); got != 3 {
			t.Errorf("%s: %d warnings, want one per metric:\n%s", c.name, got, logs.String())
		}
	}
}
