package rollout

import (
	"fmt"
	"slices"
	"time"

	"aviary.dev/aviary/internal/config"
)

// CommandKind is what a person (or a program) may ask of a rollout.
type CommandKind string

// Command kinds.
const (
	Promote  CommandKind = "promote" // end the current step; with Full, go straight to 100%
	PauseCmd CommandKind = "pause"
	Resume   CommandKind = "resume"
	Abort    CommandKind = "abort"
	Retry    CommandKind = "retry"   // start again after an abort
	Undo     CommandKind = "undo"    // back to the previous stable after completion
	Restart  CommandKind = "restart" // start the rollout in flight again from its first step
	// StartCmd rolls out Version when no rollout is in flight (e.g. the release again after an
	// undo); the API's start maps to it when the spec already names that release.
	StartCmd CommandKind = "start"
)

// Commands lists the command kinds that the API's actions name.
var Commands = []CommandKind{Promote, PauseCmd, Resume, Abort, Retry, Undo, Restart}

// Command is one control request.
type Command struct {
	Kind    CommandKind `json:"kind"`
	Version string      `json:"version,omitempty"` // for start
	Full    bool        `json:"full,omitempty"`
	By      string      `json:"by,omitempty"`
	Reason  string      `json:"reason,omitempty"`
}

// ConflictError is a command that does not fit the rollout's phase. Its message says what to do.
type ConflictError struct{ Msg string }

func (e *ConflictError) Error() string { return e.Msg }

func conflictf(format string, args ...any) error {
	return &ConflictError{Msg: fmt.Sprintf(format, args...)}
}

// Do applies a command. A command that does not fit the phase returns a *ConflictError and the
// state unchanged.
func Do(s State, cmd Command, in Input) (State, []Event, error) {
	next := s.clone()
	by := cmd.By
	if by == "" {
		by = "api"
	}
	c := &change{s: &next, in: in, now: in.Now, by: by}
	if err := c.do(cmd); err != nil {
		return s, nil, err
	}
	if next.InFlight() {
		c.advance() // the steps that follow a promote may take effect at once
	}
	st, evs := c.finish(s)
	return st, evs, nil
}

func (c *change) do(cmd Command) error {
	s := c.s
	why := ""
	if cmd.Reason != "" {
		why = ": " + cmd.Reason
	}
	switch cmd.Kind {
	case Promote, PauseCmd, Abort, Restart:
		if err := c.needInFlight(); err != nil {
			return err
		}
	}
	switch cmd.Kind {
	case Promote:
		c.promote(cmd.Full, why)
	case PauseCmd:
		return c.pause(why)
	case Resume:
		return c.resume(why)
	case Abort:
		c.abort(config.EventAborted, fmt.Sprintf("aborted by %s%s", c.by, why))
	case Retry:
		if s.Phase != Degraded || s.Canary == "" {
			return conflictf("nothing to retry for %s (phase %s); retry follows an abort", s.Service, s.Phase)
		}
		if endpointCount(c.in.Service, s.Canary) == 0 {
			return conflictf("%s is no longer a version of %s; add it back to the spec to retry it, or set release to another version", s.Canary, s.Service)
		}
		c.start(s.Canary, fmt.Sprintf("retried by %s%s", c.by, why), config.EventRetried)
	case Restart:
		c.start(s.Canary, fmt.Sprintf("restarted from the first step by %s%s", c.by, why), config.EventRestarted)
	case Undo:
		return c.undo(why)
	case StartCmd:
		switch {
		case s.InFlight():
			return conflictf("a rollout of %s is in flight; abort it first, or let it finish", s.Canary)
		case cmd.Version == s.Stable:
			return conflictf("%s already serves %s", cmd.Version, s.Service)
		case endpointCount(c.in.Service, cmd.Version) == 0:
			return conflictf("%s is not a version of %s; give its endpoints with --endpoint URL", cmd.Version, s.Service)
		}
		c.start(cmd.Version, fmt.Sprintf("started by %s%s", c.by, why), config.EventRolloutStarted)
	default:
		return conflictf("unknown command %q; use one of %v", cmd.Kind, Commands)
	}
	return nil
}

