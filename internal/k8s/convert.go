package k8s

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/rollout"
)

// DefaultAbortOnUnhealthy is how long a canary may have no ready pod while it should take
// traffic before it is rolled back, unless the strategy says otherwise.
const DefaultAbortOnUnhealthy = 2 * time.Minute

// spec is a Rollout as the core sees it: a managed service whose versions are pod-template-hashes,
// and the analysis templates its steps name.
type spec struct {
	Service   config.Service
	Templates []config.AnalysisTemplate
	History   int // analysis.history as config gives it
}

// specOf converts a Rollout's spec into the core's types. The strategy and analysis use the config
// file's field names, so they go through the config package's own parser, defaults and validation;
// its field paths are turned into the Rollout's (spec.strategy.canary.steps[1].setWeight).
// versions lists the known versions, stable first; release is the Deployment's template now.
func specOf(ro *v1alpha1.Rollout, versions []string, release string) (spec, error) {
	st := ro.Spec.Strategy
	fleet := gatewayName(ro) != "" // judged on the gateway fleet's measurements (internal/fleet)
	if st.DefaultAnalysis != nil && *st.DefaultAnalysis && !fleet {
		return spec{}, config.Errors{{Path: "spec.strategy.defaultAnalysis", Msg: "needs Aviary's gateway fleet (spec.trafficRouting.aviary): its builtin metrics are measured there; set it false or route through the fleet"}}
	}
	strategy := map[string]any{
		// The default analysis reads Aviary's own measurements: only a gateway fleet has them.
		"defaultAnalysis": fleet && (st.DefaultAnalysis == nil || *st.DefaultAnalysis),
		// Pods take longer to start than a gateway endpoint to pass a check; while a canary has no
		// ready pod its HTTPRoute share is held at 0, so waiting longer costs no traffic.
		"abortOnUnhealthy": DefaultAbortOnUnhealthy.String(),
	}
	// The set fields only (a nil pointer would marshal as null, which the config refuses).
	for key, v := range map[string]any{"canary": st.Canary, "blueGreen": st.BlueGreen, "shadow": st.Shadow,
		"scaleDownDelay": st.ScaleDownDelay, "abortOnUnhealthy": st.AbortOnUnhealthy, "progressDeadline": st.ProgressDeadline} {
		if !reflect.ValueOf(v).IsNil() {
			strategy[key] = v
		}
	}
	// The core's service name is the Rollout's name; a version's endpoint is only a name here (the
	// pods behind the Services are the endpoints), but the config requires a URL.
	svc := map[string]any{"name": ro.Name, "release": release, "strategy": strategy}
	var vs []any
	for _, v := range versions {
		vs = append(vs, map[string]any{"name": v, "endpoints": []string{
			fmt.Sprintf("http://%s.%s.svc", ro.Spec.StableService, ro.Namespace)}})
	}
	svc["versions"] = vs
	if err := gatewaySettings(ro, svc); err != nil {
		return spec{}, err
	}
	// Before the config's own checks, which would ask for fields a Rollout does not have.
	if err := qualityRefused(ro, svc); err != nil {
		return spec{}, err
	}
	doc := map[string]any{"services": []any{svc}}
	if ro.Spec.Analysis != nil {
		doc["analysis"] = ro.Spec.Analysis
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return spec{}, err
	}
	cfg, err := config.Parse(b) // JSON is YAML
	if err != nil {
		return spec{}, rolloutPaths(err)
	}
	out := spec{Service: cfg.Services[0], Templates: cfg.Analysis.Templates, History: cfg.Analysis.History}
	if !fleet {
		var errs config.Errors
		var templates []v1alpha1.AnalysisTemplate
		if ro.Spec.Analysis != nil {
			templates = ro.Spec.Analysis.Templates
		}
		for i, t := range templates {
			for j, m := range t.Metrics {
				if m.Builtin != "" {
					errs = append(errs, config.FieldError{Path: fmt.Sprintf("spec.analysis.templates[%d].metrics[%d].builtin", i, j),
						Msg: "is measured by Aviary's gateway fleet: route the Rollout through it (spec.trafficRouting.aviary), or use a prometheus metric"})
				}
			}
		}
		if len(errs) > 0 {
			return spec{}, errs
		}
	}
	for i, t := range out.Templates {
		// Without Aviary's gateway, requests are counted only by comparative Prometheus metrics;
		// a template without one has a minimum in time alone.
		if !fleet && !slices.ContainsFunc(t.Metrics, func(m config.AnalysisMetric) bool { return m.Prometheus.Counted() }) {
			out.Templates[i].Minimum.Requests = 0
		}
	}
	return out, nil
}

