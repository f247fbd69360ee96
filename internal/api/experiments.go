package api

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"aviary.dev/aviary/internal/experiment"
	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/internal/store"
)

// Experiments runs the experiments: *experiment.Manager.
type Experiments interface {
	List() ([]experiment.Summary, error)
	Start(name string) (store.ExperimentState, error)
	Stop(name string) (store.ExperimentState, error)
	Conclude(name, arm string) (store.ExperimentState, error)
	Results(name string) (experiment.Results, error)
	Units(name string, w io.Writer) error
	Track([]store.TrackedEvent) (added, dropped int, err error)
}

// TrackBatch is the body of POST /api/v1/track.
type TrackBatch struct {
	Events []store.TrackedEvent `json:"events"`
}

// ExperimentCommand is the body of POST /api/v1/experiments/{name}/start and /stop; it may be
// empty.
type ExperimentCommand struct {
	// Reason says why, in words; it is logged with the caller (the dashboard asks for one).
	Reason string `json:"reason"`
}

// ConcludeRequest is the body of POST /api/v1/experiments/{name}/conclude.
type ConcludeRequest struct {
	Arm    string `json:"arm"`
	Reason string `json:"reason"` // as in ExperimentCommand
}

// TrackResult is its answer.
type TrackResult struct {
	Added   int `json:"added"`   // new events
	Dropped int `json:"dropped"` // refused because the store holds store.MaxTrackedEvents
}

func (s *Server) experimentRoutes(api *http.ServeMux) {
	api.HandleFunc("POST /api/v1/track", s.track)
	api.HandleFunc("GET /api/v1/experiments", func(w http.ResponseWriter, _ *http.Request) {
		list, err := s.Experiments.List()
		experimentReply(w, map[string]any{"experiments": list}, err)
	})
	api.HandleFunc("GET /api/v1/experiments/{name}/results", func(w http.ResponseWriter, r *http.Request) {
		res, err := s.Experiments.Results(r.PathValue("name"))
		experimentReply(w, res, err)
	})
	api.HandleFunc("POST /api/v1/experiments/{name}/start", func(w http.ResponseWriter, r *http.Request) {
		s.experimentCommand(w, r, "start", s.Experiments.Start)
	})
	api.HandleFunc("POST /api/v1/experiments/{name}/stop", func(w http.ResponseWriter, r *http.Request) {
		s.experimentCommand(w, r, "stop", s.Experiments.Stop)
	})
	api.HandleFunc("POST /api/v1/experiments/{name}/conclude", func(w http.ResponseWriter, r *http.Request) {
		var req ConcludeRequest
		if err := decode(w, r, &req); err != nil {
			writeBodyError(w, err)
			return
		}
		st, err := s.Experiments.Conclude(r.PathValue("name"), req.Arm)
		s.logExperimentCommand(r, "conclude", req.Reason, err, "arm", req.Arm)
		experimentReply(w, st, err)
	})
	api.HandleFunc("GET /api/v1/experiments/{name}/units.csv", s.unitsCSV)
}

// experimentCommand serves start and stop: an optional body with a reason.
func (s *Server) experimentCommand(w http.ResponseWriter, r *http.Request, action string, do func(string) (store.ExperimentState, error)) {
	var req ExperimentCommand
	if err := decode(w, r, &req); err != nil {
		writeBodyError(w, err)
		return
	}
	st, err := do(r.PathValue("name"))
	s.logExperimentCommand(r, action, req.Reason, err)
	experimentReply(w, st, err)
}

// logExperimentCommand records who changed an experiment and why (the experiment's state keeps
// neither).
func (s *Server) logExperimentCommand(r *http.Request, action, reason string, err error, attrs ...any) {
	log := s.Log
	if log == nil {
		log = slog.Default()
	}
	attrs = append([]any{"experiment", r.PathValue("name"), "action", action, "by", caller(r), "reason", reason}, attrs...)
	if err != nil {
		log.Info("experiment command refused", append(attrs, "err", err)...)
		return
	}
	log.Info("experiment command", attrs...)
}

// track serves POST /api/v1/track {events: [{id, unit, event, value, time}]}.
func (s *Server) track(w http.ResponseWriter, r *http.Request) { Track(s.Experiments)(w, r) }

// Track serves a batch of tracked events to m, as POST /api/v1/track does, and returns the status
// it answered with. The OFREP endpoints serve it too ({prefix}/v1/track), for the applications'
// keys: an app that evaluates flags may report its outcomes without an admin API token.
func Track(m Experiments) func(http.ResponseWriter, *http.Request) int {
	return func(w http.ResponseWriter, r *http.Request) int {
		cw := &codeWriter{ResponseWriter: w, code: http.StatusOK}
		var b TrackBatch
		if err := decode(cw, r, &b); err != nil {
			writeBodyError(cw, err)
			return cw.code
		}
		added, dropped, err := m.Track(b.Events)
		experimentReply(cw, TrackResult{Added: added, Dropped: dropped}, err)
		return cw.code
	}
}

// codeWriter remembers the status written.
type codeWriter struct {
	http.ResponseWriter
	code int
}

func (c *codeWriter) WriteHeader(code int) {
	c.code = code
	c.ResponseWriter.WriteHeader(code)
}

// unitsCSV writes the unit-level figures; an error found before the first row is a JSON error.
func (s *Server) unitsCSV(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	cw := &lazyCSV{w: w, name: name}
	if err := s.Experiments.Units(name, cw); err != nil {
		if !cw.started {
			experimentReply(w, nil, err)
		}
		return // mid-stream: the connection is cut short, which a CSV reader notices
	}
}

type lazyCSV struct {
	w       http.ResponseWriter
	name    string
	started bool
}

func (l *lazyCSV) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		l.w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		l.w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", l.name+"-units.csv"))
	}
	return l.w.Write(p)
}

func experimentReply(w http.ResponseWriter, v any, err error) {
	var conflict *rollout.ConflictError
	var bad *BadRequest
	var invalid *Invalid
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, v)
	case errors.Is(err, experiment.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, experiment.ErrInvalidBatch):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, experiment.ErrNotStarted), errors.Is(err, experiment.ErrStopped), errors.Is(err, experiment.ErrCannotConclude):
		writeError(w, http.StatusConflict, err.Error())
	case errors.As(err, &conflict), errors.As(err, &bad), errors.As(err, &invalid): // conclude found a rollout in flight, or cannot start one
		writeError(w, http.StatusConflict, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error()+"; check the store's file and the server's log")
	}
}
