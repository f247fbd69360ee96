package config

import "strings"

// EventKind names a rollout event: the rollout core emits them, the store files some of them as
// history, Kubernetes mode records them as Events, and webhooks choose among them. The kinds live
// here, beside the webhook filter that names them, because every other package that uses them
// already imports config (config imports none of them).
type EventKind string

// The event kinds. Their values are the wire names in events, webhooks and the config file.
const (
	EventRolloutStarted       EventKind = "RolloutStarted"
	EventStepStarted          EventKind = "StepStarted"
	EventPaused               EventKind = "Paused"
	EventResumed              EventKind = "Resumed"
	EventPromoted             EventKind = "Promoted"
	EventAnalysisPassed       EventKind = "AnalysisPassed"
	EventAnalysisFailed       EventKind = "AnalysisFailed"
	EventAnalysisInconclusive EventKind = "AnalysisInconclusive"
	EventGatePassed           EventKind = "GatePassed"
	EventGateFailed           EventKind = "GateFailed"
	EventAborted              EventKind = "Aborted"
	EventCompleted            EventKind = "Completed"
	EventUndone               EventKind = "Undone"
	EventRetried              EventKind = "Retried"
	EventRestarted            EventKind = "Restarted"
	EventRolled               EventKind = "Rolled"
	EventScaledDown           EventKind = "ScaledDown"

	// Flag events: a flag set, deleted, or switched by the kill switch (through the API or the CLI).
	EventFlagChanged  EventKind = "FlagChanged"
	EventFlagDeleted  EventKind = "FlagDeleted"
	EventFlagDisabled EventKind = "FlagDisabled"
	EventFlagEnabled  EventKind = "FlagEnabled"

	// EventArmStopped: an experiment's arm broke a guardrail and its units went back to control.
	EventArmStopped EventKind = "ArmStopped"
)

// EventKinds are the kinds of events, the names webhooks choose from.
var EventKinds = []EventKind{
	EventRolloutStarted, EventStepStarted, EventPaused, EventResumed, EventPromoted, EventAnalysisPassed,
	EventAnalysisFailed, EventAnalysisInconclusive, EventGatePassed, EventGateFailed, EventAborted, EventCompleted,
	EventUndone, EventRetried, EventRestarted, EventRolled, EventScaledDown,
	EventFlagChanged, EventFlagDeleted, EventFlagDisabled, EventFlagEnabled, EventArmStopped,
}

// Warning reports whether an event of this kind says that something went wrong.
func (k EventKind) Warning() bool {
	switch k {
	case EventAborted, EventAnalysisFailed, EventGateFailed, EventAnalysisInconclusive, EventFlagDisabled, EventArmStopped:
		return true
	}
	return false
}

// joinKinds lists the names of a vocabulary for an error message.
func joinKinds[K ~string](ks []K) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}
