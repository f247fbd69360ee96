package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/experiment"
	"aviary.dev/aviary/internal/flags"
	"aviary.dev/aviary/internal/gateway"
	"aviary.dev/aviary/internal/llm"
	"aviary.dev/aviary/internal/llmstats"
	"aviary.dev/aviary/internal/quality"
	"aviary.dev/aviary/internal/telemetry"
)

func flagSet(t *testing.T) *flags.Set {
	t.Helper()
	s, err := flags.Parse([]byte(`{"flags": {
  "checkout": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"},
  "nodefault": {"state": "ENABLED", "variants": {"a": 1, "b": 2}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A flag with a release becomes the rollout flag:KEY, default variant first (the stable); what does
// not fit the flags in force is refused with the field and what to do.
func TestFlagRolloutSpecs(t *testing.T) {
	set := flagSet(t)
	svc := func(f config.ServiceFlag) []config.Service {
		return []config.Service{{Name: "shop", Flags: []config.ServiceFlag{f}}}
	}
	out, errs := flagRolloutSpecs(svc(config.ServiceFlag{Key: "checkout", Release: "on", Strategy: config.DefaultStrategy()}), set)
	if len(errs) > 0 || len(out) != 1 {
		t.Fatalf("specs %+v, errors %v", out, errs)
	}
	if s := out[0]; s.Name != "flag:checkout" || s.Release != "on" || len(s.Versions) != 2 || s.Versions[0].Name != "off" || s.Strategy == nil {
		t.Errorf("spec %+v", s)
	}
	if out, _ := flagRolloutSpecs(svc(config.ServiceFlag{Key: "checkout", Header: "X-F"}), set); len(out) != 0 {
		t.Errorf("a flag without a release is no rollout: %+v", out)
	}
	for _, c := range []struct {
		f    config.ServiceFlag
		want string
	}{
		{config.ServiceFlag{Key: "missing", Release: "on"}, "services[0].flags[0].key: flag \"missing\" is not defined"},
		{config.ServiceFlag{Key: "nodefault", Release: "a"}, "has no defaultVariant"},
		{config.ServiceFlag{Key: "checkout", Release: "maybe"}, "services[0].flags[0].release: \"maybe\" is not a variant of flag \"checkout\" (off, on)"},
	} {
		_, errs := flagRolloutSpecs(svc(c.f), set)
		if len(errs) != 1 || !strings.Contains(errs[0], c.want) {
			t.Errorf("%+v: errors %v, want one with %q", c.f, errs, c.want)
		}
	}
}

// The share a plan gives: the non-default variant's weight; a completed rollout, 100.
func TestOverlayOfPlan(t *testing.T) {
	for _, c := range []struct {
		traffic []config.Traffic
		want    *flags.Rollout
	}{
		{[]config.Traffic{{Version: "off", Weight: 100}}, nil},
		{[]config.Traffic{{Version: "off", Weight: 90}, {Version: "on", Weight: 10}}, &flags.Rollout{Variant: "on", Percent: 10}},
		{[]config.Traffic{{Version: "on", Weight: 100}}, &flags.Rollout{Variant: "on", Percent: 100}},
		{[]config.Traffic{{Version: "off", Weight: 100}, {Version: "on", Weight: 0}}, nil},
	} {
		got := overlayOf(config.Service{Traffic: c.traffic}, "off")
		if (got == nil) != (c.want == nil) || (got != nil && *got != *c.want) {
			t.Errorf("traffic %+v: overlay %+v, want %+v", c.traffic, got, c.want)
		}
	}
}

// An LLM exchange is measured under its version and under each flag variant its user had.
func TestLLMExchangesAreMeasuredPerFlagVariant(t *testing.T) {
	stats := llmstats.New(nil)
	tel, err := telemetry.New(context.Background(), telemetry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte("{}")) // the feedback settings as config defaults them
	if err != nil {
		t.Fatal(err)
	}
	q := quality.New(quality.Options{Window: cfg.LLM.FeedbackWindow.Duration, MaxEntries: cfg.LLM.FeedbackEntries, Scores: cfg.LLM.FeedbackScores})
	t.Cleanup(q.Close)
	sink := llmSink{stats: stats, quality: q, tel: tel}
	sink.Served(gateway.LLMRecord{Service: "chat", Version: "v1", Status: 200, Start: time.Now(),
		Exchange: llm.Exchange{Usage: llm.Usage{Known: true, Input: 3, Output: 7}, Complete: true},
		Flags:    []llm.FlagVariant{{Flag: "prompt-v2", Variant: "b"}}})
	if got := stats.Totals("chat", "v1", false); got.Requests != 1 {
		t.Errorf("the version's totals %+v", got)
	}
	if got := stats.Totals("flag:prompt-v2", "b", false); got.Requests != 1 {
		t.Errorf("the variant's totals %+v; want the exchange counted", got)
	}
}

// A keyed LLM exchange reaches the experiments' recorder as the unit's time to first token, under
// the service for an experiment over versions and under the flag for one over a flag's variants;
// a mirror's copy and an exchange without a key do not.
func TestLLMExchangesReachTheExperimentsUnits(t *testing.T) {
	tel, err := telemetry.New(context.Background(), telemetry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	q := quality.New(quality.Options{Window: cfg.LLM.FeedbackWindow.Duration, MaxEntries: cfg.LLM.FeedbackEntries, Scores: cfg.LLM.FeedbackScores})
	t.Cleanup(q.Close)
	reqs := experiment.NewRequestRecorder(time.Now())
	ttft := []config.ExperimentMetric{{Name: "ttft", Builtin: config.BuiltinTTFT}}
	reqs.Watch([]experiment.Running{
		{Spec: config.Experiment{Name: "versions", Service: "chat", Arms: []config.ExperimentArm{{Name: "a", Version: "v1"}, {Name: "b", Version: "v2"}}, Metrics: ttft}},
		{Spec: config.Experiment{Name: "prompts", Flag: "prompt-v2", Arms: []config.ExperimentArm{{Name: "a", Variant: "a"}, {Name: "b", Variant: "b"}}, Metrics: ttft}},
	}, func(string) string { return "chat" }, func(string, string, float64) time.Duration { return 0 })
	sink := llmSink{stats: llmstats.New(nil), quality: q, tel: tel, reqs: reqs}
	rec := gateway.LLMRecord{Service: "chat", Version: "v1", Status: 200, Start: time.Now(), Key: "user-1",
		Exchange: llm.Exchange{FirstToken: 250 * time.Millisecond, Complete: true}}
	sink.Served(rec)
	mirror := rec
	mirror.Mirror = true
	sink.Served(mirror)
	nokey := rec
	nokey.Key = ""
	sink.Served(nokey)
	got := map[string]float64{}
	for _, ev := range reqs.Flush() {
		if ev.Unit != "user-1" {
			t.Errorf("event of unit %q", ev.Unit)
		}
		got[ev.Event] += ev.Value
	}
	for _, target := range []string{"chat", "flag:prompt-v2"} {
		if got[experiment.BuiltinEvent(target, "ttft")] != 0.25 || got[experiment.BuiltinEvent(target, "first-tokens")] != 1 {
			t.Errorf("%s: flushed %v, want one first token at 0.25 s", target, got)
		}
	}
}
