package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"aviary.dev/aviary/internal/flags/source"
)

// Flags is the flag set as the API sees it: read, set, apply, delete, and the kill switch.
type Flags interface {
	List() []source.View
	Get(key string) (source.View, error)
	Status() source.Status
	Set(key string, def json.RawMessage, by string) (source.View, error)
	Apply(doc []byte, by string) (source.ApplyResult, error)
	Delete(key, by string) error
	Disable(key, reason, by string) (source.View, error)
	Enable(key, reason, by string) (source.View, error)
}

// FlagList is the answer to GET /api/v1/flags.
type FlagList struct {
	Flags  []source.View `json:"flags"`
	Status source.Status `json:"status"`
}

// SwitchRequest is the optional body of POST /api/v1/flags/{key}/disable and .../enable.
type SwitchRequest struct {
	Reason string `json:"reason,omitempty"`
}

func (s *Server) flagRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/flags", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, FlagList{Flags: s.Flags.List(), Status: s.Flags.Status()})
	})
	mux.HandleFunc("POST /api/v1/flags", s.applyFlags)
	mux.HandleFunc("GET /api/v1/flags/{key}", func(w http.ResponseWriter, r *http.Request) {
		v, err := s.Flags.Get(r.PathValue("key"))
		flagReply(w, v, err)
	})
	mux.HandleFunc("PUT /api/v1/flags/{key}", s.setFlag)
	mux.HandleFunc("POST /api/v1/flags/{key}", s.setFlag)
	mux.HandleFunc("DELETE /api/v1/flags/{key}", func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		err := s.Flags.Delete(key, caller(r))
		flagReply(w, map[string]string{"deleted": key}, err)
	})
	mux.HandleFunc("POST /api/v1/flags/{key}/disable", func(w http.ResponseWriter, r *http.Request) { s.switchFlag(w, r, s.Flags.Disable) })
	mux.HandleFunc("POST /api/v1/flags/{key}/enable", func(w http.ResponseWriter, r *http.Request) { s.switchFlag(w, r, s.Flags.Enable) })
}

// setFlag serves PUT (and POST) /api/v1/flags/{key}: the body is the flag's definition in flagd's
// JSON, the value of "flags": {KEY: ...}.
func (s *Server) setFlag(w http.ResponseWriter, r *http.Request) {
	data, err := readBody(w, r)
	if err != nil {
		writeBodyError(w, err)
		return
	}
	if !json.Valid(data) {
		writeError(w, http.StatusBadRequest, `the body is not JSON: send the flag's definition, e.g. {"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off"}`)
		return
	}
	v, err := s.Flags.Set(r.PathValue("key"), data, caller(r))
	flagReply(w, v, err)
}

// applyFlags serves POST /api/v1/flags: the body is a flagd document whose flags are all set.
func (s *Server) applyFlags(w http.ResponseWriter, r *http.Request) {
	data, err := readBody(w, r)
	if err != nil {
		writeBodyError(w, err)
		return
	}
	res, err := s.Flags.Apply(data, caller(r))
	flagReply(w, res, err)
}

func (s *Server) switchFlag(w http.ResponseWriter, r *http.Request, do func(key, reason, by string) (source.View, error)) {
	var req SwitchRequest
	if err := decode(w, r, &req); err != nil {
		writeBodyError(w, err)
		return
	}
	v, err := do(r.PathValue("key"), req.Reason, caller(r))
	flagReply(w, v, err)
}

// flagReply writes v, or the error with the status its kind calls for.
func flagReply(w http.ResponseWriter, v any, err error) {
	var (
		invalid  *source.InvalidError
		conflict *source.ConflictError
	)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, v)
	case errors.Is(err, source.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.As(err, &invalid):
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": "the flags are not valid; nothing was changed", "errors": invalid.Errors})
	case errors.As(err, &conflict):
		writeError(w, http.StatusConflict, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}
