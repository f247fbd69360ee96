package rollout_test

import (
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/rollout"
)

func TestCanaryWalksWeightsAndTimedPauses(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{canary: {steps: [{setWeight: 5}, {pause: {duration: 10s}}, {setWeight: 50}, {pause: {duration: 20s}}]}}`)
	r.expect(rollout.Healthy, 0, 0).versions("v1", "").serves("v1=100")

	r.release("v2").expect(rollout.Paused, 5, 1).versions("v1", "v2").paused(rollout.PauseStepReason).
		saw("RolloutStarted", "StepStarted").serves("v1=95 v2=5")
	r.tick(9*time.Second).expect(rollout.Paused, 5, 1).quiet()
	r.tick(time.Second).expect(rollout.Paused, 50, 3).saw("StepStarted").serves("v1=50 v2=50")
	r.tick(19*time.Second).expect(rollout.Paused, 50, 3).quiet()
	r.tick(time.Second).expect(rollout.Healthy, 0, 4).versions("v2", "").saw("Completed").serves("v2=100")

	if r.state.Previous != "v1" || r.state.Attempt != 1 {
		t.Errorf("previous %q attempt %d, want v1 and 1", r.state.Previous, r.state.Attempt)
	}
	if !r.state.WarmUntil.Equal(r.now.Add(10 * time.Minute)) {
		t.Errorf("v1 is warm until %v, want the default scale-down delay after completion", r.state.WarmUntil)
	}
}

// A big time step crosses every step it can: a late tick does not leave a rollout behind.
func TestCanaryLateTickCrossesSeveralSteps(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{canary: {steps: [{setWeight: 5}, {pause: {duration: 10s}}, {setWeight: 50}, {pause: {duration: 20s}}, {setWeight: 80}, {pause: {}}]}}`)
	r.release("v2").expect(rollout.Paused, 5, 1)
	// The second pause is timed from when it began, which is the late tick, not when the first ended.
	r.tick(time.Hour).expect(rollout.Paused, 50, 3)
	r.tick(20*time.Second).expect(rollout.Paused, 80, 5).paused(rollout.PauseStepReason)
}

func TestCanaryDefaultStrategy(t *testing.T) {
	t.Parallel()
	r := newRun(t, "null") // a managed service without a strategy: 10%, 30s, 50% until the analysis passes
	r.release("v2").expect(rollout.Paused, 10, 1)
	r.tick(30*time.Second).expect(rollout.Progressing, 50, 3)
	// Time alone never completes it: only a pass of the default analysis does.
	r.tick(5*time.Minute).expect(rollout.Progressing, 50, 3)
	r.verdict(rollout.Pass).tick(time.Second).expect(rollout.Healthy, 0, 4).versions("v2", "").saw("AnalysisPassed")
	if r.state.Strategy != "canary" {
		t.Errorf("strategy %q", r.state.Strategy)
	}
}

func TestCanaryUntimedPauseWaitsForPromote(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{canary: {steps: [{setWeight: 20}, {pause: {}}, {setWeight: 60}, {pause: {}}]}}`)
	r.release("v2").expect(rollout.Paused, 20, 1)
	r.tick(24*time.Hour).expect(rollout.Paused, 20, 1).quiet()
	r.do(rollout.Promote).expect(rollout.Paused, 60, 3).saw("Promoted", "StepStarted")
	r.do(rollout.Promote).expect(rollout.Healthy, 0, 4).versions("v2", "").saw("Promoted", "Completed")
}

func TestCanaryHeaderRouteOnAndOff(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{canary: {steps: [
		{setHeaderRoute: {match: {header: {name: X-Employee, value: "true"}}}}, {pause: {}},
		{setWeight: 10}, {setHeaderRoute: {}}, {pause: {}}]}}`)
	r.release("v2").expect(rollout.Paused, 0, 1)
	if rt := r.state.Route; rt == nil || rt.Header == nil || rt.Header.Name != "X-Employee" {
		t.Fatalf("route %+v, want the X-Employee header", rt)
	}
	svc := r.served()
	if n := len(svc.Routes); n != 1 || svc.Routes[0].Version != "v2" || svc.Routes[0].Match.Header.Value != "true" {
		t.Fatalf("served routes %+v, want the segment to v2", svc.Routes)
	}
	r.serves("v1=100 v2=0") // v2 is served, for the segment only

	r.do(rollout.Promote).expect(rollout.Paused, 10, 4)
	if r.state.Route != nil || len(r.served().Routes) != 0 {
		t.Fatalf("setHeaderRoute without a match must remove the route; got %+v", r.state.Route)
	}
}

