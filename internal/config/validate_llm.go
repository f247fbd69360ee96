package config

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"aviary.dev/aviary/internal/llm"
)

func (v *validator) llmSettings(l *LLMSettings) {
	seen := map[string]bool{}
	for i, p := range l.Prices {
		pp := fmt.Sprintf("llm.prices[%d]", i)
		if p.Model == "" {
			v.addf(pp+".model", "is required")
		} else if seen[p.Model] {
			v.addf(pp+".model", "%q has a price already", p.Model)
		}
		seen[p.Model] = true
		for _, f := range []struct {
			name string
			v    float64
		}{{"input", p.Input}, {"cachedInput", p.CachedInput}, {"cacheWrite", p.CacheWrite}, {"output", p.Output}} {
			if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
				v.addf(pp+"."+f.name, "%g must be a price per million tokens: a number, not negative", f.v)
			}
		}
	}
	known := map[string]bool{}
	for i, m := range l.Models {
		switch {
		case m == "" || m == OtherModel:
			v.addf(fmt.Sprintf("llm.models[%d]", i), "%q is not a model name (%q stands for every model not listed)", m, OtherModel)
		case known[m]:
			v.addf(fmt.Sprintf("llm.models[%d]", i), "%q is listed already", m)
		}
		known[m] = true
	}
	v.scoreRange("llm.feedbackScores", l.FeedbackScores)
	v.positive("llm.feedbackWindow", l.FeedbackWindow)
	if l.FeedbackEntries < 1 {
		v.addf("llm.feedbackEntries", "%d must be at least 1", l.FeedbackEntries)
	}
}

// scoreRange checks a range of scores: finite, 0 <= min < max.
func (v *validator) scoreRange(path string, r *ScoreRange) {
	if r == nil {
		return
	}
	finite := func(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
	if !finite(r.Min) || !finite(r.Max) || r.Min < 0 || r.Min >= r.Max {
		v.addf(path, "min %g and max %g must be finite numbers with 0 <= min < max "+
			"(the judge compares mean scores by their ratio); e.g. {min: 1, max: 5} for five stars", r.Min, r.Max)
	}
}

// OtherModel is the model label of every model the metrics do not know (see LLMSettings.Models).
const OtherModel = "other"

func (v *validator) llm(p string, s *Service) {
	if l := s.LLM; l != nil {
		if l.API != "openai" && l.API != "anthropic" && l.API != "auto" {
			v.addf(p+".llm.api", "%q must be openai, anthropic or auto", l.API)
		}
		if l.MaxRequestBytes < 0 {
			v.addf(p+".llm.maxRequestBytes", "%d must be positive", l.MaxRequestBytes)
		}
		if e := l.Evaluator; e != nil {
			ep := p + ".llm.evaluator"
			v.webURL(ep+".url", e.URL)
			if e.Percent <= 0 || e.Percent > 100 {
				v.addf(ep+".percent", "%g is not in (0..100]", e.Percent)
			}
			v.positive(ep+".timeout", e.Timeout)
			if e.MaxBytes < 1 || e.MaxInFlight < 1 {
				v.addf(ep, "maxBytes and maxInFlight must be at least 1")
			}
			v.scoreRange(ep+".scores", e.Scores)
			if e.MaxBytes > MaxEvaluatorBytes {
				v.addf(ep+".maxBytes", "%d is more than %d (16 MiB): every exchange of the service keeps this much of its "+
					"request and answer for the evaluator; send less", e.MaxBytes, MaxEvaluatorBytes)
			}
		}
	}
	for i, ver := range s.Versions {
		vl := ver.LLM
		if vl == nil {
			continue
		}
		vp := fmt.Sprintf("%s.versions[%d].llm", p, i)
		if s.LLM == nil {
			v.addf(vp, "rewrites LLM requests, but the service has no llm setting; add llm: {api: openai} (or anthropic, auto)")
		}
		if vl.SystemPromptMode != "replace" && vl.SystemPromptMode != "prepend" {
			v.addf(vp+".systemPromptMode", "%q must be replace or prepend", vl.SystemPromptMode)
		}
		v.llmParams(vp, s.LLM, vl.Params)
		if vl.Oversized != OversizedForward && vl.Oversized != OversizedRefuse {
			v.addf(vp+".oversized", "%q must be forward or refuse", vl.Oversized)
		}
	}
}

// llmParams checks a version's params against the APIs its service speaks: each must be a
// parameter of every one of them, and no two may set the same one.
func (v *validator) llmParams(vp string, l *LLM, ps map[string]any) {
	names := slices.Sorted(maps.Keys(ps))
	for i, k := range names {
		switch {
		case k == "model" || k == "messages" || k == "stream" || k == "input" || k == "system" || k == "instructions":
			v.addf(vp+".params."+k, "is not a parameter to override; use model / systemPrompt for those")
			continue
		case l == nil || llm.APIsOf(l.API) == nil:
			continue // the service's llm setting is reported already
		}
		if err := llm.CheckParam(l.API, k); err != nil {
			v.addf(vp+".params."+k, "%v", err)
		}
		for _, other := range names[:i] {
			if llm.SameParam(k, other) {
				v.addf(vp+".params."+k, "sets the same parameter as %s; keep one", other)
			}
		}
	}
}

func (v *validator) telemetry(t *Telemetry) {
	o := t.OTLP
	if o == nil {
		return
	}
	v.endpoint("telemetry.otlp.endpoint", o.Endpoint)
	if o.Interval.err == nil && o.Interval.Duration < time.Second {
		v.addf("telemetry.otlp.interval", "%s is too short; export at most once a second", o.Interval.Duration)
	}
	v.positive("telemetry.otlp.interval", o.Interval)
}
