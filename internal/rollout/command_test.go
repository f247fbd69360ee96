package rollout_test

import (
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/rollout"
)

// commandCanary has an analysis (step 1), a timed pause (step 3) and an untimed one (step 5).
const commandCanary = `{defaultAnalysis: false, canary: {steps: [{setWeight: 10}, {analysis: {templates: [errors]}}, {setWeight: 50},
	{pause: {duration: 1m}}, {setWeight: 80}, {pause: {}}]}}`

// phases builds a run in each phase a command may meet.
var phases = map[string]func(t *testing.T) *run{
	"Healthy": func(t *testing.T) *run { return newRun(t, commandCanary) },
	"Healthy after a rollout": func(t *testing.T) *run {
		return newRun(t, commandCanary).release("v2").command(rollout.Command{Kind: rollout.Promote, Full: true}).tick(time.Second)
	},
	"Progressing": func(t *testing.T) *run { return newRun(t, commandCanary).release("v2") },
	"Paused": func(t *testing.T) *run {
		return newRun(t, commandCanary).release("v2").verdict(rollout.Pass).tick(time.Second)
	},
	"Paused by a person": func(t *testing.T) *run {
		return newRun(t, commandCanary).release("v2").tick(time.Second).do(rollout.PauseCmd)
	},
	"Degraded": func(t *testing.T) *run { return newRun(t, commandCanary).release("v2").do(rollout.Abort) },
}

// Every command in every phase: the right transition, or a conflict that says what to do.
func TestCommandsInEveryPhase(t *testing.T) {
	t.Parallel()
	promote := rollout.Command{Kind: rollout.Promote, By: "alice"}
	full := rollout.Command{Kind: rollout.Promote, Full: true, By: "alice"}
	cmd := func(kind rollout.CommandKind) rollout.Command { return rollout.Command{Kind: kind, By: "alice"} }
	noRollout := "start one with `aviary rollout start shop --version VERSION`"
	retry := "`aviary rollout retry shop`"
	notPaused := "a pause step waits for `aviary rollout promote shop`"
	completed := func(r *run) { r.expect(rollout.Healthy, 0, 6).versions("v2", "").saw("Promoted", "Completed") }
	aborted := func(step int) func(*run) {
		return func(r *run) { r.expect(rollout.Degraded, 0, step).versions("v1", "v2").saw("Aborted") }
	}
	restarted := func(r *run) {
		r.expect(rollout.Progressing, 10, 1).saw("Restarted", "StepStarted")
		if r.state.Attempt != 2 || !r.state.PausedAt.IsZero() {
			r.t.Errorf("restart: attempt %d, pausedAt %v", r.state.Attempt, r.state.PausedAt)
		}
	}
	userPaused := func(step int) func(*run) {
		return func(r *run) {
			r.expect(rollout.Paused, r.state.Weight, step).saw("Paused")
			if !hasReason(r.state, rollout.UserPauseReason) || !r.state.PausedAt.Equal(r.now) {
				r.t.Errorf("pause: reasons %v, pausedAt %v", r.state.PauseReasons, r.state.PausedAt)
			}
		}
	}

	type row struct {
		cmd      rollout.Command
		conflict []string // the hints of the expected conflict; nil: the command fits
		then     func(*run)
	}
	table := map[string][]row{
		"Healthy": {
			{promote, []string{"no rollout in flight for shop", noRollout}, nil},
			{full, []string{noRollout}, nil},
			{cmd(rollout.PauseCmd), []string{noRollout}, nil},
			{cmd(rollout.Resume), []string{"shop is not paused by a person (phase Healthy)"}, nil},
			{cmd(rollout.Abort), []string{noRollout}, nil},
			{cmd(rollout.Retry), []string{"nothing to retry for shop", "retry follows an abort"}, nil},
			{cmd(rollout.Undo), []string{"shop has no previous stable version"}, nil},
			{cmd(rollout.Restart), []string{noRollout}, nil},
		},
		"Healthy after a rollout": {
			{promote, []string{noRollout}, nil},
			{full, []string{noRollout}, nil},
			{cmd(rollout.PauseCmd), []string{noRollout}, nil},
			{cmd(rollout.Resume), []string{"not paused by a person"}, nil},
			{cmd(rollout.Abort), []string{noRollout}, nil},
			{cmd(rollout.Retry), []string{"nothing to retry"}, nil},
			{cmd(rollout.Undo), nil, func(r *run) { r.expect(rollout.Healthy, 0, 6).versions("v1", "").saw("Undone") }},
			{cmd(rollout.Restart), []string{noRollout}, nil},
		},
		"Progressing": {
			{promote, nil, func(r *run) { r.expect(rollout.Paused, 50, 3).saw("Promoted") }},
			{full, nil, completed},
			{cmd(rollout.PauseCmd), nil, userPaused(1)},
			{cmd(rollout.Resume), []string{"not paused by a person (phase Progressing)", notPaused}, nil},
			{cmd(rollout.Abort), nil, aborted(1)},
			{cmd(rollout.Retry), []string{"nothing to retry"}, nil},
			{cmd(rollout.Undo), []string{"`aviary rollout abort shop` sends traffic back to v1"}, nil},
			{cmd(rollout.Restart), nil, restarted},
		},
		"Paused": {
			{promote, nil, func(r *run) { r.expect(rollout.Paused, 80, 5) }},
			{full, nil, completed},
			{cmd(rollout.PauseCmd), nil, userPaused(3)},
			{cmd(rollout.Resume), []string{"(phase Paused)", notPaused}, nil},
			{cmd(rollout.Abort), nil, aborted(3)},
			{cmd(rollout.Retry), []string{"nothing to retry"}, nil},
			{cmd(rollout.Undo), []string{"`aviary rollout abort shop`"}, nil},
			{cmd(rollout.Restart), nil, restarted},
		},
		"Paused by a person": {
			{promote, nil, func(r *run) { r.expect(rollout.Paused, 50, 3).paused(rollout.PauseStepReason) }},
			{full, nil, completed},
			{cmd(rollout.PauseCmd), []string{"already paused by a person", "`aviary rollout resume shop`"}, nil},
			{cmd(rollout.Resume), nil, func(r *run) { r.expect(rollout.Progressing, 10, 1).paused().saw("Resumed") }},
			{cmd(rollout.Abort), nil, aborted(1)},
			{cmd(rollout.Retry), []string{"nothing to retry"}, nil},
			{cmd(rollout.Undo), []string{"`aviary rollout abort shop`"}, nil},
			{cmd(rollout.Restart), nil, restarted},
		},
		"Degraded": {
			{promote, []string{"was aborted", retry}, nil},
			{full, []string{retry}, nil},
			{cmd(rollout.PauseCmd), []string{retry}, nil},
			{cmd(rollout.Resume), []string{"not paused by a person (phase Degraded)"}, nil},
			{cmd(rollout.Abort), []string{retry}, nil},
			{cmd(rollout.Retry), nil, func(r *run) { r.expect(rollout.Progressing, 10, 1).versions("v1", "v2").saw("Retried") }},
			{cmd(rollout.Undo), []string{"no previous stable version"}, nil},
			{cmd(rollout.Restart), []string{retry}, nil},
		},
	}
	for phase, rows := range table {
		for _, row := range rows {
			name := phase + "/" + string(row.cmd.Kind)
			if row.cmd.Full {
				name += "--full"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				r := phases[phase](t)
				if row.conflict != nil {
					r.conflict(row.cmd, row.conflict...)
					return
				}
				r.command(row.cmd)
				row.then(r)
				for _, e := range r.last {
					if e.By != "alice" {
						t.Errorf("event %s by %q, want the caller", e.Kind, e.By)
					}
				}
			})
		}
	}
}

