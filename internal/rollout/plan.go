package rollout

import (
	"slices"

	"aviary.dev/aviary/internal/config"
)

// Plan is the traffic a rollout state asks of a service: what the gateway must serve.
type Plan struct {
	Stable string        `json:"stable"`
	Canary string        `json:"canary,omitempty"`
	Weight int           `json:"weight"`
	Route  *config.Match `json:"route,omitempty"`
	Mirror float64       `json:"mirror,omitempty"`
	// Admitted and Withdrawn trim the canary's and the stable's endpoint lists (rolling); Admitted
	// is -1 when every canary endpoint is in.
	Admitted  int `json:"admitted"`
	Withdrawn int `json:"withdrawn,omitempty"`
	// Warm is another version kept routable (the previous stable, for an instant undo).
	Warm string `json:"warm,omitempty"`
}

// PlanOf derives the traffic plan from a state; it is all the gateway needs to know.
func PlanOf(s State) Plan {
	p := Plan{Stable: s.Stable, Canary: s.Canary, Weight: s.Weight, Route: s.Route, Mirror: s.Mirror, Admitted: -1}
	if s.Strategy == StrategyRolling && s.InFlight() {
		p.Admitted, p.Withdrawn = s.Admitted, s.Withdrawn
	}
	if !s.WarmUntil.IsZero() && s.Previous != s.Stable {
		p.Warm = s.Previous
	}
	return p
}

// Service is svc as the gateway must serve it under the plan: the stable version first, weights
// between stable and canary, the canary's segment route after the user's own routes, the plan's
// mirror (or the user's), and only the versions that someone can reach. Versions that are neither
// stable, canary, warm nor named by a user's route or mirror are left out: that is what scaling
// down means here, and it stops their health checks. The result is unmanaged (no release, no
// strategy): its weights are the plan's, and it passes config.Validate as the gateway requires.
func (p Plan) Service(svc config.Service) config.Service {
	out := svc
	out.Release, out.Strategy = "", nil
	keep := []string{p.Stable}
	if p.Canary != "" && p.Canary != p.Stable {
		keep = append(keep, p.Canary)
	}
	if p.Warm != "" && !slices.Contains(keep, p.Warm) {
		keep = append(keep, p.Warm)
	}
	for _, r := range svc.Routes {
		if !slices.Contains(keep, r.Version) {
			keep = append(keep, r.Version)
		}
	}
	if m := svc.Mirror; m != nil && !slices.Contains(keep, m.Version) {
		keep = append(keep, m.Version)
	}
	out.Versions = nil
	for _, name := range keep {
		i := slices.IndexFunc(svc.Versions, func(v config.Version) bool { return v.Name == name })
		if i < 0 {
			continue // a version that the spec no longer has; validation stops this for the stable
		}
		v := svc.Versions[i]
		switch {
		case name == p.Canary && p.Admitted >= 0:
			v.Endpoints = v.Endpoints[:max(1, min(p.Admitted, len(v.Endpoints)))]
		case name == p.Stable && p.Withdrawn > 0:
			v.Endpoints = v.Endpoints[:max(1, len(v.Endpoints)-p.Withdrawn)]
		}
		out.Versions = append(out.Versions, v)
	}
	out.Traffic = []config.Traffic{{Version: p.Stable, Weight: 100 - p.Weight}}
	if len(out.Versions) > 1 && out.Versions[1].Name == p.Canary {
		out.Traffic = append(out.Traffic, config.Traffic{Version: p.Canary, Weight: p.Weight})
	} else {
		out.Traffic[0].Weight = 100
	}
	out.Routes = slices.Clone(svc.Routes)
	if p.Route != nil && p.Canary != "" {
		out.Routes = append(out.Routes, config.Route{Match: *p.Route, Version: p.Canary})
	}
	if p.Mirror > 0 && p.Canary != "" {
		out.Mirror = svc.ShadowMirror(p.Canary, p.Mirror)
	}
	return out
}
