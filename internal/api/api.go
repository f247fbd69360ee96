// Package api is Aviary's admin HTTP surface: health and readiness probes, Prometheus metrics, and the
// REST API under /api/v1. It reads state through small interfaces and never changes routing itself.
package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"aviary.dev/aviary/internal/analysis"
	"aviary.dev/aviary/internal/gateway"
	"aviary.dev/aviary/internal/rollout"
)

// Analyses reports the analysis runs of a service, with their evidence and measurements.
type Analyses interface {
	Reports(service string) []analysis.RunReport
}

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
	Rollouts Rollouts
	Analyses Analyses
	Windows  Windows     // nil: no /series endpoint
	Fleet    FleetCounts // nil: no /fleet/counts endpoint
	Feedback Feedback
	// Flags is the flag set (nil: no flag routes); OFREP serves its evaluation endpoints under
	// OFREPPrefix, outside /api: it checks its own keys, and the tokens above may evaluate too.
	Flags       Flags
	OFREP       http.Handler
	OFREPPrefix string
	Exposures   Exposures   // nil: no exposure route
	Experiments Experiments // nil: no experiment or track routes
	Hub         *Hub
	Tokens      Tokens
	Browser     BrowserGuard
	Gatherer    prometheus.Gatherer
	Ready       func() bool
	// Source, when set, is shown in /readyz's answer under "source": where the routing comes
	// from and how fresh it is (a gateway replica in Kubernetes source mode).
	Source func() any
	// UI, when set, is the dashboard (internal/web), served at /ui/ without a token: its pages
	// sign in to /api/v1 themselves.
	UI http.Handler
	// Log hears of changes the store does not record with their reason (experiment commands);
	// nil: slog.Default().
	Log *slog.Logger
}

// Handler routes the admin endpoints.
func (s *Server) Handler() http.Handler {
	api := http.NewServeMux()
	api.HandleFunc("GET /api/v1/services", s.services)
	api.HandleFunc("GET /api/v1/services/{name}", s.service)
	api.HandleFunc("GET /api/v1/config", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Config.Status()) })
	api.HandleFunc("POST /api/v1/config/reload", s.reload)
	api.HandleFunc("GET /api/v1/whoami", s.whoami)
	if s.Windows != nil {
		api.HandleFunc("GET /api/v1/services/{name}/series", s.series)
	}
	if s.Fleet != nil {
		api.HandleFunc("GET /api/v1/fleet/counts", s.fleetCounts)
	}
	if s.Rollouts != nil {
		s.rolloutRoutes(api)
	}
	if s.Feedback != nil {
		api.HandleFunc("POST /api/v1/feedback", s.feedback)
	}
	if s.Flags != nil {
		s.flagRoutes(api)
	}
	if s.Experiments != nil {
		s.experimentRoutes(api)
	}
	if s.Exposures != nil {
		api.HandleFunc("GET /api/v1/flags/{key}/exposures", s.exposures)
	}
	if s.Analyses != nil {
		api.HandleFunc("GET /api/v1/services/{name}/analysis", func(w http.ResponseWriter, r *http.Request) {
			reps := s.Analyses.Reports(r.PathValue("name"))
			if reps == nil {
				reps = []analysis.RunReport{}
			}
			writeJSON(w, http.StatusOK, map[string]any{"runs": reps})
		})
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", s.Tokens.guard(api))
	if s.OFREP != nil {
		mux.Handle(s.OFREPPrefix+"/", s.OFREP)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	if s.UI != nil {
		mux.Handle("/ui/", s.UI)
		mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{}))
	return s.Browser.Wrap(mux)
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	body, code := map[string]any{"status": "ready"}, http.StatusOK
	if s.Ready != nil && !s.Ready() {
		body["status"], code = "starting", http.StatusServiceUnavailable
	}
	if s.Source != nil {
		body["source"] = s.Source()
	}
	writeJSON(w, code, body)
}

// serviceView is a service as the gateway serves it, with its rollout when it is managed.
type serviceView struct {
	gateway.ServiceStatus
	Rollout *rollout.Status `json:"rollout,omitempty"`
}

func (s *Server) views() []serviceView {
	var out []serviceView
	for _, svc := range s.Services.Services() {
		v := serviceView{ServiceStatus: svc}
		if s.Rollouts != nil {
			if st, err := s.Rollouts.RolloutStatus(svc.Name); err == nil {
				v.Rollout = &st
			}
		}
		out = append(out, v)
	}
	return out
}

func (s *Server) services(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"services": s.views()})
}

func (s *Server) service(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	for _, v := range s.views() {
		if v.Name == name {
			writeJSON(w, http.StatusOK, v)
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