func hasReason(s rollout.State, kind string) bool {
	for _, p := range s.PauseReasons {
		if p.Kind == kind {
			return true
		}
	}
	return false
}

func TestUnknownCommand(t *testing.T) {
	t.Parallel()
	newRun(t, commandCanary).release("v2").conflict(rollout.Command{Kind: "rewind"}, `unknown command "rewind"`, "use one of")
}

// A refused command must also say what to do; this one only says what is wrong.
func TestUndoWithoutPreviousSaysWhatToDo(t *testing.T) {
	t.Parallel()
	newRun(t, commandCanary).conflict(rollout.Command{Kind: rollout.Undo}, "aviary rollout")
}

func TestCommandEventsNameTheCallerAndReason(t *testing.T) {
	t.Parallel()
	r := newRun(t, commandCanary).release("v2")
	r.command(rollout.Command{Kind: rollout.Abort, By: "bob", Reason: "error spike in eu-west"})
	e := r.last[0]
	if e.By != "bob" || !strings.Contains(e.Reason, "aborted by bob: error spike in eu-west") {
		t.Errorf("event %+v", e)
	}
	r.command(rollout.Command{Kind: rollout.Retry})
	if r.last[0].By != "api" {
		t.Errorf("a command without a caller is by %q, want api", r.last[0].By)
	}
}

