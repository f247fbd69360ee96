//go:build e2e

package crash_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/internal/store"
)

// storeView is what aviary's store file held when the process died.
type storeView struct {
	state   rollout.State
	release string // the release aviary will find on restart: the API-applied spec's, or the file's
	events  []rollout.Event
}

// readStore opens the store file directly, as the next aviary will. The process that held its
// lock is dead, so the lock is free.
func readStore(path string) (storeView, error) {
	st, err := store.Open(path, store.Options{MaxEvents: config.DefaultMaxEvents, LockTimeout: 2 * time.Second})
	if err != nil {
		return storeView{}, err
	}
	defer st.Close()
	states, err := st.States()
	if err != nil {
		return storeView{}, err
	}
	specs, err := st.Specs()
	if err != nil {
		return storeView{}, err
	}
	events, err := st.Events(store.EventQuery{Service: service, Limit: 1 << 30})
	if err != nil {
		return storeView{}, err
	}
	v := storeView{state: states[service], release: versions[0], events: events}
	if _, ok := states[service]; !ok {
		return v, fmt.Errorf("the store has no state for %s", service)
	}
	if sp, ok := specs[service]; ok {
		v.release = sp.Service.Release
	}
	return v, nil
}

// lastSeq is the sequence number of the newest stored event (0 if none).
func (v storeView) lastSeq() uint64 {
	if len(v.events) == 0 {
		return 0
	}
	return v.events[len(v.events)-1].Seq
}

// attemptStarts are the event kinds that begin a new run through the steps.
var attemptStarts = map[config.EventKind]bool{"RolloutStarted": true, "Retried": true, "Restarted": true, "Undone": true}

// attemptEnds are the event kinds after which no step starts until a new attempt begins.
var attemptEnds = map[config.EventKind]bool{"Completed": true, "Aborted": true, "AnalysisFailed": true, "GateFailed": true}

// checkEventLog returns every way the log breaks the rules of a rollout: sequence numbers go up;
// within an attempt the steps start in order, each once, none skipped; a completion follows the
// last step; a timed pause is not cut short.
func checkEventLog(evs []rollout.Event) []string {
	var bad []string
	badf := func(e rollout.Event, format string, args ...any) {
		bad = append(bad, fmt.Sprintf("event %d (%s, step %d, %s): %s", e.Seq, e.Kind, e.Step,
			e.Time.Format("15:04:05.000"), fmt.Sprintf(format, args...)))
	}
	expect := -1 // the step that must start next; -1: unknown (the log's start), -2: none in flight
	var (
		stepAt   = map[int]time.Time{} // when each step of this attempt started
		promoted bool                  // a promote ended the current step
		prevSeq  uint64
	)
	for _, e := range evs {
		if e.Seq <= prevSeq {
			badf(e, "sequence number not above the previous one (%d)", prevSeq)
		}
		prevSeq = e.Seq
		switch {
		case attemptStarts[e.Kind]:
			expect, promoted, stepAt = -2, false, map[int]time.Time{}
			if e.Phase == rollout.Progressing || e.Phase == rollout.Paused {
				expect = 0 // an instant undo starts no steps
			}
		case e.Kind == "Promoted":
			promoted = true
		case e.Kind == "StepStarted":
			switch {
			case expect == -2:
				badf(e, "a step started with no rollout in flight")
			case expect >= 0 && e.Step != expect:
				badf(e, "step %d started, but step %d was next (a step skipped or applied twice)", e.Step, expect)
			}
			if prev := e.Step - 1; prev >= 0 && prev < len(canarySteps) && !promoted {
				if d := canarySteps[prev].pause; d > 0 && !stepAt[prev].IsZero() && e.Time.Sub(stepAt[prev]) < d {
					badf(e, "the %s pause of step %d ended after %s", d, prev, e.Time.Sub(stepAt[prev]))
				}
			}
			stepAt[e.Step], expect, promoted = e.Time, e.Step+1, false
		case attemptEnds[e.Kind]:
			if e.Kind == "Completed" && strings.HasPrefix(e.Reason, "all ") && expect >= 0 && expect != len(canarySteps) {
				badf(e, "completed after step %d of %d", expect-1, len(canarySteps))
			}
			expect = -2
		}
	}
	return bad
}

// matchesEvent checks that the state's traffic is what its newest event says: events and state
// are committed in one transaction, so they cannot disagree.
func matchesEvent(st rollout.State, evs []rollout.Event) string {
	if len(evs) == 0 {
		return ""
	}
	e := evs[len(evs)-1]
	if e.Phase != st.Phase || e.Stable != st.Stable || e.Canary != st.Canary || e.Weight != st.Weight || e.Step != st.StepIndex {
		return fmt.Sprintf("the stored state (phase %s, stable %s, canary %q, weight %d, step %d) disagrees with its newest event %d %s (phase %s, stable %s, canary %q, weight %d, step %d)",
			st.Phase, st.Stable, st.Canary, st.Weight, st.StepIndex, e.Seq, e.Kind, e.Phase, e.Stable, e.Canary, e.Weight, e.Step)
	}
	return ""
}

