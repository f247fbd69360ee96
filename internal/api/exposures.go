package api

import (
	"fmt"
	"net/http"
	"strconv"

	"aviary.dev/aviary/internal/store"
)

// Exposures reads the flags' exposure records: who was given which variant first (for experiments).
type Exposures interface {
	Exposures(flag string, recent int) (store.ExposureCounts, error)
}

// maxRecentExposures bounds ?recent=.
const maxRecentExposures = 1000

// exposures answers GET /api/v1/flags/{key}/exposures[?recent=N]: the flag's units by variant and
// the N most recent first exposures (default 20).
func (s *Server) exposures(w http.ResponseWriter, r *http.Request) {
	recent := 20
	if q := r.URL.Query().Get("recent"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 0 || n > maxRecentExposures {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("recent=%q: give a number of exposures from 0 to %d", q, maxRecentExposures))
			return
		}
		recent = n
	}
	c, err := s.Exposures.Exposures(r.PathValue("key"), recent)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("read the exposures: %v; check the store's file and the server's log", err))
		return
	}
	writeJSON(w, http.StatusOK, c)
}
