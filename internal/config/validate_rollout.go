package config

import (
	"fmt"
	"slices"
	"strings"
)

// managed checks what a release and its strategy ask of a service.
func (v *validator) managed(p string, s *Service, versions map[string]bool) {
	if s.Release == "" {
		if s.Strategy != nil {
			v.addf(p+".strategy", "has no effect without release; set release to the version that should serve everyone")
		}
		return
	}
	v.versionRef(p+".release", s.Release, versions)
	if len(s.Traffic) > 0 {
		v.addf(p+".traffic", "is owned by the rollout controller when release is set; remove traffic (or remove release to set weights by hand)")
	}
	if s.Strategy != nil {
		v.strategy(p+".strategy", s.Strategy)
	}
}

func (v *validator) strategy(p string, st *Strategy) {
	kinds := []string{}
	if st.Canary != nil {
		kinds = append(kinds, "canary")
	}
	if st.BlueGreen != nil {
		kinds = append(kinds, "blueGreen")
	}
	if st.Rolling != nil {
		kinds = append(kinds, "rolling")
	}
	if st.Recreate != nil {
		kinds = append(kinds, "recreate")
	}
	switch {
	case len(kinds) == 0 && st.Shadow == nil:
		v.addf(p, "set one of canary, blueGreen, rolling, recreate or shadow")
	case len(kinds) > 1:
		v.addf(p, "sets %s; choose one", strings.Join(kinds, " and "))
	case st.Shadow != nil && len(kinds) == 1 && kinds[0] != "canary":
		v.addf(p+".shadow", "can be followed only by canary steps, not by %s", kinds[0])
	}
	v.nonNegative(p+".scaleDownDelay", st.ScaleDownDelay)
	v.nonNegative(p+".progressDeadline", st.ProgressDeadline)
	if st.AbortOnUnhealthy.err != nil {
		v.addf(p+".abortOnUnhealthy", "%v", st.AbortOnUnhealthy.err)
	}
	if c := st.Canary; c != nil {
		for i := range c.Steps {
			v.step(fmt.Sprintf("%s.canary.steps[%d]", p, i), &c.Steps[i])
		}
		if a := c.Analysis; a != nil {
			v.templateRefs(p+".canary.analysis.templates", a.Templates)
			if a.StartingStep < 0 || a.StartingStep > len(c.Steps) {
				v.addf(p+".canary.analysis.startingStep", "%d is not a step index (0..%d)", a.StartingStep, len(c.Steps))
			}
		}
	}
	if bg := st.BlueGreen; bg != nil {
		v.blueGreen(p+".blueGreen", bg)
	}
	if r := st.Rolling; r != nil && r.MaxUnavailable < 1 {
		v.addf(p+".rolling.maxUnavailable", "%d must be at least 1", r.MaxUnavailable)
	}
	if sh := st.Shadow; sh != nil {
		if sh.Percent <= 0 || sh.Percent > 100 {
			v.addf(p+".shadow.percent", "%g is not in (0..100]", sh.Percent)
		}
		v.positive(p+".shadow.duration", sh.Duration)
		v.analysisStep(p+".shadow.analysis", sh.Analysis)
	}
}

// blueGreen checks a blue-green strategy (p ends in .blueGreen).
func (v *validator) blueGreen(p string, bg *BlueGreenStrategy) {
	if bg.PreviewRoute != nil {
		v.match(p+".previewRoute", bg.PreviewRoute)
	}
	if bg.AutoPromotionSeconds < 0 {
		v.addf(p+".autoPromotionSeconds", "%d must not be negative", bg.AutoPromotionSeconds)
	}
	v.analysisStep(p+".prePromotionAnalysis", bg.PrePromotionAnalysis)
	v.analysisStep(p+".postPromotionAnalysis", bg.PostPromotionAnalysis)
	v.nonNegative(p+".scaleDownDelay", bg.ScaleDownDelay)
}

func (v *validator) step(p string, s *Step) {
	set := 0
	for _, isSet := range []bool{s.SetWeight != nil, s.Pause != nil, s.SetHeaderRoute != nil,
		s.SetMirror != nil, s.Analysis != nil, s.Gate != nil} {
		if isSet {
			set++
		}
	}
	if set != 1 {
		v.addf(p, "set exactly one of setWeight, pause, setHeaderRoute, setMirror, analysis or gate (found %d)", set)
	}
	switch {
	case s.SetWeight != nil:
		if w := *s.SetWeight; w < 0 || w > 100 {
			v.addf(p+".setWeight", "%d is not in 0..100", w)
		}
	case s.Pause != nil:
		v.nonNegative(p+".pause.duration", s.Pause.Duration)
	case s.SetHeaderRoute != nil:
		if m := s.SetHeaderRoute.Match; m != nil {
			v.match(p+".setHeaderRoute.match", m)
		}
	case s.SetMirror != nil:
		if pc := s.SetMirror.Percent; pc < 0 || pc > 100 {
			v.addf(p+".setMirror.percent", "%g is not in 0..100", pc)
		}
	case s.Analysis != nil:
		v.analysisStep(p+".analysis", s.Analysis)
	case s.Gate != nil:
		g := s.Gate
		v.endpoint(p+".gate.url", g.URL)
		v.interval(p+".gate.interval", g.Interval)
		v.positive(p+".gate.timeout", g.Timeout)
		if g.FailureLimit < 1 {
			v.addf(p+".gate.failureLimit", "%d must be at least 1", g.FailureLimit)
		}
	}
}

func (v *validator) analysisStep(p string, a *AnalysisStep) {
	if a == nil {
		return
	}
	v.templateRefs(p+".templates", a.Templates)
	v.nonNegative(p+".duration", a.Duration)
}

func (v *validator) templateRefs(p string, names []string) {
	if len(names) == 0 {
		v.addf(p, "name at least one analysis template")
	}
	for i, n := range names {
		if v.templates != nil && !v.templates[n] {
			v.addf(fmt.Sprintf("%s[%d]", p, i), "%q is not an analysis template; define it under analysis.templates (or use %q)", n, DefaultTemplateName)
		}
	}
}

func (v *validator) notifications(n *Notifications) {
	for i, w := range n.Webhooks {
		p := fmt.Sprintf("notifications.webhooks[%d]", i)
		v.endpoint(p+".url", w.URL)
		for j, e := range w.Events {
			if !slices.Contains(EventKinds, e) {
				v.addf(fmt.Sprintf("%s.events[%d]", p, j), "%q is not an event kind; choose from %s", e, joinKinds(EventKinds))
			}
		}
		if w.Retries != nil && *w.Retries < 0 {
			v.addf(p+".retries", "%d must not be negative", *w.Retries)
		}
		v.positive(p+".timeout", w.Timeout)
	}
}

func (v *validator) nonNegative(p string, d Duration) {
	switch {
	case d.err != nil:
		v.addf(p, "%v", d.err)
	case d.Duration < 0:
		v.addf(p, "%s must not be negative", d.Duration)
	}
}
