package rollout

import (
	"slices"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/redact"
)

// Status is the contract shared by the CLI, the API, the dashboard and tests:
// `aviary rollout status SVC -o json` and GET /api/v1/services/SVC/rollout.
type Status struct {
	Service          string        `json:"service"`
	Managed          bool          `json:"managed"` // false: the service has no release; its weights are the config's
	Phase            Phase         `json:"phase"`
	Release          string        `json:"release,omitempty"` // what the spec asks for
	StableVersion    string        `json:"stableVersion"`
	CanaryVersion    string        `json:"canaryVersion"`
	CanaryWeight     int           `json:"canaryWeight"`
	PreviousVersion  string        `json:"previousVersion,omitempty"`
	WarmUntil        *time.Time    `json:"warmUntil,omitempty"`
	Strategy         StrategyKind  `json:"strategy,omitempty"`
	CurrentStepIndex int           `json:"currentStepIndex"`
	Steps            []StepStatus  `json:"steps"`
	Route            *config.Match `json:"route,omitempty"`
	MirrorPercent    float64       `json:"mirrorPercent,omitempty"`
	Message          string        `json:"message"`
	PauseReasons     []PauseReason `json:"pauseReasons"`
	// StepRemaining is what is left of a timed pause, in seconds.
	StepRemaining *float64  `json:"stepRemainingSeconds,omitempty"`
	Checks        []Check   `json:"checks,omitempty"`
	StartedAt     time.Time `json:"startedAt,omitzero"`
	UpdatedAt     time.Time `json:"updatedAt,omitzero"`
	Generation    int64     `json:"generation"`
}

// StepStatus is one step and where the rollout is with it.
type StepStatus struct {
	Index int      `json:"index"`
	Kind  StepKind `json:"kind"`
	Text  string   `json:"text"`
	State string   `json:"state"` // done, current, pending, aborted
}

// StatusOf renders a state for people and programs at time now.
func StatusOf(s State, release string, now time.Time) Status {
	st := Status{
		Service: s.Service, Managed: true, Phase: s.Phase, Release: release, StableVersion: s.Stable,
		CanaryVersion: s.Canary, CanaryWeight: s.Weight, PreviousVersion: s.Previous, Strategy: s.Strategy,
		CurrentStepIndex: s.StepIndex, Route: s.Route, MirrorPercent: s.Mirror, Message: s.Message,
		PauseReasons: s.PauseReasons, Checks: s.Checks, StartedAt: s.StartedAt, UpdatedAt: s.UpdatedAt,
		Generation: s.Generation, Steps: []StepStatus{},
	}
	if len(st.Checks) > 0 { // gate URLs may carry tokens: show them without
		st.Checks = slices.Clone(st.Checks)
		for i := range st.Checks {
			if g := st.Checks[i].Gate; g != nil {
				gg := *g
				gg.URL = redact.URL(g.URL)
				st.Checks[i].Gate = &gg
			}
		}
	}
	if st.PauseReasons == nil {
		st.PauseReasons = []PauseReason{}
	}
	if !s.WarmUntil.IsZero() {
		w := s.WarmUntil
		st.WarmUntil = &w
	}
	for i, step := range s.Steps {
		state := "pending"
		switch {
		case i < s.StepIndex:
			state = "done"
		case i == s.StepIndex && s.InFlight():
			state = "current"
		case i == s.StepIndex:
			state = "aborted" // aborted, or cancelled by a release set back
		}
		st.Steps = append(st.Steps, StepStatus{Index: i, Kind: step.Kind, Text: step.Text, State: state})
	}
	if s.InFlight() && s.StepIndex < len(s.Steps) {
		if step := s.Steps[s.StepIndex]; step.Kind == Pause && step.Duration > 0 {
			at := now
			if !s.PausedAt.IsZero() {
				at = s.PausedAt
			}
			left := max(0, s.StepStartedAt.Add(step.Duration).Sub(at)).Seconds()
			st.StepRemaining = &left
		}
	}
	return st
}