func TestCanaryMirror(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{canary: {steps: [{setMirror: {percent: 30}}, {pause: {}}, {setMirror: {percent: 0}}, {setWeight: 10}, {pause: {}}]}}`)
	r.release("v2").expect(rollout.Paused, 0, 1)
	m := r.served().Mirror
	if r.state.Mirror != 30 || m == nil || m.Version != "v2" || m.Percent != 30 || m.MaxBodyBytes <= 0 {
		t.Fatalf("mirror %g, served %+v; want 30%% to v2 with a body limit", r.state.Mirror, m)
	}
	r.do(rollout.Promote).expect(rollout.Paused, 10, 4)
	if r.state.Mirror != 0 || r.served().Mirror != nil {
		t.Fatalf("mirror 0 must stop mirroring; got %g, %+v", r.state.Mirror, r.served().Mirror)
	}
}

// analysisCanary waits on an analysis at step 1, with a one-minute deadline.
const analysisCanary = `{defaultAnalysis: false, canary: {steps: [{setWeight: 10}, {analysis: {templates: [errors, latency], duration: 1m}}, {setWeight: 50}, {pause: {}}]}}`

func TestCanaryAnalysisPass(t *testing.T) {
	t.Parallel()
	r := newRun(t, analysisCanary)
	r.release("v2").expect(rollout.Progressing, 10, 1)
	ch := r.stepCheck()
	if ch.Kind != rollout.StepAnalysis || strings.Join(ch.Templates, ",") != "errors,latency" || !ch.Deadline.Equal(r.now.Add(time.Minute)) {
		t.Fatalf("check %+v", ch)
	}
	r.tick(10*time.Second).expect(rollout.Progressing, 10, 1).quiet()
	r.verdict(rollout.Running).tick(time.Second).expect(rollout.Progressing, 10, 1).quiet()
	if r.state.Checks[0].Last != nil {
		t.Errorf("a running verdict is shown live, not stored: %+v", r.state.Checks[0].Last)
	}
	r.verdict(rollout.Pass).tick(time.Second).expect(rollout.Paused, 50, 3).saw("AnalysisPassed")
	if len(r.state.Checks) != 0 {
		t.Errorf("a passed check must end: %+v", r.state.Checks)
	}
}

func TestCanaryAnalysisFailAborts(t *testing.T) {
	t.Parallel()
	r := newRun(t, analysisCanary)
	r.release("v2").verdict(rollout.Fail).tick(time.Second)
	r.expect(rollout.Degraded, 0, 1).versions("v1", "v2").saw("AnalysisFailed").serves("v1=100 v2=0")
	if !strings.Contains(r.state.Message, "judge says Fail") || !strings.Contains(r.state.Message, "aviary rollout retry shop") {
		t.Errorf("message %q must give the judge's reason and say how to retry", r.state.Message)
	}
}

func TestCanaryAnalysisInconclusivePausesForAPerson(t *testing.T) {
	t.Parallel()
	r := newRun(t, analysisCanary)
	r.release("v2").verdict(rollout.Inconclusive).tick(time.Second)
	r.expect(rollout.Paused, 10, 1).paused(rollout.InconclusiveReason).saw("AnalysisInconclusive")
	r.tick(time.Hour).expect(rollout.Paused, 10, 1).quiet() // asked once, not every tick
	r.do(rollout.Promote).expect(rollout.Paused, 50, 3).paused(rollout.PauseStepReason)
}

func TestCanaryAnalysisDeadline(t *testing.T) {
	t.Parallel()
	r := newRun(t, analysisCanary)
	r.release("v2").tick(59*time.Second).expect(rollout.Progressing, 10, 1).quiet()
	r.tick(time.Second).expect(rollout.Paused, 10, 1).paused(rollout.InconclusiveReason).saw("AnalysisInconclusive")
	if !strings.Contains(r.state.Message, "no verdict by the step's deadline") {
		t.Errorf("message %q", r.state.Message)
	}
	// A verdict that comes late still counts.
	r.verdict(rollout.Pass).tick(time.Second).expect(rollout.Paused, 50, 3).paused(rollout.PauseStepReason)
}

// An analysis without a duration waits for its verdict for as long as it takes.
func TestCanaryAnalysisWithoutDeadlineWaits(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{canary: {steps: [{setWeight: 10}, {analysis: {templates: [errors]}}, {pause: {}}]}}`)
	r.release("v2").tick(24*time.Hour).expect(rollout.Progressing, 10, 1).quiet()
}

