package config

import "testing"

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