// promote ends the step in force, or, full, the whole rollout.
func (c *change) promote(full bool, why string) {
	s := c.s
	if full {
		c.emit(config.EventPromoted, fmt.Sprintf("promoted to 100%% by %s%s", c.by, why))
		c.complete(config.EventCompleted, "promoted fully")
		return
	}
	st := s.Steps[s.StepIndex]
	s.PausedAt, s.PauseReasons = time.Time{}, nil
	// A person going on past an inconclusive background analysis goes on without it.
	s.Checks = slices.DeleteFunc(keepBackground(s.Checks), func(ch Check) bool {
		return ch.Last != nil && ch.Last.Phase == Inconclusive
	})
	s.StepIndex++
	c.emit(config.EventPromoted, fmt.Sprintf("step %d (%s) ended by %s%s", s.StepIndex, st.Text, c.by, why))
	if s.StepIndex < len(s.Steps) {
		c.enter()
	}
}

// pause holds the rollout for a person.
func (c *change) pause(why string) error {
	s := c.s
	if !s.PausedAt.IsZero() {
		return conflictf("the rollout of %s is already paused by a person; resume it with `aviary rollout resume %s`", s.Canary, s.Service)
	}
	s.PausedAt = c.now
	s.PauseReasons = append(s.PauseReasons, PauseReason{Kind: UserPauseReason, Since: c.now})
	c.setPhase()
	c.emit(config.EventPaused, fmt.Sprintf("paused by %s%s; resume with `aviary rollout resume %s`", c.by, why, s.Service))
	return nil
}

// resume ends a person's pause; the time it held does not count against the step's clocks.
func (c *change) resume(why string) error {
	s := c.s
	if !s.InFlight() || s.PausedAt.IsZero() {
		return conflictf("%s is not paused by a person (phase %s); a pause step waits for `aviary rollout promote %s`", s.Service, s.Phase, s.Service)
	}
	held := c.now.Sub(s.PausedAt)
	s.StepStartedAt = s.StepStartedAt.Add(held) // a timed step keeps the time it had left
	if !s.ProgressAt.IsZero() {
		s.ProgressAt = s.ProgressAt.Add(held) // and a readiness wait its progress deadline
	}
	for i := range s.Checks {
		if !s.Checks[i].Deadline.IsZero() {
			s.Checks[i].Deadline = s.Checks[i].Deadline.Add(held)
		}
	}
	s.PausedAt = time.Time{}
	s.PauseReasons = dropReason(s.PauseReasons, UserPauseReason)
	c.setPhase()
	c.emit(config.EventResumed, fmt.Sprintf("resumed by %s after %s%s", c.by, roundFor(held), why))
	return nil
}

func (c *change) needInFlight() error {
	s := c.s
	switch {
	case s.Phase == Degraded:
		return conflictf("the rollout of %s to %s was aborted; start it again with `aviary rollout retry %s`", s.Service, s.Canary, s.Service)
	case !s.InFlight():
		return conflictf("no rollout in flight for %s; start one with `aviary rollout start %s --version VERSION` or change its release", s.Service, s.Service)
	}
	return nil
}

// undo goes back to the previous stable: at once while it is warm, else by the strategy.
func (c *change) undo(why string) error {
	s := c.s
	switch {
	case s.InFlight():
		return conflictf("a rollout of %s is in flight; `aviary rollout abort %s` sends traffic back to %s", s.Canary, s.Service, s.Stable)
	case s.Previous == "":
		return conflictf("%s has no previous stable version to go back to; `aviary rollout start %s --version VERSION` rolls out any version", s.Service, s.Service)
	case endpointCount(c.in.Service, s.Previous) == 0:
		return conflictf("%s is no longer a version of %s; add it back to the spec to go back to it", s.Previous, s.Service)
	}
	if !s.WarmUntil.IsZero() && c.now.Before(s.WarmUntil) {
		cur := s.Stable
		c.clearCanary()
		s.Stable, s.Previous, s.Canary, s.Phase = s.Previous, cur, "", Healthy
		s.WarmUntil = c.now.Add(scaleDownDelay(c.in.Service))
		c.emit(config.EventUndone, fmt.Sprintf("undone by %s%s: %s serves everyone again at once (it was still warm); %s stays warm until %s",
			c.by, why, s.Stable, cur, s.WarmUntil.Format(time.RFC3339)))
		return nil
	}
	c.start(s.Previous, fmt.Sprintf("undo by %s%s: %s is no longer warm, so it rolls out again", c.by, why, s.Previous), config.EventUndone)
	return nil
}