func TestAbortWhilePaused(t *testing.T) {
	t.Parallel()
	r := newRun(t, commandCanary).release("v2").verdict(rollout.Pass).tick(time.Second).expect(rollout.Paused, 50, 3)
	r.do(rollout.PauseCmd).do(rollout.Abort).expect(rollout.Degraded, 0, 3).paused().serves("v1=100 v2=0")
	if !r.state.PausedAt.IsZero() {
		t.Errorf("an abort ends the person's pause too: pausedAt %v", r.state.PausedAt)
	}
	r.tick(time.Hour).expect(rollout.Degraded, 0, 3).quiet()
}

// A promote during an analysis ends the step and forgets its check: a verdict that comes later
// for it changes nothing.
func TestPromoteDuringAnalysisForgetsTheCheck(t *testing.T) {
	t.Parallel()
	r := newRun(t, commandCanary).release("v2").expect(rollout.Progressing, 10, 1)
	old := r.stepCheck()
	r.do(rollout.Promote).expect(rollout.Paused, 50, 3)
	if len(r.state.Checks) != 0 {
		t.Fatalf("the analysis must end with its step: %+v", r.state.Checks)
	}
	r.verdicts[old.ID] = rollout.Verdict{Phase: rollout.Fail, Message: "too late"}
	r.tick(30*time.Second).expect(rollout.Paused, 50, 3).quiet()
}

// A retry is a new attempt: its checks have new IDs, so the old attempt's verdicts cannot leak
// into it.
func TestRetryAfterAbortIsANewAttempt(t *testing.T) {
	t.Parallel()
	r := newRun(t, commandCanary).release("v2")
	first := r.stepCheck()
	r.verdict(rollout.Fail).tick(time.Second).expect(rollout.Degraded, 0, 1)
	r.do(rollout.Retry).expect(rollout.Progressing, 10, 1).saw("Retried")
	second := r.stepCheck()
	if r.state.Attempt != 2 || second.ID == first.ID {
		t.Fatalf("attempt %d, check IDs %s then %s", r.state.Attempt, first.ID, second.ID)
	}
	r.tick(time.Second).expect(rollout.Progressing, 10, 1) // the old Fail is still there; it is not this check's
	r.verdict(rollout.Pass).tick(time.Second).expect(rollout.Paused, 50, 3)
}

func TestRestartIsANewAttemptWithTheNewStrategy(t *testing.T) {
	t.Parallel()
	r := newRun(t, commandCanary).release("v2").verdict(rollout.Pass).tick(time.Second).expect(rollout.Paused, 50, 3)
	// A strategy changed mid-rollout does not shift the steps under it...
	r.svc = shopService(t, `{canary: {steps: [{setWeight: 33}, {pause: {}}]}}`)
	r.svc.Release = "v2"
	r.tick(time.Minute).expect(rollout.Paused, 80, 5)
	// ...until a restart, which starts over with it.
	r.do(rollout.Restart).expect(rollout.Paused, 33, 1).saw("Restarted")
	if r.state.Attempt != 2 || len(r.state.Steps) != 2 {
		t.Fatalf("attempt %d, %d steps", r.state.Attempt, len(r.state.Steps))
	}
}

func TestPromoteOnTheLastStepCompletes(t *testing.T) {
	t.Parallel()
	r := newRun(t, commandCanary).release("v2").verdict(rollout.Pass).tick(time.Second).tick(time.Minute).expect(rollout.Paused, 80, 5)
	r.do(rollout.Promote).expect(rollout.Healthy, 0, 6).versions("v2", "").saw("Promoted", "Completed")
}

// Inside the warm window undo is a swap: the previous stable serves everyone at once, and the
// version undone stays warm in turn.
func TestUndoInsideTheWarmWindowIsInstant(t *testing.T) {
	t.Parallel()
	r := phases["Healthy after a rollout"](t)
	r.tick(9*time.Minute).versions("v2", "")
	r.do(rollout.Undo).expect(rollout.Healthy, 0, 6).versions("v1", "").saw("Undone").serves("v1=100")
	assertEndpoints(t, r.served(), "v1", 2, "v2", 3)
	if r.state.Previous != "v2" || !r.state.WarmUntil.Equal(r.now.Add(10*time.Minute)) {
		t.Fatalf("previous %q warm until %v", r.state.Previous, r.state.WarmUntil)
	}
	// The spec still says v2, but it said so before: the undo sticks.
	r.tick(time.Minute).versions("v1", "").expect(rollout.Healthy, 0, 6)
	// An undo of the undo swaps back.
	r.do(rollout.Undo).versions("v2", "")
}

