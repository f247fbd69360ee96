package rollout_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/rollout"
)

// stepStates renders a status's steps as "done done current pending".
func stepStates(st rollout.Status) string {
	var out []string
	for _, s := range st.Steps {
		out = append(out, s.State)
	}
	return strings.Join(out, " ")
}

func (r *run) status() rollout.Status { return rollout.StatusOf(r.state, r.svc.Release, r.now) }

func TestStatusMarksSteps(t *testing.T) {
	t.Parallel()
	r := newRun(t, commandCanary)
	if st := r.status(); len(st.Steps) != 0 || st.Steps == nil || st.PauseReasons == nil {
		t.Fatalf("a fresh service has no steps, as [] not null: %+v", st)
	}
	r.release("v2").verdict(rollout.Pass).tick(time.Second) // at step 3, a timed pause
	st := r.status()
	if got := stepStates(st); got != "done done done current pending pending" {
		t.Errorf("in flight: %s", got)
	}
	if st.Steps[3].Kind != rollout.Pause || st.Steps[3].Text != "pause 1m0s" || st.Steps[3].Index != 3 {
		t.Errorf("step 3: %+v", st.Steps[3])
	}
	if st.Phase != rollout.Paused || st.CanaryWeight != 50 || st.Release != "v2" || !st.Managed || st.CurrentStepIndex != 3 {
		t.Errorf("status %+v", st)
	}

	r.do(rollout.Abort)
	if got := stepStates(r.status()); got != "done done done aborted pending pending" {
		t.Errorf("aborted: %s", got)
	}
	r.do(rollout.Retry).command(rollout.Command{Kind: rollout.Promote, Full: true})
	if got := stepStates(r.status()); got != "done done done done done done" {
		t.Errorf("completed: %s", got)
	}
	if st := r.status(); st.WarmUntil == nil || st.PreviousVersion != "v1" || st.StepRemaining != nil {
		t.Errorf("completed status %+v", st)
	}
}

// A rollout cancelled by setting the release back did not do its remaining steps.
func TestStatusOfACancelledRollout(t *testing.T) {
	t.Parallel()
	r := newRun(t, commandCanary).release("v2").release("v1")
	if got := stepStates(r.status()); got != "done aborted pending pending pending pending" {
		t.Errorf("cancelled at step 1: %s", got)
	}
}

func TestStatusStepRemainingDuringATimedPause(t *testing.T) {
	t.Parallel()
	r := newRun(t, commandCanary).release("v2")
	if r.status().StepRemaining != nil {
		t.Fatal("an analysis step has no remaining time")
	}
	r.verdict(rollout.Pass).tick(0) // the one-minute pause begins
	r.tick(20 * time.Second)
	assertRemaining(t, r.status(), 40)

	// Frozen while a person pauses...
	r.do(rollout.PauseCmd)
	r.tick(5 * time.Minute)
	assertRemaining(t, r.status(), 40)
	// ...and running again after resume.
	r.do(rollout.Resume).tick(10 * time.Second)
	assertRemaining(t, r.status(), 30)

	r.tick(30*time.Second).expect(rollout.Paused, 80, 5) // the untimed pause
	if r.status().StepRemaining != nil {
		t.Fatal("an untimed pause has no remaining time")
	}
}

func assertRemaining(t *testing.T, st rollout.Status, want float64) {
	t.Helper()
	if st.StepRemaining == nil {
		t.Fatalf("no stepRemainingSeconds, want %g", want)
	}
	if *st.StepRemaining != want {
		t.Fatalf("stepRemainingSeconds %g, want %g", *st.StepRemaining, want)
	}
}

// The JSON of a status is the contract of the CLI, the API and the dashboard.
func TestStatusJSON(t *testing.T) {
	t.Parallel()
	r := newRun(t, commandCanary).release("v2").verdict(rollout.Pass).tick(0).tick(15 * time.Second)
	b, err := json.Marshal(r.status())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"service": "shop", "phase": "Paused", "stableVersion": "v1", "canaryVersion": "v2",
		"canaryWeight": 50.0, "currentStepIndex": 3.0, "stepRemainingSeconds": 45.0, "release": "v2", "strategy": "canary"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if _, ok := m["pauseReasons"].([]any); !ok {
		t.Errorf("pauseReasons %v", m["pauseReasons"])
	}
}
