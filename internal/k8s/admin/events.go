package admin

import (
	"slices"
	"sync"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/k8s"
	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/rollout"
)

// maxEvents is how many events a replica keeps for the API (the oldest go first).
const maxEvents = 10_000

// eventLog holds the events this replica has seen, numbered in the order it saw them. Each
// replica numbers its own: a client that reconnects to another replica (behind a Service) with a
// Last-Event-ID gets that replica's events after that number, which is why the dashboard reads the
// state again on every event rather than trusting the stream to be complete.
type eventLog struct {
	mu     sync.Mutex
	seq    uint64
	events []rollout.Event // oldest first, at most maxEvents
}

// add numbers evs and keeps them; it returns them numbered.
func (l *eventLog) add(evs []rollout.Event) []rollout.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]rollout.Event, len(evs))
	for i, e := range evs {
		l.seq++
		e.Seq = l.seq
		out[i] = e
	}
	l.events = append(l.events, out...)
	if over := len(l.events) - maxEvents; over > 0 {
		l.events = slices.Delete(l.events, 0, over)
	}
	return out
}

// after lists up to limit events of service ("" all) numbered after after, oldest first.
func (l *eventLog) after(service string, after uint64, limit int) []rollout.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	if limit <= 0 || limit > maxEvents {
		limit = maxEvents
	}
	i, _ := slices.BinarySearchFunc(l.events, after+1, func(e rollout.Event, seq uint64) int { return cmpUint(e.Seq, seq) })
	var out []rollout.Event
	for _, e := range l.events[i:] {
		if service == "" || e.Service == service {
			out = append(out, e)
			if len(out) == limit {
				break
			}
		}
	}
	return out
}

// last lists the last n events of service ("" all), oldest first.
func (l *eventLog) last(service string, n int) []rollout.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []rollout.Event
	for i := len(l.events) - 1; i >= 0 && len(out) < n; i-- {
		if e := l.events[i]; service == "" || e.Service == service {
			out = append(out, e)
		}
	}
	slices.Reverse(out)
	return out
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// transitions are the events a change of a Rollout's status from old to cur stands for, as the
// watch on Rollouts sees it: a verdict of each check that reached one, then what the core's state
// did (a rollout started, a step, a pause, an abort, ...). The controller records the core's own
// events as Kubernetes Events too; these are derived from the status so that every replica, leader
// or not, streams them at once and with the state they led to. at is when the watch saw the change,
// for a state that carries no time.
func transitions(old, cur *v1alpha1.Rollout, at time.Time) []rollout.Event {
	was, okOld, errOld := k8s.StateOf(old)
	now, okNew, errNew := k8s.StateOf(cur)
	if !okOld || !okNew || errOld != nil || errNew != nil {
		return nil // a new Rollout's first status, or one this controller did not write
	}
	by, cmd := "controller", rollout.CommandKind("")
	if c := cur.Status.LastCommand; c != nil && c.Error == "" && (old.Status.LastCommand == nil || old.Status.LastCommand.ID != c.ID) {
		by, cmd = c.By, rollout.CommandKind(c.Kind)
	}
	if !now.UpdatedAt.IsZero() {
		at = now.UpdatedAt
	}
	base := rollout.Event{Time: at, Service: cur.Namespace + "/" + cur.Name, By: by, Phase: now.Phase, Stable: now.Stable,
		Canary: now.Canary, Weight: now.Weight, Step: now.StepIndex}
	var out []rollout.Event
	for _, c := range cur.Status.Analysis {
		kind := verdictKind(c)
		if kind == "" {
			continue
		}
		if i := slices.IndexFunc(old.Status.Analysis, func(o v1alpha1.CheckStatus) bool { return o.ID == c.ID }); i >= 0 && old.Status.Analysis[i].Phase == c.Phase {
			continue // seen before
		}
		e := base
		e.Kind, e.Reason, e.By = kind, c.Message, "controller"
		out = append(out, e)
	}
	if was.Generation == now.Generation {
		return out
	}
	if kind := stateKind(was, now, cmd); kind != "" {
		e := base
		e.Kind, e.Reason = kind, now.Message
		if cmd == "" && now.SpecRelease != was.SpecRelease {
			e.By = "deployment" // a new template, or one set back, as the core says
		}
		out = append(out, e)
	}
	return out
}

// verdictKind is the event of a check's verdict ("" for none yet).
func verdictKind(c v1alpha1.CheckStatus) config.EventKind {
	gate := c.Kind == rollout.GateCheck
	switch rollout.VerdictPhase(c.Phase) {
	case rollout.Pass:
		if gate {
			return config.EventGatePassed
		}
		return config.EventAnalysisPassed
	case rollout.Fail:
		if gate {
			return config.EventGateFailed
		}
		return config.EventAnalysisFailed
	case rollout.Inconclusive:
		return config.EventAnalysisInconclusive
	}
	return ""
}

// byCommand is the event of a command the controller took, when the state changed with it.
var byCommand = map[rollout.CommandKind]config.EventKind{
	rollout.Abort: config.EventAborted, rollout.Undo: config.EventUndone, rollout.Retry: config.EventRetried,
	rollout.Restart: config.EventRestarted, rollout.PauseCmd: config.EventPaused, rollout.Resume: config.EventResumed,
}

// stateKind names the change of the core's state from was to now, taken with the command cmd
// ("" for none), as the core named it: "" for a change that is none of these, such as a message
// or a weight held back while pods start.
func stateKind(was, now rollout.State, cmd rollout.CommandKind) config.EventKind {
	if k, ok := byCommand[cmd]; ok {
		return k
	}
	switch {
	case !was.InFlight() && now.InFlight():
		if was.Phase == rollout.Degraded && was.Canary == now.Canary {
			return config.EventRetried
		}
		return config.EventRolloutStarted
	case was.InFlight() && now.InFlight() && now.Attempt > was.Attempt:
		return config.EventRestarted
	case was.InFlight() && now.Phase == rollout.Degraded:
		return config.EventAborted
	case now.Phase == rollout.Healthy && now.Stable != was.Stable:
		if was.InFlight() && now.Stable == was.Canary {
			return config.EventCompleted
		}
		return config.EventUndone
	case now.Phase == rollout.Healthy && (was.InFlight() || was.Phase == rollout.Degraded):
		return config.EventAborted // the release set back to the stable: the rollout is cancelled
	case now.InFlight() && now.StepIndex != was.StepIndex:
		if cmd == rollout.Promote {
			return config.EventPromoted
		}
		return config.EventStepStarted
	case was.Phase == rollout.Progressing && now.Phase == rollout.Paused:
		return config.EventPaused
	case was.Phase == rollout.Paused && now.Phase == rollout.Progressing:
		return config.EventResumed
	}
	return ""
}