// After the warm window undo rolls the previous version out again, by the strategy.
func TestUndoAfterTheWarmWindowRollsBack(t *testing.T) {
	t.Parallel()
	r := phases["Healthy after a rollout"](t)
	assertEndpoints(t, r.served(), "v2", 3, "v1", 2)
	r.tick(10*time.Minute).saw("ScaledDown").versions("v2", "")
	assertEndpoints(t, r.served(), "v2", 3)
	r.do(rollout.Undo).expect(rollout.Progressing, 10, 1).versions("v2", "v1").saw("Undone", "StepStarted")
	r.verdict(rollout.Pass).tick(time.Second).tick(time.Minute).do(rollout.Promote).expect(rollout.Healthy, 0, 6).versions("v1", "")
	// The spec's release (v2) has not changed since: no rollout starts again.
	r.tick(time.Minute).expect(rollout.Healthy, 0, 6).versions("v1", "")
}

// Undo after an aborted rollout goes back to the stable before the last completed one.
func TestUndoWhileDegraded(t *testing.T) {
	t.Parallel()
	r := phases["Healthy after a rollout"](t)
	r.release("v3").do(rollout.Abort).versions("v2", "v3")
	r.do(rollout.Undo).expect(rollout.Healthy, 0, 1).versions("v1", "").saw("Undone").serves("v1=100")
}

// A person's pause during a timed pause freezes the time left; resume gives it back.
func TestUserPauseDuringATimedPauseKeepsTheRemainingTime(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{canary: {steps: [{setWeight: 10}, {pause: {duration: 60s}}, {setWeight: 50}, {pause: {}}]}}`)
	r.release("v2").tick(20*time.Second).do(rollout.PauseCmd).expect(rollout.Paused, 10, 1)
	r.tick(10*time.Minute).expect(rollout.Paused, 10, 1).quiet()
	r.do(rollout.Resume).expect(rollout.Paused, 10, 1).paused(rollout.PauseStepReason).saw("Resumed")
	r.tick(39*time.Second).expect(rollout.Paused, 10, 1)
	r.tick(time.Second).expect(rollout.Paused, 50, 3)
}

func TestUserPauseDuringAnalysisAFailStillAborts(t *testing.T) {
	t.Parallel()
	r := newRun(t, commandCanary).release("v2").do(rollout.PauseCmd)
	r.verdict(rollout.Fail).tick(time.Second).expect(rollout.Degraded, 0, 1).saw("AnalysisFailed")
}

// A pass that comes while a person holds the rollout waits for them.
func TestUserPauseDuringAnalysisAPassWaitsForResume(t *testing.T) {
	t.Parallel()
	r := newRun(t, commandCanary).release("v2").do(rollout.PauseCmd)
	r.verdict(rollout.Pass).tick(time.Minute).expect(rollout.Paused, 10, 1).paused(rollout.UserPauseReason)
	r.do(rollout.Resume).expect(rollout.Paused, 50, 3).saw("Resumed", "AnalysisPassed")
}

// The analysis deadline is frozen while a person pauses, as a timed pause is: resume moves it on
// by the time held.
func TestUserPauseFreezesTheAnalysisDeadline(t *testing.T) {
	t.Parallel()
	r := newRun(t, analysisCanary).release("v2") // deadline 1m
	r.tick(30 * time.Second).do(rollout.PauseCmd)
	r.tick(2*time.Minute).expect(rollout.Paused, 10, 1).paused(rollout.UserPauseReason).quiet()
	r.do(rollout.Resume).expect(rollout.Progressing, 10, 1) // 30s of the deadline left
	r.tick(29*time.Second).expect(rollout.Progressing, 10, 1)
	r.tick(time.Second).expect(rollout.Paused, 10, 1).paused(rollout.InconclusiveReason).saw("AnalysisInconclusive")
}

// Undo and retry name versions the spec may have dropped since (only the stable and a canary in
// flight are protected by Controller.Validate). They must refuse, not serve a version that is not
// there: the served service would name a stable with no endpoints.
func TestCommandsRefuseVersionsGoneFromTheSpec(t *testing.T) {
	t.Parallel()
	t.Run("undo", func(t *testing.T) {
		r := phases["Healthy after a rollout"](t)
		r.svc.Versions = r.svc.Versions[1:] // v1, the previous stable, is gone
		r.conflict(rollout.Command{Kind: rollout.Undo}, "v1")
	})
	t.Run("retry", func(t *testing.T) {
		r := phases["Degraded"](t)
		r.svc.Versions = append(r.svc.Versions[:1:1], r.svc.Versions[2]) // v2, the aborted canary, is gone
		r.conflict(rollout.Command{Kind: rollout.Retry}, "v2")
	})
}
