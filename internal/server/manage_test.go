package server

import (
	"testing"

	"aviary.dev/aviary/internal/api"
	"aviary.dev/aviary/internal/config"
)

// A service with no release has no strategy; `aviary rollout start` gives it the default one, with
// the default strategy's timings, as a file naming a release would have got.
func TestAReleaseStartedThroughTheAPIGetsTheDefaultStrategyWithItsTimings(t *testing.T) {
	cfg, err := config.Parse([]byte(`
services:
  - name: shop
    versions:
      - {name: v1, endpoints: ["http://127.0.0.1:1"]}
`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := released(cfg.Services[0], api.StartRequest{Version: "v2", Endpoints: []string{"http://127.0.0.1:2"}})
	if err != nil {
		t.Fatal(err)
	}
	want, err := config.Parse([]byte(`
services:
  - name: shop
    release: v2
    versions:
      - {name: v1, endpoints: ["http://127.0.0.1:1"]}
      - {name: v2, endpoints: ["http://127.0.0.1:2"]}
`))
	if err != nil {
		t.Fatal(err)
	}
	st, wst := got.Strategy, want.Services[0].Strategy
	if st == nil {
		t.Fatal("no strategy; want the default one")
	}
	if st.AbortOnUnhealthy != wst.AbortOnUnhealthy || st.ProgressDeadline != wst.ProgressDeadline || st.ScaleDownDelay != wst.ScaleDownDelay {
		t.Errorf("abortOnUnhealthy %v, progressDeadline %v, scaleDownDelay %v; want the defaults %v, %v, %v",
			st.AbortOnUnhealthy.Duration, st.ProgressDeadline.Duration, st.ScaleDownDelay.Duration,
			wst.AbortOnUnhealthy.Duration, wst.ProgressDeadline.Duration, wst.ScaleDownDelay.Duration)
	}
	if serviceHash(got) != serviceHash(want.Services[0]) {
		t.Errorf("the started service differs from the same service written with its release:\n%+v\nwant\n%+v", got, want.Services[0])
	}
}