// storeHistory follows the store from kill to kill: what was committed once must stay committed.
type storeHistory struct {
	events map[uint64]string // every event seen so far, as JSON, by sequence number
	prev   *storeView
}

func newStoreHistory() *storeHistory { return &storeHistory{events: map[uint64]string{}} }

// check compares a new view of the store with the earlier ones and with the newest status any
// client was given before the kill.
func (h *storeHistory) check(v storeView, seen rollout.Status, anySeen bool, when string) []string {
	var bad []string
	bad = append(bad, h.appendOnly(v)...)
	if msg := matchesEvent(v.state, v.events); msg != "" {
		bad = append(bad, msg)
	}
	if anySeen {
		if msg := compareStatus("the newest status a client was given "+when, seen, v.state); msg != "" {
			bad = append(bad, msg)
		}
	}
	if p := h.prev; p != nil {
		if v.state.Generation < p.state.Generation {
			bad = append(bad, fmt.Sprintf("the stored generation went back from %d to %d", p.state.Generation, v.state.Generation))
		}
		if msg := sameStepStart(p, v); msg != "" {
			bad = append(bad, msg)
		}
	}
	h.prev = &v
	return bad
}

// appendOnly checks that no committed event changed or vanished.
func (h *storeHistory) appendOnly(v storeView) []string {
	var bad []string
	have := map[uint64]bool{}
	for _, e := range v.events {
		b, _ := json.Marshal(e)
		have[e.Seq] = true
		if old, ok := h.events[e.Seq]; ok && old != string(b) {
			bad = append(bad, fmt.Sprintf("event %d changed after it was committed:\nwas %s\nnow %s", e.Seq, old, b))
		}
		h.events[e.Seq] = string(b)
	}
	oldest := v.lastSeq() + 1
	if len(v.events) > 0 {
		oldest = v.events[0].Seq
	}
	for seq := range h.events {
		switch {
		case seq < oldest:
			delete(h.events, seq) // pruned: the store keeps the newest storage.maxEvents
		case !have[seq]:
			bad = append(bad, fmt.Sprintf("event %d was committed before and is gone", seq))
		}
	}
	return bad
}

// sameStepStart checks that a step still in force after a crash kept its start time: a pause that
// restarted on every crash would never end.
func sameStepStart(p *storeView, v storeView) string {
	a, b := p.state, v.state
	if a.Attempt != b.Attempt || a.StepIndex != b.StepIndex || !a.InFlight() || !b.InFlight() {
		return ""
	}
	for _, e := range v.events {
		if e.Seq > p.lastSeq() && (e.Kind == "Resumed" || attemptStarts[e.Kind]) {
			return "" // a resume moves the start on by the time it was held
		}
	}
	if !a.StepStartedAt.Equal(b.StepStartedAt) {
		return fmt.Sprintf("step %d of attempt %d started at %s, and after a restart at %s, with no event in between",
			a.StepIndex, a.Attempt, a.StepStartedAt.Format(time.RFC3339Nano), b.StepStartedAt.Format(time.RFC3339Nano))
	}
	return ""
}

// compareStatus checks a status against the stored state: the store must have what the status
// showed, or something newer.
func compareStatus(what string, st rollout.Status, s rollout.State) string {
	switch {
	case s.Generation < st.Generation:
		return fmt.Sprintf("%s had generation %d, but the store has only %d: a committed transition was lost\nserved: %s\nstored: %s",
			what, st.Generation, s.Generation, statusLine(st), stateLine(s))
	case s.Generation > st.Generation:
		return ""
	}
	if st.Phase != s.Phase || st.CurrentStepIndex != s.StepIndex || st.CanaryWeight != s.Weight ||
		st.StableVersion != s.Stable || st.CanaryVersion != s.Canary {
		return fmt.Sprintf("%s and the store agree on generation %d but not on the rollout\nserved: %s\nstored: %s",
			what, s.Generation, statusLine(st), stateLine(s))
	}
	return ""
}

func statusLine(st rollout.Status) string {
	return fmt.Sprintf("generation %d, phase %s, step %d, stable %s, canary %q at %d%%",
		st.Generation, st.Phase, st.CurrentStepIndex, st.StableVersion, st.CanaryVersion, st.CanaryWeight)
}

func stateLine(s rollout.State) string {
	return fmt.Sprintf("generation %d, phase %s, step %d, stable %s, canary %q at %d%% (attempt %d, step started %s)",
		s.Generation, s.Phase, s.StepIndex, s.Stable, s.Canary, s.Weight, s.Attempt, s.StepStartedAt.Format("15:04:05.000"))
}
