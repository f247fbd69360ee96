package gateway

import (
	"time"

	"aviary.dev/aviary/internal/config"
)

// ServiceStatus is a service as the gateway serves it now: GET /api/v1/services.
type ServiceStatus struct {
	Name       string              `json:"name"`
	Match      config.ServiceMatch `json:"match"`
	Stable     string              `json:"stableVersion"`
	Versions   []VersionStatus     `json:"versions"`
	Stickiness *config.Stickiness  `json:"stickiness,omitempty"`
	Routes     []config.Route      `json:"routes,omitempty"`
	Mirror     *config.Mirror      `json:"mirror,omitempty"`
}

// VersionStatus is one version: its weight and its endpoints' health.
type VersionStatus struct {
	Name      string           `json:"name"`
	Weight    int              `json:"weight"`
	Healthy   int              `json:"healthyEndpoints"`
	Ready     int              `json:"readyEndpoints"` // healthy and, when actively checked, passed a check since added
	Endpoints []EndpointStatus `json:"endpoints"`
	// LLMOversized counts the LLM requests over llm.maxRequestBytes that this version's rewrite
	// could not apply to (forwarded as the client wrote them, or refused), since the process started.
	LLMOversized int64 `json:"llmOversizedRequests,omitempty"`
}

// EndpointStatus is one endpoint's health.
type EndpointStatus struct {
	URL          string     `json:"url"`
	Available    bool       `json:"available"`
	ActiveHealth string     `json:"activeHealth"` // "healthy", "unhealthy", or "unchecked"
	EjectedUntil *time.Time `json:"ejectedUntil,omitempty"`
}

// Services reports every service of the current snapshot.
func (g *Gateway) Services() []ServiceStatus {
	now := g.now()
	snap := g.snap.Load()
	out := make([]ServiceStatus, 0, len(snap.services))
	for _, s := range snap.services {
		weights := map[string]int{}
		for _, t := range s.cfg.Traffic {
			weights[t.Version] = t.Weight
		}
		st := ServiceStatus{Name: s.name, Match: s.cfg.Match, Stable: s.stable.name,
			Stickiness: s.cfg.Stickiness, Routes: s.cfg.Routes, Mirror: s.cfg.Mirror}
		for _, v := range s.versions {
			vs := VersionStatus{Name: v.name, Weight: weights[v.name], LLMOversized: v.state.llm.oversized.Load()}
			for _, e := range v.endpoints {
				es := EndpointStatus{URL: e.raw, Available: e.available(now.UnixNano()), ActiveHealth: "unchecked"}
				if s.cfg.HealthCheck != nil {
					es.ActiveHealth = "unhealthy"
					if e.activeHealthy.Load() {
						es.ActiveHealth = "healthy"
					}
				}
				if u := e.ejectedUntil.Load(); u > now.UnixNano() {
					t := time.Unix(0, u).UTC()
					es.EjectedUntil = &t
				}
				if es.Available {
					vs.Healthy++
				}
				if e.ready(now.UnixNano(), s.cfg.HealthCheck != nil) {
					vs.Ready++
				}
				vs.Endpoints = append(vs.Endpoints, es)
			}
			st.Versions = append(st.Versions, vs)
		}
		out = append(out, st)
	}
	return out
}

// VersionHealth is what the gateway sees of one version's endpoints now.
type VersionHealth struct {
	Endpoints int // in the snapshot
	Available int // may get traffic now
	Ready     int // available and, when actively checked, passed a check since added
}

// Health reports the endpoint health of each version of service, by version name; nil when the
// current snapshot has no such service. It is the rollout controller's read on every tick, so it
// counts and allocates only the map: Services builds every service's full status for the API.
func (g *Gateway) Health(service string) map[string]VersionHealth {
	now := g.now().UnixNano()
	for _, s := range g.snap.Load().services {
		if s.name != service {
			continue
		}
		checked := s.cfg.HealthCheck != nil
		out := make(map[string]VersionHealth, len(s.versions))
		for _, v := range s.versions {
			h := VersionHealth{Endpoints: len(v.endpoints)}
			for _, e := range v.endpoints {
				if e.available(now) {
					h.Available++
				}
				if e.ready(now, checked) {
					h.Ready++
				}
			}
			out[v.name] = h
		}
		return out
	}
	return nil
}
