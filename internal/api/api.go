// Package api is Aviary's admin HTTP surface: health and readiness probes, Prometheus metrics, and the
// REST API under /api/v1. It reads state through small interfaces and never changes routing itself.
package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"aviary.dev/aviary/internal/gateway"
)

// Services reports what the gateway serves.
type Services interface {
	Services() []gateway.ServiceStatus
}

// ConfigStatus is what the admin API tells about the config file and its last reload.
type ConfigStatus struct {
	File       string        `json:"file"`
	LoadedAt   time.Time     `json:"loadedAt"`             // when the config in force was loaded
	LastReload *ReloadResult `json:"lastReload,omitempty"` // nil until the first reload
}

// ReloadResult is the outcome of one reload attempt. A refused reload leaves the config in force.
type ReloadResult struct {
	At       time.Time `json:"at"`
	Accepted bool      `json:"accepted"`
	Errors   []string  `json:"errors,omitempty"`
	Notes    []string  `json:"notes,omitempty"`
}

// Config reports and reloads the config.
type Config interface {
	Status() ConfigStatus
	Reload() ReloadResult
}

// Server is the admin API.
type Server struct {
	Services Services
	Config   Config
	Gatherer prometheus.Gatherer
	Ready    func() bool
}

// Handler routes the admin endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/v1/services", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"services": s.Services.Services()})
	})
	mux.HandleFunc("GET /api/v1/services/{name}", s.service)
	mux.HandleFunc("GET /api/v1/config", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Config.Status()) })
	mux.HandleFunc("POST /api/v1/config/reload", s.reload)
	return mux
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.Ready != nil && !s.Ready() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "starting"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) service(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	for _, svc := range s.Services.Services() {
		if svc.Name == name {
			writeJSON(w, http.StatusOK, svc)
			return
		}
	}
	writeError(w, http.StatusNotFound, "no service named "+name+"; GET /api/v1/services lists them")
}

func (s *Server) reload(w http.ResponseWriter, _ *http.Request) {
	res := s.Config.Reload()
	code := http.StatusOK
	if !res.Accepted {
		code = http.StatusUnprocessableEntity
	}
	writeJSON(w, code, res)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
