package rollout

import (
	"time"

	"aviary.dev/aviary/internal/config"
)

// Phase of a service's rollout.
type Phase string

// The phases. Healthy: no rollout in flight, stable serves everyone. Progressing: a rollout moves
// on by itself. Paused: it waits for time, a verdict or a person (PauseReasons say which).
// Degraded: it was aborted or rolled back; the new version gets no traffic.
const (
	Healthy     Phase = "Healthy"
	Progressing Phase = "Progressing"
	Paused      Phase = "Paused"
	Degraded    Phase = "Degraded"
)

// PauseReason says why a rollout waits.
type PauseReason struct {
	Kind  string    `json:"kind"` // PauseStep, User, AnalysisInconclusive, GateWaiting
	Since time.Time `json:"since"`
}

// Pause reason kinds.
const (
	PauseStepReason    = "PauseStep"
	UserPauseReason    = "User"
	InconclusiveReason = "AnalysisInconclusive"
)

// State is everything the controller knows about one service's rollout. It is what the store keeps;
// the traffic plan is a function of it (PlanOf), so a restored State serves the same traffic.
type State struct {
	Service string `json:"service"`
	Phase   Phase  `json:"phase"`
	// Stable serves whoever is not sent elsewhere; Canary is the version being released (or, when
	// Degraded, the one that was aborted). Previous is the stable before the last completed rollout.
	Stable   string `json:"stableVersion"`
	Canary   string `json:"canaryVersion,omitempty"`
	Previous string `json:"previousVersion,omitempty"`
	// SpecRelease is the release the spec named when the controller last looked. A rollout starts
	// when the spec's release changes, not merely when it differs from Stable, so that undo and
	// abort are not undone by the next tick.
	SpecRelease string `json:"specRelease,omitempty"`

	// Traffic towards the canary.
	Weight int           `json:"canaryWeight"`
	Route  *config.Match `json:"route,omitempty"`  // requests that match go to the canary
	Mirror float64       `json:"mirror,omitempty"` // percent of traffic copied to the canary
	// Rolling: how many of the canary's endpoints are admitted, and how many of the stable's
	// are withdrawn; -1 when the strategy is not rolling.
	Admitted  int `json:"admitted,omitempty"`
	Withdrawn int `json:"withdrawn,omitempty"`

	Strategy      StrategyKind `json:"strategy,omitempty"`
	Steps         []Step       `json:"steps,omitempty"`
	StepIndex     int          `json:"currentStepIndex"`
	StepStartedAt time.Time    `json:"stepStartedAt,omitzero"`
	// Attempt counts starts, retries and restarts; check IDs include it so that a new attempt
	// never reads an old attempt's verdict.
	Attempt int `json:"attempt,omitempty"`

	PauseReasons []PauseReason `json:"pauseReasons,omitempty"`
	PausedAt     time.Time     `json:"pausedAt,omitzero"` // when a person paused; a timed step resumes with its remaining time
	Checks       []Check       `json:"checks,omitempty"`  // analyses and gates running now
	Switched     bool          `json:"switched,omitempty"`

	UnavailableSince time.Time `json:"unavailableSince,omitzero"`
	ProgressAt       time.Time `json:"progressAt,omitzero"` // the last progress of a step that waits for readiness
	WarmUntil        time.Time `json:"warmUntil,omitzero"`  // Previous stays routable until then
	Message          string    `json:"message"`
	StartedAt        time.Time `json:"startedAt,omitzero"`
	UpdatedAt        time.Time `json:"updatedAt,omitzero"`
	// Generation increases with every change; the store refuses nothing, but tests use it to see
	// that no transition was lost or written twice.
	Generation int64 `json:"generation"`
}

// InFlight reports whether a rollout is moving (Progressing or Paused).
func (s *State) InFlight() bool { return s.Phase == Progressing || s.Phase == Paused }

// Check is an analysis or gate that the rollout waits on, or that runs beside it.
type Check struct {
	ID        string           `json:"id"`
	Kind      string           `json:"kind"` // analysis, background, gate
	Step      int              `json:"step"` // the step that started it
	Templates []string         `json:"templates,omitempty"`
	Gate      *config.GateStep `json:"gate,omitempty"`
	StartedAt time.Time        `json:"startedAt"`
	Deadline  time.Time        `json:"deadline,omitzero"` // an analysis with no verdict by then is inconclusive
	Last      *Verdict         `json:"lastVerdict,omitempty"`
}

// Check kinds.
const (
	StepAnalysis       = "analysis"
	BackgroundAnalysis = "background"
	GateCheck          = "gate"
)

// Verdict is what a verdict source says about a check now.
type Verdict struct {
	Phase   VerdictPhase `json:"phase"`
	Message string       `json:"message,omitempty"` // the decision in words, with its evidence
	// Evidence is the per-metric record behind the verdict, as the verdict source shapes it.
	Evidence any       `json:"evidence,omitempty"`
	At       time.Time `json:"at,omitzero"`
}

// VerdictPhase is the outcome of a check.
type VerdictPhase string

// Verdict phases: Running (no decision yet), Pass, Fail, Inconclusive (the source gave up
// deciding: a person must).
const (
	Running      VerdictPhase = "Running"
	Pass         VerdictPhase = "Pass"
	Fail         VerdictPhase = "Fail"
	Inconclusive VerdictPhase = "Inconclusive"
)

// Health is what the gateway sees of a version's endpoints.
type Health struct {
	Endpoints int `json:"endpoints"`
	Available int `json:"available"` // may get traffic now
	Ready     int `json:"ready"`     // available and, with active checks, has passed one
}

// Event is one transition, as it is recorded, streamed and sent to webhooks.
type Event struct {
	Seq     uint64    `json:"seq,omitempty"` // set by the store
	Time    time.Time `json:"time"`
	Service string    `json:"service"`
	Flag    string    `json:"flag,omitempty"` // the flag of a flag event (Service is then empty)
	// Experiment is the experiment of an experiment's event (Service or Flag is its target's).
	Experiment string           `json:"experiment,omitempty"`
	Kind       config.EventKind `json:"kind"`
	Reason     string           `json:"reason"`
	By         string           `json:"by"` // controller, config, or the API caller
	Phase      Phase            `json:"phase"`
	Stable     string           `json:"stableVersion"`
	Canary     string           `json:"canaryVersion,omitempty"`
	Weight     int              `json:"canaryWeight"`
	Step       int              `json:"step"`
}
