package api

import (
	"errors"
	"net/http"

	"aviary.dev/aviary/internal/quality"
)

// Feedback joins a late quality signal back to the version that served a request.
type Feedback interface {
	Feedback(f quality.Feedback) (service, version string, err error)
}

// feedback serves POST /api/v1/feedback {requestId, score | label}.
func (s *Server) feedback(w http.ResponseWriter, r *http.Request) {
	var f quality.Feedback
	if err := decode(w, r, &f); err != nil {
		writeBodyError(w, err)
		return
	}
	service, version, err := s.Feedback.Feedback(f)
	switch {
	case errors.Is(err, quality.ErrUnknownRequest):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, quality.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		writeJSON(w, http.StatusOK, map[string]string{"requestId": f.RequestID, "service": service, "version": version})
	}
}
