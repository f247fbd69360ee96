package rollout_test

import (
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/rollout"
)

const blueGreen = `{blueGreen: {previewRoute: {header: {name: X-Preview, value: "1"}},
	prePromotionAnalysis: {templates: [smoke]}, autoPromotionSeconds: 30,
	postPromotionAnalysis: {templates: [errors], duration: 2m}}}`

func TestBlueGreenPreviewAnalysisAutoPromotionAndPostAnalysis(t *testing.T) {
	t.Parallel()
	r := newRun(t, blueGreen)
	r.release("v2").expect(rollout.Progressing, 0, 1).serves("v1=100 v2=0")
	if svc := r.served(); len(svc.Routes) != 1 || svc.Routes[0].Version != "v2" || svc.Routes[0].Match.Header.Name != "X-Preview" {
		t.Fatalf("preview route not served: %+v", svc.Routes)
	}
	if r.stepCheck().Templates[0] != "smoke" {
		t.Fatalf("pre-promotion analysis: %+v", r.stepCheck())
	}
	r.verdict(rollout.Pass).tick(time.Second).expect(rollout.Paused, 0, 2).saw("AnalysisPassed")
	r.tick(29*time.Second).expect(rollout.Paused, 0, 2).quiet()
	r.tick(time.Second).expect(rollout.Progressing, 100, 4).serves("v1=0 v2=100")
	if !r.state.Switched || r.stepCheck().Templates[0] != "errors" {
		t.Fatalf("after the switch: switched %v, checks %+v", r.state.Switched, r.state.Checks)
	}
	r.verdict(rollout.Pass).tick(time.Second).expect(rollout.Healthy, 0, 5).versions("v2", "").serves("v2=100")
}

func TestBlueGreenManualPromote(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{blueGreen: {}}`)
	r.release("v2").expect(rollout.Paused, 0, 0).serves("v1=100 v2=0")
	r.tick(time.Hour).expect(rollout.Paused, 0, 0).quiet() // autoPromotionSeconds 0: waits for a person
	r.do(rollout.Promote).expect(rollout.Healthy, 0, 2).versions("v2", "").saw("Promoted", "Completed")
}

// Aborting after the switch sends every request back to the old version at once.
func TestBlueGreenAbortAfterSwitchIsInstant(t *testing.T) {
	t.Parallel()
	r := newRun(t, blueGreen)
	r.release("v2").verdict(rollout.Pass).tick(time.Second).tick(30*time.Second).expect(rollout.Progressing, 100, 4)
	r.do(rollout.Abort).expect(rollout.Degraded, 0, 4).serves("v1=100 v2=0").saw("Aborted")
	if r.state.Switched || r.state.Route != nil {
		t.Fatalf("abort must undo the switch and the preview: %+v", r.state)
	}
}

func TestBlueGreenPostPromotionFailureSwitchesBack(t *testing.T) {
	t.Parallel()
	r := newRun(t, blueGreen)
	r.release("v2").verdict(rollout.Pass).tick(time.Second).tick(30*time.Second).expect(rollout.Progressing, 100, 4)
	r.verdict(rollout.Fail).tick(time.Second).expect(rollout.Degraded, 0, 4).saw("AnalysisFailed").serves("v1=100 v2=0")
}

func TestBlueGreenScaleDownDelay(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{blueGreen: {scaleDownDelay: 90s}}`)
	r.release("v2").do(rollout.Promote).expect(rollout.Healthy, 0, 2)
	if got := r.state.WarmUntil.Sub(r.now); got != 90*time.Second {
		t.Errorf("blueGreen.scaleDownDelay: v1 warm for %s, want 90s", got)
	}
}

