package config

import "testing"

// TestBuiltinTableIsWhole: every listed builtin has a row, every row is listed, and a row's
// default margin passes its own validation, so a new builtin cannot be half added.
func TestBuiltinTableIsWhole(t *testing.T) {
	if len(Builtins) != len(builtinSpecs) {
		t.Errorf("Builtins lists %d metrics, the table has %d rows", len(Builtins), len(builtinSpecs))
	}
	for _, b := range Builtins {
		spec, ok := b.Spec()
		if !ok {
			t.Errorf("builtin %q has no row in the table", b)
			continue
		}
		if spec.Margin <= 0 || (spec.Test == ScoreTest) != (spec.Margin < 1) {
			t.Errorf("builtin %q: default margin %g does not fit its test", b, spec.Margin)
		}
		if spec.Slowdown && !spec.Quantiled {
			t.Errorf("builtin %q takes a slowdown but has no quantile", b)
		}
	}
	if _, ok := Builtin("").Spec(); ok {
		t.Error("the empty name has a row")
	}
}

// TestWrittenZeroStrategyDurationsAreTheDefaults: the rollout core reads scaleDownDelay,
// abortOnUnhealthy and progressDeadline as they are, so the config turns a written zero into the
// default (as the core once did itself), and leaves a negative abortOnUnhealthy (never abort).
func TestWrittenZeroStrategyDurationsAreTheDefaults(t *testing.T) {
	cfg, err := Parse([]byte(`
services:
  - name: shop
    versions: [{name: v1, endpoints: ["http://127.0.0.1:1"]}]
    release: v1
    strategy: {scaleDownDelay: 0s, abortOnUnhealthy: 0s, progressDeadline: 0s, recreate: {}}
  - name: cart
    match: {pathPrefix: /cart}
    versions: [{name: v1, endpoints: ["http://127.0.0.1:1"]}]
    release: v1
    strategy: {abortOnUnhealthy: -1s, recreate: {}}
`))
	if err != nil {
		t.Fatal(err)
	}
	st := cfg.Services[0].Strategy
	if st.ScaleDownDelay != DefaultScaleDownDelay || st.AbortOnUnhealthy != DefaultAbortOnUnhealthy || st.ProgressDeadline != DefaultProgressDeadline {
		t.Errorf("written zeros became %s, %s, %s; want the defaults %s, %s, %s", st.ScaleDownDelay.Duration, st.AbortOnUnhealthy.Duration,
			st.ProgressDeadline.Duration, DefaultScaleDownDelay.Duration, DefaultAbortOnUnhealthy.Duration, DefaultProgressDeadline.Duration)
	}
	if got := cfg.Services[1].Strategy.AbortOnUnhealthy.Duration; got >= 0 {
		t.Errorf("abortOnUnhealthy -1s became %s; a negative value turns the watch off", got)
	}
}
