package rollout

import (
	"cmp"
	"fmt"
	"reflect"
	"time"

	"aviary.dev/aviary/internal/config"
)

// Input is what the controller observes on one tick.
type Input struct {
	Now time.Time
	// Service is the effective spec: the config file's service, or one applied through the API.
	Service config.Service
	// Health of each version's endpoints, as the gateway sees them.
	Health map[string]Health
	// Verdicts of running checks, by Check.ID; a check with no entry is still running.
	Verdicts map[string]Verdict
	// By names who changed the spec, for the events of a release change ("spec" when unknown).
	By string
}

// change collects one transition's events; State is changed in place on a copy.
type change struct {
	s      *State
	in     Input
	now    time.Time
	by     string
	events []Event
}

func (c *change) emit(kind config.EventKind, reason string) {
	c.s.Message = reason
	c.events = append(c.events, Event{Time: c.now, Service: c.s.Service, Kind: kind, Reason: reason, By: c.by,
		Phase: c.s.Phase, Stable: c.s.Stable, Canary: c.s.Canary, Weight: c.s.Weight, Step: c.s.StepIndex})
}

// Initial is the state of a managed service the controller has never seen. Its first version is
// stable, as the gateway treats it when no controller manages the service; the first Tick starts
// a rollout when the release names another version.
func Initial(svc config.Service, now time.Time) State {
	stable := svc.Release
	if len(svc.Versions) > 0 {
		stable = svc.Versions[0].Name
	}
	return State{Service: svc.Name, Phase: Healthy, Stable: stable, Message: "serving " + stable, UpdatedAt: now}
}

// Tick moves a rollout on by what the input shows. It returns the next state and the events that
// explain the change. An unchanged state comes back with the same Generation; a change without
// events (a newer verdict message, say) comes back with a new one.
func Tick(s State, in Input) (State, []Event) {
	next := s.clone()
	c := &change{s: &next, in: in, now: in.Now, by: "controller"}
	if in.Service.Release != next.SpecRelease {
		c.by = cmp.Or(in.By, "spec")
		c.releaseChanged()
		c.by = "controller"
	}
	if next.InFlight() {
		c.watchChecks()
	}
	if next.InFlight() {
		c.advance()
	}
	if next.InFlight() {
		c.watchHealth() // after advance: the steps just entered decide whether the canary takes traffic
	}
	if !next.WarmUntil.IsZero() && !in.Now.Before(next.WarmUntil) { // whatever the phase: nobody can reach it
		next.WarmUntil = time.Time{}
		c.emit(config.EventScaledDown, fmt.Sprintf("%s is no longer kept warm; undo now rolls out again", next.Previous))
	}
	return c.finish(s)
}

// finish stamps a changed state; an unchanged one is returned as it was, Generation and all.
func (c *change) finish(old State) (State, []Event) {
	if len(c.events) == 0 && reflect.DeepEqual(old, *c.s) {
		return old, nil
	}
	c.s.UpdatedAt = c.now
	c.s.Generation = old.Generation + 1
	return *c.s, c.events
}

// releaseChanged follows a new release in the spec.
func (c *change) releaseChanged() {
	s := c.s
	old, rel := s.SpecRelease, c.in.Service.Release
	s.SpecRelease = rel
	switch {
	case rel == s.Stable:
		if s.InFlight() || s.Phase == Degraded {
			canary := s.Canary
			c.clearCanary()
			s.Canary, s.Phase = "", Healthy
			c.emit(config.EventAborted, fmt.Sprintf("release set back to %s; the rollout of %s is cancelled and %s serves everyone", rel, canary, rel))
		}
	case rel == s.Canary && s.InFlight():
		// Already on its way.
	default:
		reason := fmt.Sprintf("release changed from %s to %s", orNone(old), rel)
		if s.InFlight() {
			reason += fmt.Sprintf("; the rollout of %s is superseded", s.Canary)
		}
		c.start(rel, reason, config.EventRolloutStarted)
	}
}

func orNone(v string) string {
	if v == "" {
		return "(none)"
	}
	return v
}

// start begins a rollout of version to the service's strategy.
func (c *change) start(version, reason string, kind config.EventKind) {
	s := c.s
	c.clearCanary()
	s.Canary, s.Phase = version, Progressing
	s.Strategy, s.Steps = Compile(c.in.Service.Strategy)
	s.StepIndex, s.Attempt, s.StartedAt = 0, s.Attempt+1, c.now
	s.UnavailableSince = time.Time{}
	c.emit(kind, fmt.Sprintf("%s; rolling out %s over %s by %s (%d steps)", reason, version, s.Stable, s.Strategy, len(s.Steps)))
	if len(s.Steps) > 0 { // a canary without steps is valid: advance completes it at once
		c.enter()
	}
}

// clearCanary takes every bit of traffic away from the canary and stops its checks.
func (c *change) clearCanary() {
	s := c.s
	s.Weight, s.Route, s.Mirror, s.Switched = 0, nil, 0, false
	s.Admitted, s.Withdrawn = 0, 0
	s.Checks, s.PauseReasons, s.PausedAt = nil, nil, time.Time{}
}

