package rollout_test

import (
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/rollout"
)

func TestEveryRolloutGetsTheDefaultAnalysisUnlessTurnedOff(t *testing.T) {
	off := false
	for _, tc := range []struct {
		name string
		st   *config.Strategy
		want []string
	}{
		{"default strategy", config.DefaultStrategy(), []string{config.DefaultTemplateName}},
		{"recreate", &config.Strategy{Recreate: &config.RecreateStrategy{}}, []string{config.DefaultTemplateName}},
		{"turned off", &config.Strategy{Recreate: &config.RecreateStrategy{}, DefaultAnalysis: &off}, nil},
		{"own background analysis", &config.Strategy{Canary: &config.CanaryStrategy{
			Steps:    []config.Step{{Pause: &config.PauseStep{}}},
			Analysis: &config.BackgroundAnalysis{Templates: []string{"slo"}}}}, []string{"slo"}},
	} {
		_, steps := rollout.Compile(tc.st)
		if got := steps[0].Background; len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
			t.Errorf("%s: background analysis of the first step = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestStartRollsOutTheReleaseAgainAfterAnUndo(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{defaultAnalysis: false, canary: {steps: [{setWeight: 20}, {pause: {}}]}}`)
	r.release("v2").expect(rollout.Paused, 20, 1)
	r.do(rollout.Promote).expect(rollout.Healthy, 0, 2)
	r.do(rollout.Undo).expect(rollout.Healthy, 0, 2)
	if r.state.Stable != "v1" {
		t.Fatalf("after undo, stable %s", r.state.Stable)
	}
	r.conflict(rollout.Command{Kind: rollout.StartCmd, Version: "v1"}, "already serves")
	r.command(rollout.Command{Kind: rollout.StartCmd, Version: "v2", By: "alice"}).expect(rollout.Paused, 20, 1)
	r.conflict(rollout.Command{Kind: rollout.StartCmd, Version: "v3"}, "in flight")
}

func TestAnInconclusiveBackgroundAnalysisPausesOnceAndPromoteGoesOnWithoutIt(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{canary: {steps: [{setWeight: 20}, {pause: {duration: 1m}}, {setWeight: 50}, {pause: {duration: 1m}}]}}`)
	r.release("v2").expect(rollout.Paused, 20, 1)
	r.background(rollout.Inconclusive).tick(time.Second)
	if !hasPauseReason(r.state, rollout.InconclusiveReason) {
		t.Fatalf("an inconclusive background analysis must pause for a person: %+v", r.state.PauseReasons)
	}
	r.do(rollout.Promote)
	if len(r.state.Checks) != 0 {
		t.Fatalf("promote goes on without the inconclusive background analysis: %+v", r.state.Checks)
	}
}

func hasPauseReason(s rollout.State, kind string) bool {
	for _, p := range s.PauseReasons {
		if p.Kind == kind {
			return true
		}
	}
	return false
}
