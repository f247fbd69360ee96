package rollout_test

import (
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/rollout"
)

const pausedCanary = `{defaultAnalysis: false, canary: {steps: [{setWeight: 10}, {pause: {}}, {setWeight: 50}, {pause: {}}]}}`

func TestReleaseSetBackToStableCancels(t *testing.T) {
	t.Parallel()
	r := newRun(t, pausedCanary).release("v2").expect(rollout.Paused, 10, 1)
	r.release("v1").expect(rollout.Healthy, 0, 1).versions("v1", "").saw("Aborted").serves("v1=100")
	if e := r.last[0]; e.By != "spec" || !strings.Contains(e.Reason, "release set back to v1") {
		t.Errorf("event %+v", e)
	}
	assertEndpoints(t, r.served(), "v1", 2) // v2 is no longer served
}

func TestReleaseSetBackToStableAfterAnAbort(t *testing.T) {
	t.Parallel()
	r := newRun(t, pausedCanary).release("v2").do(rollout.Abort)
	r.release("v1").expect(rollout.Healthy, 0, 1).versions("v1", "")
}

func TestNewReleaseSupersedesTheRolloutInFlight(t *testing.T) {
	t.Parallel()
	r := newRun(t, pausedCanary).release("v2").do(rollout.Promote).expect(rollout.Paused, 50, 3)
	r.release("v3").expect(rollout.Paused, 10, 1).versions("v1", "v3").saw("RolloutStarted")
	if !strings.Contains(r.last[0].Reason, "release changed from v2 to v3; the rollout of v2 is superseded") {
		t.Errorf("reason %q", r.last[0].Reason)
	}
	if r.state.Attempt != 2 {
		t.Errorf("attempt %d", r.state.Attempt)
	}
	assertEndpoints(t, r.served(), "v1", 2, "v3", 1)
}

// The spec still names the aborted version: that is no reason to start it again, tick after tick.
func TestAbortedReleaseStaysDegraded(t *testing.T) {
	t.Parallel()
	r := newRun(t, pausedCanary).release("v2").do(rollout.Abort)
	gen := r.state.Generation
	for range 10 {
		r.tick(time.Minute).expect(rollout.Degraded, 0, 1).quiet()
	}
	if r.state.Generation != gen {
		t.Errorf("generation moved from %d to %d without a change", gen, r.state.Generation)
	}
	// A new release starts a new rollout from the abort.
	r.release("v3").expect(rollout.Paused, 10, 1).versions("v1", "v3")
}

// A release naming the version already on its way changes nothing (an apply that repeats it).
func TestReleaseBackToTheCanaryInFlight(t *testing.T) {
	t.Parallel()
	r := newRun(t, pausedCanary).release("v2").do(rollout.Promote)
	r.svc.Release = "v2"
	r.tick(0).expect(rollout.Paused, 50, 3).quiet()
}

// Initial takes the first version as stable; the first tick starts a rollout to the release.
func TestInitialWithAnotherReleaseStartsARollout(t *testing.T) {
	t.Parallel()
	svc := shopService(t, pausedCanary)
	svc.Release = "v3"
	st := rollout.Initial(svc, t0)
	if st.Phase != rollout.Healthy || st.Stable != "v1" || st.Generation != 0 {
		t.Fatalf("initial %+v", st)
	}
	r := newRunOf(t, svc)
	r.expect(rollout.Paused, 10, 1).versions("v1", "v3").saw("RolloutStarted")
	if !strings.Contains(r.last[0].Reason, "release changed from (none) to v3") {
		t.Errorf("reason %q", r.last[0].Reason)
	}
}

func TestInitialWithTheFirstVersionIsHealthy(t *testing.T) {
	t.Parallel()
	r := newRun(t, pausedCanary).expect(rollout.Healthy, 0, 0).versions("v1", "").quiet()
	if r.state.SpecRelease != "v1" || r.state.Generation != 1 {
		t.Errorf("the first tick records the release: %+v", r.state)
	}
	r.tick(time.Hour).quiet()
}

// Input.By names who changed the spec in the events of a release change.
func TestReleaseChangeByTheCaller(t *testing.T) {
	t.Parallel()
	r := newRun(t, pausedCanary)
	r.svc.Release = "v2"
	in := r.input()
	in.By = "carol"
	_, events := rollout.Tick(r.state, in)
	// The start is carol's; the steps that follow by themselves are the controller's.
	if len(events) != 3 || events[0].By != "carol" || events[1].By != "carol" || events[2].By != "controller" {
		t.Fatalf("events %+v", events)
	}
}

func TestAbortOnUnhealthyCanary(t *testing.T) {
	t.Parallel()
	r := newRun(t, pausedCanary).release("v2")
	r.down("v2").tick(time.Second).expect(rollout.Paused, 10, 1)
	r.tick(9*time.Second).expect(rollout.Paused, 10, 1)
	r.tick(time.Second).expect(rollout.Degraded, 0, 1).saw("Aborted")
	if !strings.Contains(r.state.Message, "v2 has had no available endpoint for 10s") {
		t.Errorf("message %q", r.state.Message)
	}
}

// A canary that recovers starts its grace period afresh the next time it goes down.
func TestAbortOnUnhealthyRecoveryResetsTheClock(t *testing.T) {
	t.Parallel()
	r := newRun(t, pausedCanary).release("v2")
	r.down("v2").tick(time.Second).tick(8 * time.Second)
	r.up("v2").tick(time.Second)
	r.down("v2").tick(time.Second).tick(9*time.Second).expect(rollout.Paused, 10, 1)
	r.tick(time.Second).expect(rollout.Degraded, 0, 1)
}

func TestAbortOnUnhealthyConfigured(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{abortOnUnhealthy: 1m, canary: {steps: [{setWeight: 10}, {pause: {}}]}}`).release("v2")
	r.down("v2").tick(time.Second).tick(59*time.Second).expect(rollout.Paused, 10, 1)
	r.tick(time.Second).expect(rollout.Degraded, 0, 1)
}

func TestAbortOnUnhealthyNegativeNeverAborts(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{abortOnUnhealthy: -1s, canary: {steps: [{setWeight: 10}, {pause: {}}]}}`).release("v2")
	r.down("v2").tick(time.Second).tick(24*time.Hour).expect(rollout.Paused, 10, 1)
}

// Endpoints that exist but are not checked yet (available, not ready) are no reason to abort;
// nor is a version the gateway has not reported at all.
func TestAbortOnUnhealthyNeedsAvailableZero(t *testing.T) {
	t.Parallel()
	r := newRun(t, pausedCanary).release("v2")
	r.setHealth("v2", rollout.Health{Endpoints: 3, Available: 1}).tick(time.Second).tick(time.Hour).expect(rollout.Paused, 10, 1)

	in := r.input()
	delete(in.Health, "v2")
	in.Now = in.Now.Add(time.Hour)
	if next, _ := rollout.Tick(r.state, in); next.Phase != rollout.Paused {
		t.Fatalf("unknown health aborted: %s", next.Message)
	}
}

// An unhealthy stable version is not the controller's to judge.
func TestUnhealthyStableDoesNotAbort(t *testing.T) {
	t.Parallel()
	r := newRun(t, pausedCanary).release("v2")
	r.down("v1").tick(time.Second).tick(time.Hour).expect(rollout.Paused, 10, 1)
}