// qualityRefused refuses what reads evaluations and feedback (package quality): no replica of the
// gateway fleet keeps them, and a metric that never gets data would hold a rollout until its
// deadline without saying why (docs/kubernetes.md, "Evaluations and feedback"). svc is the
// service as gatewaySettings filled it in.
func qualityRefused(ro *v1alpha1.Rollout, svc map[string]any) error {
	var errs config.Errors
	if llm, ok := svc["llm"].(map[string]any); ok && llm["evaluator"] != nil {
		errs = append(errs, config.FieldError{Path: "spec.gateway.llm.evaluator",
			Msg: "the gateway fleet does not run evaluators: remove it, and judge an evaluator's scores through a prometheus or web metric, or serve the service with aviary serve (docs/kubernetes.md#evaluations-and-feedback)"})
	}
	if ro.Spec.Analysis != nil {
		for i, t := range ro.Spec.Analysis.Templates {
			for j, m := range t.Metrics {
				if b, ok := config.Builtin(m.Builtin).Spec(); ok && b.Reads == config.FromQuality {
					errs = append(errs, config.FieldError{Path: fmt.Sprintf("spec.analysis.templates[%d].metrics[%d].builtin", i, j),
						Msg: fmt.Sprintf("%s reads evaluations and feedback, which the gateway fleet does not gather: judge them through a prometheus or web metric, or serve the service with aviary serve (docs/kubernetes.md#evaluations-and-feedback)", m.Builtin)})
				}
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// GatewayKeys are the fields of spec.gateway: a standalone service's fields of the same names,
// which Aviary's gateway fleet serves the Rollout with.
var GatewayKeys = []string{"match", "stickiness", "healthCheck", "passiveHealth", "llm"}

// gatewaySettings copies spec.gateway into the service svc that the config package parses, so
// that its defaults and validation are the config file's.
func gatewaySettings(ro *v1alpha1.Rollout, svc map[string]any) error {
	if ro.Spec.Gateway == nil || len(ro.Spec.Gateway.Raw) == 0 {
		return nil
	}
	var g map[string]any
	if err := json.Unmarshal(ro.Spec.Gateway.Raw, &g); err != nil {
		return config.Errors{{Path: "spec.gateway", Msg: fmt.Sprintf("is not an object (%v); give it the fields %s", err, strings.Join(GatewayKeys, ", "))}}
	}
	var errs config.Errors
	for k, v := range g {
		if !slices.Contains(GatewayKeys, k) {
			errs = append(errs, config.FieldError{Path: "spec.gateway." + k, Msg: "unknown field; valid fields here are " + strings.Join(GatewayKeys, ", ")})
			continue
		}
		svc[k] = v
	}
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b config.FieldError) int { return strings.Compare(a.Path, b.Path) })
		return errs
	}
	return nil
}

// rolloutPaths rewrites the config's field paths as the Rollout's.
func rolloutPaths(err error) error {
	errs, ok := err.(config.Errors)
	if !ok {
		return err
	}
	out := make(config.Errors, 0, len(errs))
	for _, e := range errs {
		e.Line = 0 // of the JSON this package wrote, not of the user's manifest
		switch {
		case gatewayPath(e.Path) != "":
			e.Path = "spec.gateway." + gatewayPath(e.Path)
		case strings.HasPrefix(e.Path, "services[0].strategy"):
			e.Path = "spec.strategy" + strings.TrimPrefix(e.Path, "services[0].strategy")
		case strings.HasPrefix(e.Path, "analysis"):
			e.Path = "spec." + e.Path
		case strings.HasPrefix(e.Path, "services[0]"):
			e.Path = "spec" + strings.TrimPrefix(e.Path, "services[0]")
		}
		out = append(out, e)
	}
	return out
}

// gatewayPath is a config path under one of spec.gateway's fields, without "services[0]." ("":
// another path).
func gatewayPath(path string) string {
	rest, ok := strings.CutPrefix(path, "services[0].")
	if !ok {
		return ""
	}
	for _, k := range GatewayKeys {
		if rest == k || strings.HasPrefix(rest, k+".") || strings.HasPrefix(rest, k+"[") {
			return rest
		}
	}
	return ""
}

// GatewayServiceName is the service name Aviary's gateway fleet gives a Rollout: the Rollout's
// name and namespace, as in a Service's DNS name. It is the `service` label of the replicas'
// metrics and the key of their stickiness buckets, so every replica must derive it alike.
func GatewayServiceName(namespace, name string) string { return name + "." + namespace }

// Endpoint is a ready endpoint of a Service, as its EndpointSlice gives it: the URL to send to,
// and the name of the pod behind it ("" when the slice does not say).
type Endpoint struct {
	URL string
	Pod string
}

// GatewayService is the service a gateway replica serves for a Rollout routed through Aviary's
// gateway fleet: spec.gateway's settings (parsed, defaulted and checked as the config file's),
// status.routing's plan, the stable version on the stable Service's endpoints and the canary on
// the canary Service's. endpoints holds each Service's ready endpoints, by Service name. The
// result comes from rollout.Plan.Service, as a standalone gateway's does. A canary with no ready
// endpoint gets no traffic (its share goes to the stable); a stable with none is an error.
//
// The controller writes status.routing before it points the Services at the versions' pods, and
// EndpointSlices follow a selector with a lag: for a moment a Service may still hold the other
// version's pods. Pods are named after their ReplicaSet (<rollout>-<version>-...), so an endpoint
// whose pod is known to belong to another version is left out, lest its answers be measured as
// this version's. A stable whose Service holds none of its pods yet (a Rollout adopting a serving
// Deployment, whose pods the Service keeps until the stable has one) is served by what is there.
func GatewayService(ro *v1alpha1.Rollout, endpoints map[string][]Endpoint) (config.Service, error) {
	rs := ro.Status.Routing
	if rs == nil || rs.Stable == "" {
		return config.Service{}, fmt.Errorf("rollout %s/%s has no status.routing yet; aviary controller writes it once it has looked at the Rollout (is it running?)", ro.Namespace, ro.Name)
	}
	name := GatewayServiceName(ro.Namespace, ro.Name)
	if len(name) > 63 {
		return config.Service{}, fmt.Errorf("rollout %s/%s: its gateway service name %s is longer than 63 characters; shorten the Rollout's name", ro.Namespace, ro.Name, name)
	}
	versions := []string{rs.Stable}
	if rs.Canary != "" && rs.Canary != rs.Stable {
		versions = append(versions, rs.Canary)
	}
	sp, err := specOf(ro, versions, rs.Stable)
	if err != nil {
		return config.Service{}, fmt.Errorf("rollout %s/%s: %w", ro.Namespace, ro.Name, err)
	}
	svc := sp.Service
	svc.Name = name
	plan := rollout.Plan{Stable: rs.Stable, Admitted: -1}
	for i := range svc.Versions {
		v := &svc.Versions[i]
		switch v.Name {
		case rs.Stable:
			v.Endpoints = versionEndpoints(endpoints[ro.Spec.StableService], ro.Name+"-"+rs.Stable+"-", true)
		case rs.Canary:
			v.Endpoints = versionEndpoints(endpoints[ro.Spec.CanaryService], ro.Name+"-"+rs.Canary+"-", false)
		}
	}
	if len(svc.Versions[0].Endpoints) == 0 {
		return config.Service{}, fmt.Errorf("rollout %s/%s: Service %s has no ready endpoint for the stable version %s", ro.Namespace, ro.Name, ro.Spec.StableService, rs.Stable)
	}
	if len(svc.Versions) > 1 && len(svc.Versions[1].Endpoints) > 0 {
		plan.Canary, plan.Weight, plan.Mirror = rs.Canary, int(rs.Weight), rs.Mirror
		if rs.Route != nil {
			m, err := configMatch(*rs.Route)
			if err != nil {
				return config.Service{}, fmt.Errorf("rollout %s/%s: status.routing.route: %w", ro.Namespace, ro.Name, err)
			}
			plan.Route = &m
		}
	}
	return plan.Service(svc), nil
}

// configMatch is the Rollout API's match as the config's (the same fields).
func configMatch(m v1alpha1.Match) (config.Match, error) {
	var out config.Match
	b, err := json.Marshal(m)
	if err == nil {
		err = json.Unmarshal(b, &out)
	}
	return out, err
}

// versionEndpoints are the URLs of the endpoints whose pod is the version's (named with prefix) or
// unknown; with orAll, every endpoint when none is the version's.
func versionEndpoints(eps []Endpoint, prefix string, orAll bool) []string {
	var mine, all []string
	for _, e := range eps {
		all = append(all, e.URL)
		if e.Pod == "" || strings.HasPrefix(e.Pod, prefix) {
			mine = append(mine, e.URL)
		}
	}
	if len(mine) == 0 && orAll {
		return all
	}
	return mine
}
