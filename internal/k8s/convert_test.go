package k8s

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/rollout"
)

func testRollout(st v1alpha1.Strategy, a *v1alpha1.Analysis) *v1alpha1.Rollout {
	ro := &v1alpha1.Rollout{Spec: v1alpha1.RolloutSpec{WorkloadRef: v1alpha1.WorkloadRef{Name: "shop"},
		StableService: "shop-stable", CanaryService: "shop-canary", Strategy: st, Analysis: a}}
	ro.Name, ro.Namespace = "shop", "prod"
	return ro
}

func TestARolloutSpecBecomesTheCoresServiceWithTheSameSteps(t *testing.T) {
	w := int32(20)
	ro := testRollout(v1alpha1.Strategy{
		Canary: &v1alpha1.CanaryStrategy{Steps: []v1alpha1.CanaryStep{
			{SetWeight: &w},
			{Pause: &v1alpha1.PauseStep{Duration: &metav1.Duration{Duration: 90 * time.Second}}},
			{SetHeaderRoute: &v1alpha1.HeaderRouteStep{Match: &v1alpha1.Match{Header: &v1alpha1.KeyMatch{Name: "X-Beta", StringMatch: v1alpha1.StringMatch{Value: "1"}}}}},
			{SetMirror: &v1alpha1.MirrorStep{Percent: 30}},
			{Analysis: &v1alpha1.AnalysisStep{Templates: []string{"errors"}}},
		}},
		ScaleDownDelay: &metav1.Duration{Duration: time.Minute},
	}, &v1alpha1.Analysis{Templates: []v1alpha1.AnalysisTemplate{{Name: "errors", Metrics: []v1alpha1.AnalysisMetric{{
		Name: "ratio", Prometheus: &v1alpha1.PrometheusMetric{Address: "http://prom:9090", Query: "x"},
		SuccessCondition: "result < 0.01"}}}}})
	sp, err := specOf(ro, []string{"aaa", "bbb"}, "bbb")
	if err != nil {
		t.Fatal(err)
	}
	svc := sp.Service
	if svc.Name != "shop" || svc.Release != "bbb" || len(svc.Versions) != 2 || svc.Strategy.ScaleDownDelay.Duration != time.Minute ||
		svc.Strategy.AbortOnUnhealthy.Duration != DefaultAbortOnUnhealthy {
		t.Fatalf("service %+v", svc)
	}
	kind, steps := rollout.Compile(svc.Strategy)
	var texts []string
	for _, s := range steps {
		texts = append(texts, s.Text)
		if len(s.Background) > 0 {
			t.Errorf("step %q runs background analysis %v: the default analysis needs Aviary's gateway", s.Text, s.Background)
		}
	}
	if kind != "canary" || len(steps) != 5 || !strings.Contains(strings.Join(texts, "|"), "pause 1m30s") {
		t.Errorf("compiled %s: %v", kind, texts)
	}
	if len(sp.Templates) != 1 || sp.Templates[0].Minimum.Requests != 0 || sp.Templates[0].Metrics[0].Interval.Duration == 0 {
		t.Errorf("templates %+v: want the config's defaults, but no minimum in gateway requests", sp.Templates)
	}
}

func TestAWrongRolloutSpecNamesTheRolloutsFields(t *testing.T) {
	over := int32(120)
	ro := testRollout(v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{Steps: []v1alpha1.CanaryStep{
		{SetWeight: &over},
		{Analysis: &v1alpha1.AnalysisStep{Templates: []string{"missing"}}},
	}}}, nil)
	_, err := specOf(ro, []string{"aaa"}, "aaa")
	errs, ok := err.(config.Errors)
	if !ok || len(errs) < 2 {
		t.Fatalf("want every problem as a field error, got %v", err)
	}
	text := err.Error()
	for _, want := range []string{"spec.strategy.canary.steps[0].setWeight", "spec.strategy.canary.steps[1].analysis.templates"} {
		if !strings.Contains(text, want) {
			t.Errorf("%q does not name %s", text, want)
		}
	}
	if strings.Contains(text, "services[0]") || strings.Contains(text, "line ") {
		t.Errorf("the error shows the config file's paths or lines: %q", text)
	}
}

func TestStepsThatNeedARouterAreRefusedWithoutOne(t *testing.T) {
	ro := testRollout(v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{Steps: []v1alpha1.CanaryStep{
		{SetMirror: &v1alpha1.MirrorStep{Percent: 10}},
	}}}, nil)
	err := checkRouting(ro)
	if err == nil || !strings.Contains(err.Error(), "spec.strategy.canary.steps[0].setMirror") || !strings.Contains(err.Error(), "trafficRouting") {
		t.Errorf("got %v", err)
	}
	ro.Spec.TrafficRouting = &v1alpha1.TrafficRouting{GatewayAPI: &v1alpha1.GatewayAPIRouting{HTTPRoute: "shop"}}
	if err := checkRouting(ro); err != nil {
		t.Errorf("with a router: %v", err)
	}
	ro.Spec.CanaryService = ""
	if err := checkRouting(ro); err == nil || !strings.Contains(err.Error(), "spec.canaryService") {
		t.Errorf("a router without a canary Service: %v", err)
	}
}

func TestAStatusStateThatIsNotOursIsReportedNotTrusted(t *testing.T) {
	ro := testRollout(v1alpha1.Strategy{}, nil)
	if _, ok, err := stateOf(ro); ok || err != nil {
		t.Errorf("no state: ok %v err %v", ok, err)
	}
	ro.Status.State = rawJSON(`{"phase": 7}`)
	if _, _, err := stateOf(ro); err == nil || !strings.Contains(err.Error(), "status.state") {
		t.Errorf("got %v", err)
	}
}

