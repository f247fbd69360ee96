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
	strategy := map[string]any{
		"defaultAnalysis": false, // the default analysis reads Aviary's gateway, absent here
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
	for i, t := range out.Templates {
		// Without Aviary's gateway, requests are counted only by comparative Prometheus metrics;
		// a template without one has a minimum in time alone.
		if !slices.ContainsFunc(t.Metrics, func(m config.AnalysisMetric) bool { return m.Prometheus.Counted() }) {
			out.Templates[i].Minimum.Requests = 0
		}
	}
	return out, nil
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
