package server

import (
	"cmp"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"aviary.dev/aviary/internal/api"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/flags/ofrep"
	"aviary.dev/aviary/internal/gateway"
	"aviary.dev/aviary/internal/rollout"
)

// gatewayHealth reads versions' endpoint health from the gateway for the controller.
type gatewayHealth struct{ gw *gateway.Gateway }

func (h gatewayHealth) Health(service string) map[string]rollout.Health {
	vs := h.gw.Health(service)
	if vs == nil {
		return nil
	}
	out := make(map[string]rollout.Health, len(vs))
	for name, v := range vs {
		out[name] = rollout.Health{Endpoints: v.Endpoints, Available: v.Available, Ready: v.Ready}
	}
	return out
}

// tokens are the config's, or the environment's.
func tokens(a config.Admin) (admin, read string) {
	return cmp.Or(a.Token, os.Getenv("AVIARY_ADMIN_TOKEN")), cmp.Or(a.ReadToken, os.Getenv("AVIARY_READ_TOKEN"))
}

// checkExposure refuses an API that anyone on the network could change.
func checkExposure(listen, adminToken string) error {
	if adminToken != "" {
		return nil
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("admin.listen %q is not host:port", listen)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("admin.listen %s is not a loopback address and there is no admin token: anyone who can reach it could change rollouts; set admin.token (or AVIARY_ADMIN_TOKEN), or listen on 127.0.0.1", listen)
}

// rolloutCollector exposes every managed service's rollout as Prometheus gauges.
type rolloutCollector struct{ ctrl *rollout.Controller }

var (
	rolloutPhaseDesc = prometheus.NewDesc("aviary_rollout_phase",
		"1 for the phase a managed service's rollout is in (Healthy, Progressing, Paused, Degraded).",
		[]string{"service", "phase"}, nil)
	rolloutWeightDesc = prometheus.NewDesc("aviary_rollout_canary_weight",
		"The canary's share of a managed service's traffic, in percent.", []string{"service", "stable", "canary"}, nil)
	rolloutStepDesc = prometheus.NewDesc("aviary_rollout_step",
		"The index of the current step of a managed service's rollout.", []string{"service"}, nil)
)

func (c rolloutCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- rolloutPhaseDesc
	ch <- rolloutWeightDesc
	ch <- rolloutStepDesc
}

func (c rolloutCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.ctrl.States() {
		for _, p := range []rollout.Phase{rollout.Healthy, rollout.Progressing, rollout.Paused, rollout.Degraded} {
			v := 0.0
			if st.Phase == p {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(rolloutPhaseDesc, prometheus.GaugeValue, v, st.Service, string(p))
		}
		ch <- prometheus.MustNewConstMetric(rolloutWeightDesc, prometheus.GaugeValue, float64(st.Weight), st.Service, st.Stable, st.Canary)
		ch <- prometheus.MustNewConstMetric(rolloutStepDesc, prometheus.GaugeValue, float64(st.StepIndex), st.Service)
	}
}

// flagFiles are flags.files, a relative path taken from the config file's directory.
func flagFiles(cfg *config.Config, configPath string) []string {
	out := make([]string, len(cfg.Flags.Files))
	for i, p := range cfg.Flags.Files {
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(configPath), p)
		}
		if abs, err := filepath.Abs(p); err == nil {
			p = abs // the watcher compares absolute paths, and status shows where the file is
		}
		out[i] = filepath.Clean(p)
	}
	return out
}

// ofrepHandlers are the OFREP endpoints of the gateway listener (for browsers: CORS; the admin
// API's tokens refused with a word on where they belong) and of the admin listener (the admin
// API's tokens may evaluate too).
func ofrepHandlers(cfg *config.Config, c *core, adminToken, readToken string, log *slog.Logger) (gw, admin *ofrep.Handler) {
	var keys []string
	for _, k := range cfg.Flags.OFREP.Keys {
		keys = append(keys, k.Secret())
	}
	var tokens []string
	for _, t := range []string{adminToken, readToken} {
		if t != "" {
			tokens = append(tokens, t)
		}
	}
	o := ofrep.Options{Prefix: cfg.Flags.OFREP.Prefix, Flags: c.flags, Evaluator: c.eval, Metrics: c.ofrep, Logger: log}
	gwo, admino := o, o
	gwo.CORS, gwo.Auth = true, ofrep.Auth{Keys: keys, Foreign: tokens}
	// Apps report the experiments' outcomes where they evaluate, with their keys: only with keys
	// (an open gateway listener takes no one's events), and never with the admin API's tokens,
	// which have POST /api/v1/track on the admin listener.
	track := api.Track(c.exps)
	gwo.Track = func(w http.ResponseWriter, r *http.Request) int {
		if len(keys) == 0 {
			msg := "tracking events here needs an application key: add one to flags.ofrep.keys, or send the events to POST /api/v1/track on the admin listener"
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]string{"errorDetails": msg})
			return http.StatusUnauthorized
		}
		return track(w, r)
	}
	admino.Auth = ofrep.Auth{Keys: keys, Tokens: tokens}
	return ofrep.New(gwo), ofrep.New(admino)
}

// withOFREP serves the OFREP endpoints on the gateway listener ahead of every service.
func withOFREP(o *ofrep.Handler, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.Owns(r.URL.Path) {
			o.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