// rolling admits the new version's endpoints maxUnavailable at a time; the health source reports
// what the gateway serves, so only admitted endpoints can be ready.
func TestRollingAdmitsEndpointsAsTheyBecomeReady(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{rolling: {}}`) // maxUnavailable 1; v1 has 2 endpoints, v2 has 3
	r.setHealth("v2", rollout.Health{Endpoints: 1, Available: 1})
	r.release("v2").expect(rollout.Progressing, 0, 0).serves("v1=100 v2=0")
	assertEndpoints(t, r.served(), "v1", 2, "v2", 1)

	r.setHealth("v2", rollout.Health{Endpoints: 1, Available: 1, Ready: 1}).tick(2*time.Second).expect(rollout.Progressing, 33, 0).saw("Rolled")
	assertEndpoints(t, r.served(), "v1", 2, "v2", 2) // one ready of three: 2*1/3 = 0 of v1's withdrawn
	r.tick(2*time.Second).expect(rollout.Progressing, 33, 0).quiet()

	r.setHealth("v2", rollout.Health{Endpoints: 2, Available: 2, Ready: 2}).tick(2*time.Second).expect(rollout.Progressing, 67, 0)
	assertEndpoints(t, r.served(), "v1", 1, "v2", 3)

	r.setHealth("v2", rollout.Health{Endpoints: 3, Available: 3, Ready: 3}).tick(2*time.Second).expect(rollout.Healthy, 0, 1).versions("v2", "")
	assertEndpoints(t, r.served(), "v2", 3, "v1", 2) // v1 whole again, and warm
	r.serves("v2=100")
}

func TestRollingMaxUnavailable(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{rolling: {maxUnavailable: 2}}`)
	r.setHealth("v2", rollout.Health{Endpoints: 2, Available: 2})
	r.release("v2").expect(rollout.Progressing, 0, 0)
	assertEndpoints(t, r.served(), "v1", 2, "v2", 2)
	r.setHealth("v2", rollout.Health{Endpoints: 2, Available: 2, Ready: 1}).tick(time.Second).expect(rollout.Progressing, 33, 0)
	assertEndpoints(t, r.served(), "v1", 2, "v2", 2) // the batch is not done: nothing more admitted
	r.setHealth("v2", rollout.Health{Endpoints: 2, Available: 2, Ready: 2}).tick(time.Second).expect(rollout.Progressing, 67, 0)
	assertEndpoints(t, r.served(), "v1", 1, "v2", 3)
	r.setHealth("v2", rollout.Health{Endpoints: 3, Available: 3, Ready: 3}).tick(time.Second).expect(rollout.Healthy, 0, 1)
}

// The old version keeps an endpoint until the new one is all ready, however many it has.
func TestRollingKeepsAStableEndpointUntilDone(t *testing.T) {
	t.Parallel()
	svc := shopService(t, `{rolling: {maxUnavailable: 10}}`)
	svc.Versions[1].Endpoints = svc.Versions[1].Endpoints[:2] // v2: 2 endpoints, v1: 2
	r := newRunOf(t, svc)
	r.setHealth("v2", rollout.Health{Endpoints: 2, Available: 2, Ready: 1}).release("v2").expect(rollout.Progressing, 50, 0)
	assertEndpoints(t, r.served(), "v1", 1, "v2", 2)
	if r.state.Withdrawn != 1 {
		t.Errorf("withdrawn %d, want 1", r.state.Withdrawn)
	}
}

func assertEndpoints(t *testing.T, svc config.Service, want ...any) {
	t.Helper()
	var got []any
	for _, v := range svc.Versions {
		got = append(got, v.Name, len(v.Endpoints))
	}
	if len(got) != len(want) {
		t.Fatalf("served versions and endpoint counts %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("served versions and endpoint counts %v, want %v", got, want)
		}
	}
}

func TestRecreateWaitsForEveryEndpoint(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{recreate: {}}`)
	r.setHealth("v2", rollout.Health{Endpoints: 3, Available: 3, Ready: 2})
	r.release("v2").expect(rollout.Progressing, 0, 0).serves("v1=100 v2=0")
	r.tick(time.Minute).expect(rollout.Progressing, 0, 0).quiet()
	r.up("v2").tick(time.Second).expect(rollout.Healthy, 0, 2).versions("v2", "").saw("Completed").serves("v2=100")
}

// Endpoints that have not passed a health check yet are not ready: recreate waits for them, up to
// the progress deadline (10m by default).
func TestRecreateWaitsUpToTheProgressDeadline(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{recreate: {}}`)
	r.setHealth("v2", rollout.Health{Endpoints: 3, Available: 3})
	r.release("v2").tick(10*time.Minute-time.Second).expect(rollout.Progressing, 0, 0)
	r.tick(time.Second).expect(rollout.Degraded, 0, 0).saw("Aborted")
	if !strings.Contains(r.state.Message, "progressDeadline") || !strings.Contains(r.state.Message, "0 of 3 endpoints of v2 ready") {
		t.Errorf("message %q", r.state.Message)
	}
}