const gateCanary = `{canary: {steps: [{setWeight: 10}, {gate: {url: "http://127.0.0.1:7000/approve"}}, {setWeight: 40}, {pause: {}}]}}`

func TestCanaryGatePass(t *testing.T) {
	t.Parallel()
	r := newRun(t, gateCanary)
	r.release("v2").expect(rollout.Progressing, 10, 1)
	ch := r.stepCheck()
	if ch.Kind != rollout.GateCheck || ch.Gate == nil || ch.Gate.URL != "http://127.0.0.1:7000/approve" || ch.Gate.FailureLimit != 3 {
		t.Fatalf("gate check %+v (gate %+v)", ch, ch.Gate)
	}
	r.verdict(rollout.Running).tick(time.Minute).expect(rollout.Progressing, 10, 1)
	r.verdict(rollout.Pass).tick(time.Second).expect(rollout.Paused, 40, 3).saw("GatePassed")
}

func TestCanaryGateFailAborts(t *testing.T) {
	t.Parallel()
	r := newRun(t, gateCanary)
	r.release("v2").verdict(rollout.Fail).tick(time.Second).expect(rollout.Degraded, 0, 1).saw("GateFailed")
	if !strings.Contains(r.state.Message, "gate http://127.0.0.1:7000/approve failed") {
		t.Errorf("message %q must name the gate", r.state.Message)
	}
}

// backgroundCanary starts a background analysis when step 2 begins.
const backgroundCanary = `{canary: {steps: [{setWeight: 10}, {pause: {duration: 10s}}, {setWeight: 50}, {pause: {}}],
	analysis: {templates: [errors], startingStep: 2}}}`

func TestCanaryBackgroundAnalysisFailureAborts(t *testing.T) {
	t.Parallel()
	r := newRun(t, backgroundCanary)
	r.release("v2").expect(rollout.Paused, 10, 1)
	if len(r.state.Checks) != 0 {
		t.Fatalf("background analysis starts at step 2, not before: %+v", r.state.Checks)
	}
	r.tick(10*time.Second).expect(rollout.Paused, 50, 3)
	bg := r.check(rollout.BackgroundAnalysis)
	if bg.Step != 2 || bg.Templates[0] != "errors" {
		t.Fatalf("background check %+v", bg)
	}
	// A pass of a background analysis does not end a step; it keeps watching.
	r.background(rollout.Pass).tick(time.Minute).expect(rollout.Paused, 50, 3)
	r.background(rollout.Fail).tick(time.Second).expect(rollout.Degraded, 0, 3).saw("AnalysisFailed")
	if !strings.Contains(r.state.Message, "background analysis failed") {
		t.Errorf("message %q", r.state.Message)
	}
}

// The background analysis outlives the step that started it, and a promote does not stop it.
func TestCanaryBackgroundAnalysisRunsToTheEnd(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{canary: {steps: [{setWeight: 10}, {pause: {}}, {setWeight: 50}, {pause: {}}], analysis: {templates: [errors]}}}`)
	r.release("v2").expect(rollout.Paused, 10, 1)
	id := r.check(rollout.BackgroundAnalysis).ID
	r.do(rollout.Promote).expect(rollout.Paused, 50, 3)
	if got := r.check(rollout.BackgroundAnalysis).ID; got != id {
		t.Fatalf("background check %s replaced by %s", id, got)
	}
	r.do(rollout.Promote).expect(rollout.Healthy, 0, 4)
}

// A person's pause does not stop a background analysis from aborting.
func TestCanaryBackgroundFailureAbortsWhileUserPaused(t *testing.T) {
	t.Parallel()
	r := newRun(t, backgroundCanary)
	r.release("v2").tick(10 * time.Second).do(rollout.PauseCmd)
	r.background(rollout.Fail).tick(time.Second).expect(rollout.Degraded, 0, 3)
}
