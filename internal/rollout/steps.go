package rollout

import (
	"fmt"
	"strings"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/redact"
)

// Step is one step of a rollout as the controller runs it. Every strategy compiles to a list of
// these, kept in the State, so that a config change in the middle of a rollout cannot shift the
// steps under it (the new strategy applies from the next rollout, or after `rollout restart`).
type Step struct {
	Kind      StepKind         `json:"kind"`
	Text      string           `json:"text"` // the step in words, for people
	Weight    int              `json:"weight,omitempty"`
	Duration  time.Duration    `json:"duration,omitempty"`
	Match     *config.Match    `json:"match,omitempty"`
	Percent   float64          `json:"percent,omitempty"`
	Templates []string         `json:"templates,omitempty"`
	Gate      *config.GateStep `json:"gate,omitempty"`
	// Background starts the strategy's background analysis when this step begins.
	Background []string `json:"background,omitempty"`
}

// StepKind is what a step does. Step kinds and command kinds share the package's names, hence
// the Cmd suffix on the commands that would collide (PauseCmd, StartCmd).
type StepKind string

// Step kinds. The first four take effect at once; the others wait.
const (
	SetWeight StepKind = "setWeight"
	SetRoute  StepKind = "setHeaderRoute"
	SetMirror StepKind = "setMirror"
	Switch    StepKind = "switch" // blue-green: all traffic to the new version at once
	Pause     StepKind = "pause"
	Analysis  StepKind = "analysis"
	Gate      StepKind = "gate"
	WaitReady StepKind = "waitReady" // every endpoint of the new version is ready
	RollStep  StepKind = "roll"      // rolling: endpoint by endpoint
)

// StrategyKind names the strategy a rollout was compiled from.
type StrategyKind string

// Strategy kinds, as State.Strategy records them.
const (
	StrategyCanary       StrategyKind = "canary"
	StrategyShadow       StrategyKind = "shadow"
	StrategyShadowCanary StrategyKind = "shadow+canary"
	StrategyBlueGreen    StrategyKind = "blueGreen"
	StrategyRolling      StrategyKind = "rolling"
	StrategyRecreate     StrategyKind = "recreate"
)

func (s Step) instant() bool {
	switch s.Kind {
	case SetWeight, SetRoute, SetMirror, Switch:
		return true
	}
	return false
}

// Compile turns a strategy into steps. The last step leaves the new version at its final share;
// completion (the new version becomes stable at 100%) follows the last step.
func Compile(st *config.Strategy) (kind StrategyKind, steps []Step) {
	if st == nil { // config gives every service with a release a strategy
		return "", nil
	}
	if sh := st.Shadow; sh != nil {
		kind = StrategyShadow
		steps = append(steps, mirrorStep(sh.Percent), pauseStep(sh.Duration.Duration))
		if a := sh.Analysis; a != nil {
			steps = append(steps, analysisStep(a))
		}
		steps = append(steps, mirrorStep(0))
		if st.Canary == nil {
			return kind, append(steps, weightStep(100))
		}
		kind = StrategyShadowCanary
	}
	switch {
	case st.Canary != nil:
		if kind == "" {
			kind = StrategyCanary
		}
		first := len(steps)
		for _, s := range st.Canary.Steps {
			steps = append(steps, canaryStep(s))
		}
		if a := st.Canary.Analysis; a != nil {
			at := first + a.StartingStep
			if at >= len(steps) { // from the end: nothing left to watch but the switch to 100%
				steps = append(steps, weightStep(100))
			}
			steps[at].Background = a.Templates
		}
	case st.BlueGreen != nil:
		kind = StrategyBlueGreen
		bg := st.BlueGreen
		if bg.PreviewRoute != nil {
			steps = append(steps, Step{Kind: SetRoute, Match: bg.PreviewRoute, Text: "preview: " + matchText(bg.PreviewRoute)})
		}
		if a := bg.PrePromotionAnalysis; a != nil {
			steps = append(steps, analysisStep(a))
		}
		steps = append(steps, pauseStep(time.Duration(bg.AutoPromotionSeconds)*time.Second))
		steps = append(steps, Step{Kind: Switch, Weight: 100, Text: "switch all traffic"})
		if a := bg.PostPromotionAnalysis; a != nil {
			steps = append(steps, analysisStep(a))
		}
	case st.Rolling != nil:
		kind = StrategyRolling
		steps = append(steps, Step{Kind: RollStep, Weight: st.Rolling.MaxUnavailable,
			Text: fmt.Sprintf("replace endpoints, %d at a time, as they become ready", st.Rolling.MaxUnavailable)})
	case st.Recreate != nil:
		kind = StrategyRecreate
		steps = append(steps, Step{Kind: WaitReady, Text: "wait until every endpoint is ready"}, weightStep(100))
	}
	ownBackground := st.Canary != nil && st.Canary.Analysis != nil
	if len(steps) > 0 && !ownBackground && (st.DefaultAnalysis == nil || *st.DefaultAnalysis) {
		// Safe without configuration: the default analysis watches every rollout from its start.
		steps[0].Background = []string{config.DefaultTemplateName}
	}
	return kind, steps
}

func canaryStep(s config.Step) Step {
	switch {
	case s.SetWeight != nil:
		return weightStep(*s.SetWeight)
	case s.Pause != nil:
		return pauseStep(s.Pause.Duration.Duration)
	case s.SetHeaderRoute != nil:
		m := s.SetHeaderRoute.Match
		if m == nil {
			return Step{Kind: SetRoute, Text: "remove the segment route"}
		}
		return Step{Kind: SetRoute, Match: m, Text: "route " + matchText(m)}
	case s.SetMirror != nil:
		return mirrorStep(s.SetMirror.Percent)
	case s.Analysis != nil:
		return analysisStep(s.Analysis)
	case s.Gate != nil:
		return Step{Kind: Gate, Gate: s.Gate, Text: "gate " + redact.URL(s.Gate.URL)}
	}
	return Step{Kind: Pause, Text: "pause"} // unreachable for a validated config
}

func weightStep(w int) Step {
	return Step{Kind: SetWeight, Weight: w, Text: fmt.Sprintf("setWeight %d", w)}
}

func mirrorStep(p float64) Step {
	if p == 0 {
		return Step{Kind: SetMirror, Text: "stop mirroring"}
	}
	return Step{Kind: SetMirror, Percent: p, Text: fmt.Sprintf("mirror %g%%", p)}
}

func pauseStep(d time.Duration) Step {
	if d <= 0 {
		return Step{Kind: Pause, Text: "pause until promoted"}
	}
	return Step{Kind: Pause, Duration: d, Text: "pause " + d.String()}
}

func analysisStep(a *config.AnalysisStep) Step {
	return Step{Kind: Analysis, Templates: a.Templates, Duration: a.Duration.Duration,
		Text: "analysis " + strings.Join(a.Templates, ", ")}
}

// matchText renders a match rule for people: header X-Employee=true.
func matchText(m *config.Match) string {
	var parts []string
	key := func(kind string, k *config.KeyMatch) {
		if k != nil {
			parts = append(parts, kind+" "+k.Name+stringMatchText(k.StringMatch))
		}
	}
	key("header", m.Header)
	key("cookie", m.Cookie)
	key("query", m.Query)
	if m.Path != nil {
		parts = append(parts, "path"+stringMatchText(*m.Path))
	}
	return strings.Join(parts, " and ")
}

func stringMatchText(s config.StringMatch) string {
	switch {
	case s.Prefix != "":
		return " starts with " + s.Prefix
	case s.Regex != "":
		return " ~ " + s.Regex
	}
	return "=" + s.Value
}