// A new version that is down while it takes no traffic yet (still starting) is the progress
// deadline's business, not abortOnUnhealthy's.
func TestRecreateStartingCanaryIsNotAbortedForBeingDown(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{progressDeadline: 2m, recreate: {}}`)
	r.down("v2").release("v2").tick(time.Second).tick(time.Minute).expect(rollout.Progressing, 0, 0)
	r.tick(time.Minute).expect(rollout.Degraded, 0, 0)
}

// Progress resets the progress deadline: a rolling update may take longer than it in all, as
// long as no single wait does.
func TestRollingProgressDeadline(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{progressDeadline: 1m, rolling: {}}`)
	r.setHealth("v2", rollout.Health{Endpoints: 1, Available: 1})
	r.release("v2").tick(50 * time.Second)
	r.setHealth("v2", rollout.Health{Endpoints: 1, Available: 1, Ready: 1}).tick(time.Second).expect(rollout.Progressing, 33, 0)
	r.setHealth("v2", rollout.Health{Endpoints: 2, Available: 2, Ready: 1}).tick(59*time.Second).expect(rollout.Progressing, 33, 0)
	r.tick(time.Second).expect(rollout.Degraded, 0, 0)
	if !strings.Contains(r.state.Message, "1 of 3 endpoints of v2 admitted") && !strings.Contains(r.state.Message, "2 of 3 endpoints of v2 admitted") {
		t.Errorf("message %q", r.state.Message)
	}
}

// A person's pause stops the clock of nothing but the step: a paused rolling update is not
// aborted for making no progress while it is held.
func TestRollingUserPauseIsNoLackOfProgress(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{progressDeadline: 1m, rolling: {}}`)
	r.setHealth("v2", rollout.Health{Endpoints: 1, Available: 1})
	r.release("v2").tick(30*time.Second).do(rollout.PauseCmd).tick(time.Hour).expect(rollout.Paused, 0, 0)
	// Resume gives back the time that was left, as it does for a timed pause.
	r.do(rollout.Resume).expect(rollout.Progressing, 0, 0)
	r.tick(29*time.Second).expect(rollout.Progressing, 0, 0)
	r.tick(time.Second).expect(rollout.Degraded, 0, 0)
}

func TestShadowMirrorsThenSwitches(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{shadow: {duration: 1m}}`)
	r.release("v2").expect(rollout.Paused, 0, 1)
	if m := r.served().Mirror; m == nil || m.Version != "v2" || m.Percent != 100 {
		t.Fatalf("shadow mirrors 100%% by default; served mirror %+v", m)
	}
	r.serves("v1=100 v2=0")
	r.tick(time.Minute).expect(rollout.Healthy, 0, 4).versions("v2", "").serves("v2=100")
	if r.served().Mirror != nil || r.state.Strategy != "shadow" {
		t.Fatalf("mirror left after shadow: %+v (strategy %s)", r.served().Mirror, r.state.Strategy)
	}
}

func TestShadowWithAnalysis(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{shadow: {percent: 20, duration: 30s, analysis: {templates: [diff]}}}`)
	r.release("v2").tick(30*time.Second).expect(rollout.Progressing, 0, 2)
	if r.state.Mirror != 20 {
		t.Fatalf("mirror %g during the shadow analysis, want 20", r.state.Mirror)
	}
	r.verdict(rollout.Pass).tick(time.Second).expect(rollout.Healthy, 0, 5)
}

func TestShadowThenCanary(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{shadow: {percent: 50, duration: 30s}, canary: {steps: [{setWeight: 10}, {pause: {}}], analysis: {templates: [errors]}}}`)
	r.release("v2").expect(rollout.Paused, 0, 1)
	if r.state.Strategy != "shadow+canary" || r.state.Mirror != 50 || len(r.state.Checks) != 0 {
		t.Fatalf("strategy %s, mirror %g, checks %+v", r.state.Strategy, r.state.Mirror, r.state.Checks)
	}
	r.tick(30*time.Second).expect(rollout.Paused, 10, 4)
	if r.state.Mirror != 0 {
		t.Fatalf("mirroring must stop when the canary begins: %g", r.state.Mirror)
	}
	// The canary's background analysis counts its startingStep from the canary's first step.
	if bg := r.check(rollout.BackgroundAnalysis); bg.Step != 3 {
		t.Fatalf("background analysis starts at step %d, want 3 (the canary's first)", bg.Step)
	}
	r.do(rollout.Promote).expect(rollout.Healthy, 0, 5)
}

