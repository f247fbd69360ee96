package rollout_test

import (
	"testing"

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
		{"default strategy", nil, []string{config.DefaultTemplateName}},
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
