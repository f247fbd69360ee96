package analysis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/llm"
	"aviary.dev/aviary/internal/llmstats"
	"aviary.dev/aviary/internal/quality"
	"aviary.dev/aviary/internal/rollout"
)

// llmRun judges one template of LLM metrics over seconds of simulated LLM calls: per second,
// stableN calls to v1 and canaryN to v2, their TTFT drawn around the given medians.
func llmRun(t *testing.T, metric string, seconds, stableN, canaryN int, stableTTFT, canaryTTFT time.Duration, canaryStreamErr float64) (rollout.Verdict, int) {
	t.Helper()
	tr := newTraffic(t)
	stats := llmstats.New(nil)
	cfg, err := config.Parse([]byte("analysis:\n  templates:\n    - name: llm\n      metrics: [{name: " + metric + ", builtin: " + metric + ", critical: true}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := New(Options{Metrics: tr.reg, LLM: stats, Templates: cfg.Analysis.Templates, History: cfg.Analysis.History, Now: func() time.Time { return tr.now }})
	rn := newRunner(a, rollout.Run{ID: "x", Kind: rollout.BackgroundAnalysis, Service: "chat", Stable: "v1", Canary: "v2",
		Templates: []string{"llm"}, StartedAt: tr.now, Weight: 10}, a.templates)
	rnd := rand.New(rand.NewPCG(1, 2))
	call := func(version string, ttft time.Duration, streamErr float64) {
		x := llm.Exchange{Stream: true, Complete: true, Usage: llm.Usage{Known: true, Input: 100, Output: 50},
			FirstToken: time.Duration(float64(ttft) * (0.7 + 0.6*rnd.Float64()))}
		if rnd.Float64() < streamErr {
			x.StreamError, x.Complete = "overloaded", false
		}
		stats.Record(llm.Record{Service: "chat", Version: version, Exchange: x, Duration: time.Second})
	}
	for sec := range seconds {
		for range stableN {
			call("v1", stableTTFT, 0.01)
		}
		for range canaryN {
			call("v2", canaryTTFT, canaryStreamErr)
		}
		tr.now = tr.now.Add(time.Second)
		rn.look(context.Background(), tr.now)
		if v, _ := rn.latest(); v.Phase != rollout.Running {
			return v, sec
		}
	}
	v, _ := rn.latest()
	return v, -1
}

func TestASlowerFirstTokenIsRolledBack(t *testing.T) {
	v, at := llmRun(t, "ttft", 300, 18, 2, 300*time.Millisecond, 420*time.Millisecond, 0.01) // +40%
	if v.Phase != rollout.Fail || !strings.Contains(v.Message, "first tokens slower than") {
		t.Fatalf("+40%% time to first token: %s at %d: %s", v.Phase, at, v.Message)
	}
	t.Logf("rolled back at second %d: %s", at, v.Message)
}

func TestMidStreamErrorsAreRolledBack(t *testing.T) {
	v, at := llmRun(t, "streamErrorRate", 300, 18, 2, 300*time.Millisecond, 300*time.Millisecond, 0.15)
	if v.Phase != rollout.Fail || !strings.Contains(v.Message, "failed after a 200") {
		t.Fatalf("15%% stream errors: %s at %d: %s", v.Phase, at, v.Message)
	}
}

func TestAnEqualLLMCanaryIsLeftAlone(t *testing.T) {
	for _, m := range []string{"ttft", "streamErrorRate", "interTokenLatency"} {
		if v, at := llmRun(t, m, 300, 18, 2, 300*time.Millisecond, 300*time.Millisecond, 0.01); v.Phase != rollout.Running {
			t.Errorf("%s: an equal canary got %s at %d: %s", m, v.Phase, at, v.Message)
		}
	}
}

// fakeQuality stands in for package quality: cumulative evaluation totals per version.
type fakeQuality struct{ t map[string]quality.Totals }

func (f *fakeQuality) Totals(_, version string) map[string]quality.Totals {
	return map[string]quality.Totals{quality.KeyEvaluation: f.t[version]}
}

func TestAHigherRateOfABadLabelIsRolledBack(t *testing.T) {
	tr := newTraffic(t)
	cfg, err := config.Parse([]byte("analysis:\n  templates:\n    - name: q\n      metrics: [{name: hallucinations, builtin: evaluation, label: bad, critical: true}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	fq := &fakeQuality{t: map[string]quality.Totals{}}
	a := New(Options{Metrics: tr.reg, Quality: fq, Templates: cfg.Analysis.Templates, History: cfg.Analysis.History, Now: func() time.Time { return tr.now }})
	rn := newRunner(a, rollout.Run{ID: "x", Kind: rollout.BackgroundAnalysis, Service: "chat", Stable: "v1", Canary: "v2",
		Templates: []string{"q"}, StartedAt: tr.now}, a.templates)
	add := func(v string, n, bad int64) {
		tot := fq.t[v]
		if tot.Labels == nil {
			tot.Labels = map[string]int64{}
		}
		tot.N += n
		tot.Labels["bad"] += bad
		fq.t[v] = tot
	}
	var v rollout.Verdict
	for sec := range 120 {
		add("v1", 10, int64(sec%20/19)) // 5% bad
		add("v2", 2, int64(sec%3/2))    // about a third bad
		tr.now = tr.now.Add(time.Second)
		rn.look(context.Background(), tr.now)
		if v, _ = rn.latest(); v.Phase != rollout.Running {
			break
		}
	}
	if v.Phase != rollout.Fail || !strings.Contains(v.Message, `labelled "bad"`) {
		t.Fatalf("a third of answers labelled bad against 5%%: %s: %s", v.Phase, v.Message)
	}
}

// Feedback scores have a declared range (llm.feedbackScores), so their mean is judged by the
// betting test, valid for any number of values however skewed: thumbs-up (1) or down (0),
// joined to the version that served the request by the real quality package. A canary liked 70%
// of the time against the stable's 90% is rolled back; one liked as often is left alone.
func TestFeedbackIsJudgedByTheBoundedTest(t *testing.T) {
	for _, c := range []struct {
		canaryLiked float64
		want        rollout.VerdictPhase
	}{{0.7, rollout.Fail}, {0.9, rollout.Running}} {
		tr := newTraffic(t)
		cfg, err := config.Parse([]byte("analysis:\n  templates:\n    - name: q\n      metrics: [{name: thumbs, builtin: feedback, critical: true}]\n"))
		if err != nil {
			t.Fatal(err)
		}
		qual := quality.New(quality.Options{Window: time.Hour, MaxEntries: 100000, Scores: cfg.LLM.FeedbackScores,
			Now: func() time.Time { return tr.now }})
		t.Cleanup(qual.Close)
		a := New(Options{Metrics: tr.reg, Quality: qual, Templates: cfg.Analysis.Templates, History: cfg.Analysis.History, Now: func() time.Time { return tr.now }})
		rn := newRunner(a, rollout.Run{ID: "x", Kind: rollout.BackgroundAnalysis, Service: "chat", Stable: "v1", Canary: "v2",
			Templates: []string{"q"}, StartedAt: tr.now}, a.templates)
		rnd := rand.New(rand.NewPCG(3, 4))
		id := 0
		feedback := func(version string, liked float64) {
			id++
			rid := fmt.Sprint("r", id)
			qual.Served(quality.Served{RequestID: rid, Service: "chat", Version: version, At: tr.now})
			score := 0.0
			if rnd.Float64() < liked {
				score = 1
			}
			if _, _, err := qual.Feedback(quality.Feedback{RequestID: rid, Score: &score}); err != nil {
				t.Fatal(err)
			}
		}
		var v rollout.Verdict
		at := -1
		for sec := range 600 {
			for range 9 {
				feedback("v1", 0.9)
			}
			feedback("v2", c.canaryLiked)
			tr.now = tr.now.Add(time.Second)
			rn.look(context.Background(), tr.now)
			if v, _ = rn.latest(); v.Phase != rollout.Running {
				at = sec
				break
			}
		}
		_, rep := rn.latest()
		text := ""
		if len(rep.Metrics) > 0 {
			text = rep.Metrics[0].Text
		}
		if v.Phase != c.want || !strings.Contains(text, "finite-sample") {
			t.Fatalf("canary liked %g%% against 90%%: %s at second %d, want %s by the bounded test: %s", 100*c.canaryLiked, v.Phase, at, c.want, text)
		}
		t.Logf("canary liked %g%%: %s at second %d: %s", 100*c.canaryLiked, v.Phase, at, text)
	}
}
