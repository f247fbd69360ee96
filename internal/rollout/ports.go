package rollout

import (
	"time"

	"aviary.dev/aviary/internal/config"
)

// The controller's ports: small interfaces that its users own. The store, the gateway, verdict
// sources and notifiers are adapters behind them.

// Store keeps rollout state and events durably.
type Store interface {
	// Commit writes a service's new state and the events that explain it in one durable
	// transaction, and returns the events with their sequence numbers.
	Commit(service string, s State, events []Event) ([]Event, error)
	// States returns every stored state, by service.
	States() (map[string]State, error)
}

// Router serves traffic plans: the in-process gateway, or a Kubernetes HTTPRoute.
type Router interface {
	Apply(services []config.Service)
}

// HealthSource tells how each version's endpoints are doing.
type HealthSource interface {
	Health(service string) map[string]Health
}

// Run is a check as a verdict source sees it.
type Run struct {
	ID        string           `json:"id"`
	Kind      string           `json:"kind"` // analysis, background, gate
	Service   string           `json:"service"`
	Stable    string           `json:"stable"`
	Canary    string           `json:"canary"`
	Templates []string         `json:"templates,omitempty"`
	Gate      *config.GateStep `json:"gate,omitempty"`
	StartedAt time.Time        `json:"startedAt"`
	// Weight is the canary's share of traffic now: with a weight, a canary that gets no requests
	// while the baseline does is a routing failure.
	Weight int `json:"weight"`
	// Shadow: the canary gets no requests of its own, only mirrored copies (a shadow phase), so it
	// is measured by the copies.
	Shadow bool `json:"shadow,omitempty"`
}

// Judge gives verdicts on checks. Verdict is called on every tick while the check runs and must not
// block: a judge that needs time works in the background and answers Running meanwhile. Forget
// is called once a check is over, so that the judge can drop what it keeps for it.
type Judge interface {
	Verdict(r Run) Verdict
	Forget(id string)
}

// EvidenceKeeper is a Judge that keeps evidence across the checks of a rollout (its steps, its
// background analysis, and restarts of the process): RolloutEnded tells it that service's rollout
// is over (its state is no longer in flight), so that it drops what it keeps for it.
type EvidenceKeeper interface {
	RolloutEnded(service string)
}
