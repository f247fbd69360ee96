package api

import (
	"net/http"

	"aviary.dev/aviary/internal/fleet"
)

// FleetCounts answers a gateway replica's cumulative counts, for a controller that judges a fleet
// of replicas: *fleet.Counter.
type FleetCounts interface {
	Counts(services []string) fleet.Answer
}

// fleetCounts answers GET /api/v1/fleet/counts?service=NAME (repeatable; none: every service).
func (s *Server) fleetCounts(w http.ResponseWriter, r *http.Request) {
	names := r.URL.Query()["service"]
	if len(names) == 0 {
		for _, svc := range s.Services.Services() {
			names = append(names, svc.Name)
		}
	}
	writeJSON(w, http.StatusOK, s.Fleet.Counts(names))
}