// watchChecks records verdicts and aborts on a failed background check.
func (c *change) watchChecks() {
	s, in := c.s, c.in
	for i := range s.Checks {
		ch := &s.Checks[i]
		v, ok := in.Verdicts[ch.ID]
		if !ok {
			continue
		}
		// Only a decision is state worth writing down: a running verdict's evidence changes on every
		// look, and the controller shows the live one (Controller.Status) without storing it.
		decided := v.Phase != Running && (ch.Last == nil || ch.Last.Phase != v.Phase)
		if decided {
			vv := v
			ch.Last = &vv
		}
		if ch.Kind == BackgroundAnalysis && v.Phase == Fail {
			c.abort(config.EventAnalysisFailed, "background analysis failed: "+v.Message)
			return
		}
		// A background analysis that gave up deciding must not leave the rollout unwatched.
		if ch.Kind == BackgroundAnalysis && v.Phase == Inconclusive && decided && !hasReason(s.PauseReasons, InconclusiveReason) {
			s.PauseReasons = append(s.PauseReasons, PauseReason{Kind: InconclusiveReason, Since: c.now})
			c.setPhase()
			c.emit(config.EventAnalysisInconclusive, "background analysis "+joinNames(ch.Templates)+" is inconclusive ("+v.Message+
				"); promote to go on without it, or abort")
		}
	}
}

// watchHealth aborts when the canary, while it takes traffic, has been unavailable too long.
func (c *change) watchHealth() {
	s, in := c.s, c.in
	grace := time.Duration(-1) // a service without a strategy (no release) is not watched
	if st := in.Service.Strategy; st != nil {
		grace = st.AbortOnUnhealthy.Duration // defaulted by config; negative turns the watch off
	}
	h, known := in.Health[s.Canary]
	switch {
	case !known || h.Available > 0 || grace < 0 || !s.takesTraffic():
		s.UnavailableSince = time.Time{}
	case s.UnavailableSince.IsZero():
		s.UnavailableSince = c.now
	case c.now.Sub(s.UnavailableSince) >= grace:
		c.abort(config.EventAborted, fmt.Sprintf("%s has had no available endpoint for %s (health checks or passive ejection); traffic is back on %s",
			s.Canary, roundFor(c.now.Sub(s.UnavailableSince)), s.Stable))
	}
}

// roundFor rounds a duration for people: to the second, or to 10 ms below one.
func roundFor(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Second)
}

// takesTraffic reports whether the canary is meant to get requests now: an unavailable canary that
// is still starting (recreate and rolling wait for it at no weight) is not a reason to abort; the
// progress deadline covers one that never starts.
func (s *State) takesTraffic() bool { return s.Weight > 0 || s.Route != nil || s.Mirror > 0 }

// abort sends every request back to stable at once.
func (c *change) abort(kind config.EventKind, reason string) {
	s := c.s
	c.clearCanary()
	s.Phase = Degraded
	c.emit(kind, reason+"; "+s.Canary+" gets no traffic (retry with `aviary rollout retry "+s.Service+"`)")
}

// advance completes as many steps as the input allows, entering each next one.
func (c *change) advance() {
	s := c.s
	for s.InFlight() && s.StepIndex < len(s.Steps) {
		if !c.stepDone() {
			return
		}
		s.StepIndex++
		if s.StepIndex < len(s.Steps) {
			c.enter()
		}
	}
	if s.InFlight() && s.StepIndex >= len(s.Steps) {
		c.complete(config.EventCompleted, fmt.Sprintf("all %d steps done", len(s.Steps)))
	}
}

// enter makes the current step take effect.
func (c *change) enter() {
	s := c.s
	st := s.Steps[s.StepIndex]
	s.StepStartedAt, s.ProgressAt = c.now, c.now
	s.PauseReasons = dropReason(s.PauseReasons, PauseStepReason, InconclusiveReason)
	s.Checks = keepBackground(s.Checks)
	if len(st.Background) > 0 {
		s.Checks = append(s.Checks, Check{ID: c.checkID("background"), Kind: BackgroundAnalysis,
			Step: s.StepIndex, Templates: st.Background, StartedAt: c.now})
	}
	switch st.Kind {
	case SetWeight:
		s.Weight = st.Weight
	case SetRoute:
		s.Route = st.Match
	case SetMirror:
		s.Mirror = st.Percent
	case Switch:
		s.Weight, s.Switched = 100, true
	case Pause:
		s.PauseReasons = append(s.PauseReasons, PauseReason{Kind: PauseStepReason, Since: c.now})
	case Analysis:
		ch := Check{ID: c.checkID("analysis"), Kind: StepAnalysis, Step: s.StepIndex, Templates: st.Templates, StartedAt: c.now}
		if st.Duration > 0 {
			ch.Deadline = c.now.Add(st.Duration)
		}
		s.Checks = append(s.Checks, ch)
	case Gate:
		s.Checks = append(s.Checks, Check{ID: c.checkID("gate"), Kind: GateCheck, Step: s.StepIndex, Gate: st.Gate, StartedAt: c.now})
	case RollStep:
		s.Admitted = min(st.Weight, endpointCount(c.in.Service, s.Canary))
	}
	c.setPhase()
	c.emit(config.EventStepStarted, fmt.Sprintf("step %d/%d: %s", s.StepIndex+1, len(s.Steps), st.Text))
}

func (c *change) checkID(kind string) string {
	return fmt.Sprintf("%s/%d/%d/%s", c.s.Service, c.s.Attempt, c.s.StepIndex, kind)
}

// setPhase derives Progressing or Paused from the pause reasons.
func (c *change) setPhase() {
	if len(c.s.PauseReasons) > 0 {
		c.s.Phase = Paused
	} else {
		c.s.Phase = Progressing
	}
}

// complete makes the canary stable at 100%.
func (c *change) complete(kind config.EventKind, reason string) {
	s := c.s
	old := s.Stable
	s.Previous, s.Stable = old, s.Canary
	c.clearCanary()
	s.Canary, s.Phase, s.StepIndex = "", Healthy, len(s.Steps)
	s.WarmUntil = c.now.Add(scaleDownDelay(c.in.Service))
	c.emit(kind, fmt.Sprintf("%s; %s is stable and serves everyone (%s stays warm until %s for an instant undo)",
		reason, s.Stable, old, s.WarmUntil.Format(time.RFC3339)))
}