// A Rollout routed through Aviary's gateway fleet gets the default analysis and builtin metrics,
// judged on the replicas' sum; without the fleet there is nothing to measure them, so asking for
// them is an error that says what to do.
func TestBuiltinMetricsNeedTheGatewayFleet(t *testing.T) {
	w, yes := int32(20), true
	st := v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{Steps: []v1alpha1.CanaryStep{{SetWeight: &w},
		{Analysis: &v1alpha1.AnalysisStep{Templates: []string{"errors"}}}}}}
	builtin := &v1alpha1.Analysis{Templates: []v1alpha1.AnalysisTemplate{{Name: "errors", Metrics: []v1alpha1.AnalysisMetric{{
		Name: "errors", Builtin: "errorRate", Critical: true, DetectableEffect: &v1alpha1.DetectableEffect{Points: 5}}}}}}

	ro := testRollout(st, builtin)
	ro.Spec.TrafficRouting = &v1alpha1.TrafficRouting{Aviary: &v1alpha1.AviaryRouting{Gateway: "edge"}}
	sp, err := specOf(ro, []string{"aaa", "bbb"}, "bbb")
	if err != nil {
		t.Fatal(err)
	}
	if d := sp.Service.Strategy.DefaultAnalysis; d == nil || !*d {
		t.Errorf("defaultAnalysis %v with the fleet, want true", d)
	}
	if m := sp.Templates[0].Metrics[0]; m.Builtin != config.BuiltinErrorRate || m.DetectableEffect == nil || m.DetectableEffect.Points != 5 {
		t.Errorf("builtin metric %+v", m)
	}
	if sp.Templates[0].Minimum.Requests == 0 {
		t.Error("a template of builtin metrics lost its request minimum: the fleet counts requests")
	}

	ro = testRollout(st, builtin)
	_, err = specOf(ro, []string{"aaa", "bbb"}, "bbb")
	if err == nil || !strings.Contains(err.Error(), "spec.analysis.templates[0].metrics[0].builtin") || !strings.Contains(err.Error(), "trafficRouting.aviary") {
		t.Errorf("a builtin metric without the fleet: %v", err)
	}
	ro = testRollout(v1alpha1.Strategy{Canary: st.Canary, DefaultAnalysis: &yes}, nil)
	ro.Spec.Strategy.Canary = &v1alpha1.CanaryStrategy{Steps: []v1alpha1.CanaryStep{{SetWeight: &w}}}
	if _, err = specOf(ro, []string{"aaa", "bbb"}, "bbb"); err == nil || !strings.Contains(err.Error(), "spec.strategy.defaultAnalysis") {
		t.Errorf("defaultAnalysis: true without the fleet: %v", err)
	}
}

// Evaluations and feedback are kept by the process that served the request, and no replica of the
// gateway fleet keeps them: a metric that reads them, or an evaluator in spec.gateway.llm, would
// never see data and is refused with what to do instead.
func TestEvaluationAndFeedbackAreRefusedOnACluster(t *testing.T) {
	w := int32(20)
	st := v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{Steps: []v1alpha1.CanaryStep{{SetWeight: &w},
		{Analysis: &v1alpha1.AnalysisStep{Templates: []string{"quality"}}}}}}
	for _, builtin := range []string{"feedback", "evaluation"} {
		ro := testRollout(st, &v1alpha1.Analysis{Templates: []v1alpha1.AnalysisTemplate{{Name: "quality", Metrics: []v1alpha1.AnalysisMetric{
			{Name: "errors", Builtin: "errorRate"}, {Name: "q", Builtin: builtin}}}}})
		ro.Spec.TrafficRouting = &v1alpha1.TrafficRouting{Aviary: &v1alpha1.AviaryRouting{Gateway: "edge"}}
		_, err := specOf(ro, []string{"aaa", "bbb"}, "bbb")
		wantErr(t, builtin, err, "spec.analysis.templates[0].metrics[1].builtin", builtin+" reads evaluations and feedback",
			"prometheus or web metric", "docs/kubernetes.md#evaluations-and-feedback")
		if err != nil && strings.Contains(err.Error(), "metrics[0]") {
			t.Errorf("%s: errorRate refused too: %v", builtin, err)
		}
	}

	ro := testRollout(st, nil)
	ro.Spec.Strategy.Canary = &v1alpha1.CanaryStrategy{Steps: []v1alpha1.CanaryStep{{SetWeight: &w}}}
	ro.Spec.TrafficRouting = &v1alpha1.TrafficRouting{Aviary: &v1alpha1.AviaryRouting{Gateway: "edge"}}
	ro.Spec.Gateway = rawJSON(`{"llm": {"api": "openai", "evaluator": {"url": "http://judge:8000/evaluate", "percent": 10}}}`)
	_, err := specOf(ro, []string{"aaa", "bbb"}, "bbb")
	wantErr(t, "evaluator", err, "spec.gateway.llm.evaluator", "does not run evaluators", "remove it")
	ro.Spec.Gateway = rawJSON(`{"llm": {"api": "openai"}}`)
	if _, err := specOf(ro, []string{"aaa", "bbb"}, "bbb"); err != nil {
		t.Errorf("llm without an evaluator: %v", err)
	}
}

func wantErr(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error", what)
		return
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q lacks %q", what, err, w)
		}
	}
}