func TestCompile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		strategy string
		kind     rollout.StrategyKind
		steps    string // kinds, then the texts of the steps
	}{
		{"null", "canary", "setWeight 10 | pause 30s | setWeight 50 | analysis default"},
		{`{canary: {steps: [{setWeight: 5}, {pause: {}}, {setHeaderRoute: {match: {cookie: {name: beta, prefix: "y"}}}}, {setHeaderRoute: {}},
			{setMirror: {percent: 12.5}}, {analysis: {templates: [a, b]}}, {gate: {url: "http://127.0.0.1:1/g"}}]}}`, "canary",
			"setWeight 5 | pause until promoted | route cookie beta starts with y | remove the segment route | mirror 12.5% | analysis a, b | gate http://127.0.0.1:1/g"},
		{`{canary: {steps: [{setWeight: 5}], analysis: {templates: [e], startingStep: 1}}}`, "canary", "setWeight 5 | setWeight 100"},
		{`{blueGreen: {previewRoute: {path: {regex: "/beta/.*"}}, autoPromotionSeconds: 60}}`, "blueGreen",
			"preview: path ~ /beta/.* | pause 1m0s | switch all traffic"},
		{`{rolling: {maxUnavailable: 2}}`, "rolling", "replace endpoints, 2 at a time, as they become ready"},
		{`{recreate: {}}`, "recreate", "wait until every endpoint is ready | setWeight 100"},
		{`{shadow: {duration: 1m, analysis: {templates: [diff]}}}`, "shadow", "mirror 100% | pause 1m0s | analysis diff | stop mirroring | setWeight 100"},
		{`{shadow: {duration: 1m}, canary: {steps: [{setWeight: 30}]}}`, "shadow+canary", "mirror 100% | pause 1m0s | stop mirroring | setWeight 30"},
	}
	for _, tt := range tests {
		svc := shopService(t, tt.strategy)
		kind, steps := rollout.Compile(svc.Strategy)
		var texts []string
		for _, s := range steps {
			texts = append(texts, s.Text)
		}
		if kind != tt.kind || strings.Join(texts, " | ") != tt.steps {
			t.Errorf("Compile(%s)\n got %s: %s\nwant %s: %s", tt.strategy, kind, strings.Join(texts, " | "), tt.kind, tt.steps)
		}
	}
	if kind, steps := rollout.Compile(config.DefaultStrategy()); kind != "canary" || len(steps) != 4 {
		t.Errorf("Compile(the default strategy) = %s with %d steps, want the default canary", kind, len(steps))
	}
	// A background analysis from the end hangs on the setWeight 100 that Compile adds for it.
	_, steps := rollout.Compile(shopService(t, `{canary: {steps: [{setWeight: 5}], analysis: {templates: [e], startingStep: 1}}}`).Strategy)
	if len(steps[1].Background) != 1 || len(steps[0].Background) != 0 {
		t.Errorf("background analysis placed at %+v", steps)
	}
}

// A canary with no steps is valid config; it goes straight to 100%.
func TestCanaryWithoutStepsCompletes(t *testing.T) {
	t.Parallel()
	for _, strategy := range []string{`{canary: {}}`, `{canary: {steps: []}}`} {
		r := newRun(t, strategy)
		r.release("v2").expect(rollout.Healthy, 0, 0).versions("v2", "").saw("RolloutStarted", "Completed")
	}
}

// A Tick is idempotent, also when more of the new version is ready than is admitted: rolling back
// to a warm previous version, all its endpoints are served and ready already.
func TestRollingIdempotentWhenMoreAreReady(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{rolling: {}}`)
	r.setHealth("v2", rollout.Health{Endpoints: 3, Available: 3, Ready: 3})
	r.release("v2").expect(rollout.Healthy, 0, 1).versions("v2", "") // tick checks that a second look changes nothing
}
