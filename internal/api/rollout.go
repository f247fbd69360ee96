package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/internal/store"
)

// Rollouts is the rollout controller as the API sees it.
type Rollouts interface {
	RolloutStatus(service string) (rollout.Status, error)
	Do(service string, cmd rollout.Command) (rollout.Status, error)
	Start(service string, req StartRequest, by string) (rollout.Status, error)
	Apply(data []byte, by string) (ApplyResult, error)
	History(service string) ([]store.HistoryEntry, error)
	Events(service string, after uint64, limit int) ([]rollout.Event, error)
	LastEvents(service string, n int) ([]rollout.Event, error)
	// Delete drops the spec of a service applied through the API; force drops it with a rollout
	// in flight.
	Delete(service string, force bool, by string) (DeleteResult, error)
}

// DeleteResult is the answer to DELETE /api/v1/services/{name}.
type DeleteResult struct {
	Deleted string `json:"deleted"`
	// FileSpec: the config file's spec of the service is in force now; false: the service is no
	// longer served.
	FileSpec bool `json:"fileSpec"`
}

// StartRequest is the body of POST /api/v1/services/{name}/rollout.
type StartRequest struct {
	Version   string   `json:"version"`
	Endpoints []string `json:"endpoints,omitempty"`
}

// CommandRequest is the body of POST /api/v1/services/{name}/rollout/{action}.
type CommandRequest struct {
	Full   bool   `json:"full,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// ApplyResult is the answer to POST /api/v1/apply.
type ApplyResult struct {
	Applied   []string `json:"applied"`
	Unchanged []string `json:"unchanged"`
}

// BadRequest is a request that cannot be served as asked (400).
type BadRequest struct{ Msg string }

func (e *BadRequest) Error() string { return e.Msg }

// Invalid is a spec that fails validation (422); nothing was changed.
type Invalid struct{ Errors []string }

func (e *Invalid) Error() string { return strings.Join(e.Errors, "; ") }

const maxBody = 1 << 20

func (s *Server) rolloutRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/services/{name}/rollout", func(w http.ResponseWriter, r *http.Request) {
		st, err := s.Rollouts.RolloutStatus(r.PathValue("name"))
		reply(w, st, err)
	})
	mux.HandleFunc("POST /api/v1/services/{name}/rollout", s.start)
	mux.HandleFunc("POST /api/v1/services/{name}/rollout/{action}", s.command)
	mux.HandleFunc("GET /api/v1/services/{name}/history", func(w http.ResponseWriter, r *http.Request) {
		h, err := s.Rollouts.History(r.PathValue("name"))
		if h == nil {
			h = []store.HistoryEntry{}
		}
		reply(w, map[string]any{"history": h}, err)
	})
	mux.HandleFunc("GET /api/v1/events", s.events)
	mux.HandleFunc("GET /api/v1/events/stream", s.stream)
	mux.HandleFunc("POST /api/v1/apply", s.apply)
	mux.HandleFunc("DELETE /api/v1/services/{name}", s.delete)
}

// delete serves DELETE /api/v1/services/{name}[?force=true].
func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	force, err := parseBool(r.URL.Query().Get("force"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "force must be true or false")
		return
	}
	res, err := s.Rollouts.Delete(r.PathValue("name"), force, caller(r))
	reply(w, res, err)
}

func parseBool(v string) (bool, error) {
	if v == "" {
		return false, nil
	}
	return strconv.ParseBool(v)
}

func (s *Server) start(w http.ResponseWriter, r *http.Request) {
	var req StartRequest
	if err := decode(w, r, &req); err != nil {
		writeBodyError(w, err)
		return
	}
	if req.Version == "" {
		writeError(w, http.StatusBadRequest, `"version" is required: the version to roll out`)
		return
	}
	st, err := s.Rollouts.Start(r.PathValue("name"), req, caller(r))
	reply(w, st, err)
}

func (s *Server) command(w http.ResponseWriter, r *http.Request) {
	var req CommandRequest
	if err := decode(w, r, &req); err != nil {
		writeBodyError(w, err)
		return
	}
	action := rollout.CommandKind(r.PathValue("action"))
	if !slices.Contains(rollout.Commands, action) {
		names := make([]string, len(rollout.Commands))
		for i, c := range rollout.Commands {
			names[i] = string(c)
		}
		writeError(w, http.StatusNotFound, "no rollout action "+strconv.Quote(string(action))+"; use one of "+strings.Join(names, ", "))
		return
	}
	st, err := s.Rollouts.Do(r.PathValue("name"), rollout.Command{Kind: action, Full: req.Full, Reason: req.Reason, By: caller(r)})
	reply(w, st, err)
}

func (s *Server) apply(w http.ResponseWriter, r *http.Request) {
	data, err := readBody(w, r)
	if err != nil {
		writeBodyError(w, err)
		return
	}
	res, err := s.Rollouts.Apply(data, caller(r))
	if res.Applied == nil {
		res.Applied = []string{}
	}
	if res.Unchanged == nil {
		res.Unchanged = []string{}
	}
	reply(w, res, err)
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, err1 := parseUint(q.Get("after"))
	limit, err2 := parseUint(q.Get("limit"))
	if err := errors.Join(err1, err2); err != nil {
		writeError(w, http.StatusBadRequest, "after and limit must be non-negative integers")
		return
	}
	last, err := parseUint(q.Get("last"))
	if err != nil || last > 1000 {
		writeError(w, http.StatusBadRequest, "last must be an integer in 0..1000")
		return
	}
	var evs []rollout.Event
	if last > 0 {
		evs, err = s.Rollouts.LastEvents(q.Get("service"), int(last))
	} else {
		evs, err = s.Rollouts.Events(q.Get("service"), after, int(limit))
	}
	if evs == nil {
		evs = []rollout.Event{}
	}
	reply(w, map[string]any{"events": evs}, err)
}

func parseUint(v string) (uint64, error) {
	if v == "" {
		return 0, nil
	}
	return strconv.ParseUint(v, 10, 64)
}

// tooLarge is a body over maxBody (413).
type tooLarge struct{}

func (tooLarge) Error() string {
	return "the body is over 1 MiB, the limit of the admin API; for apply, split the services over several files"
}

// readBody reads a body of up to maxBody bytes; a longer one is a tooLarge error, and the
// connection is closed after the answer.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return nil, tooLarge{}
	}
	if err != nil {
		return nil, fmt.Errorf("read the body: %w", err)
	}
	return data, nil
}

// writeBodyError answers a body that could not be read or decoded: 413 when too large, else 400.
func writeBodyError(w http.ResponseWriter, err error) {
	code := http.StatusBadRequest
	if errors.Is(err, tooLarge{}) {
		code = http.StatusRequestEntityTooLarge
	}
	writeError(w, code, err.Error())
}

// decode reads an optional JSON body.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	data, err := readBody(w, r)
	if err != nil || len(strings.TrimSpace(string(data))) == 0 {
		return err
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New("the body is not valid JSON for this request: " + err.Error())
	}
	return nil
}

// reply writes v, or the error with the status its type calls for.
func reply(w http.ResponseWriter, v any, err error) {
	var (
		conflict *rollout.ConflictError
		notFound *rollout.NotFoundError
		bad      *BadRequest
		invalid  *Invalid
	)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, v)
	case errors.As(err, &invalid):
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": "the spec is not valid; nothing was changed", "errors": invalid.Errors})
	case errors.As(err, &conflict):
		writeError(w, http.StatusConflict, err.Error())
	case errors.As(err, &notFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.As(err, &bad):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}
