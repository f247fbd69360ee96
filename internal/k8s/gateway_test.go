package k8s

import (
	"slices"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/rollout"
)

// aviaryRollout is a Rollout served by the gateway fleet "edge" with these gateway settings.
func aviaryRollout(gateway string) *v1alpha1.Rollout {
	w := int32(30)
	ro := testRollout(v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{Steps: []v1alpha1.CanaryStep{{SetWeight: &w}}}}, nil)
	ro.Spec.TrafficRouting = &v1alpha1.TrafficRouting{Aviary: &v1alpha1.AviaryRouting{Gateway: "edge"}}
	if gateway != "" {
		ro.Spec.Gateway = &apiextensionsv1.JSON{Raw: []byte(gateway)}
	}
	return ro
}

func TestSpecGatewayIsAServicesSettingsCheckedByTheConfig(t *testing.T) {
	ro := aviaryRollout(`{"match": {"pathPrefix": "/shop", "hosts": ["shop.example.com"]}, "stickiness": {"header": "X-User"},
		"llm": {"api": "openai"}}`)
	sp, err := specOf(ro, []string{"aaa"}, "aaa")
	if err != nil {
		t.Fatal(err)
	}
	svc := sp.Service
	if svc.Match.PathPrefix != "/shop" || svc.Stickiness == nil || svc.Stickiness.Header != "X-User" || svc.LLM == nil {
		t.Errorf("service %+v", svc)
	}

	for _, c := range []struct{ gateway, want string }{
		{`{"match": {"pathPrefix": "shop"}}`, "spec.gateway.match.pathPrefix"},
		{`{"stickiness": {"header": "X-User", "cookie": "u"}}`, "spec.gateway.stickiness"},
		{`{"versions": []}`, "spec.gateway.versions: unknown field; valid fields here are match, stickiness, healthCheck, passiveHealth, llm"},
		{`{"match": {"pathPrefx": "/"}}`, "spec.gateway.match.pathPrefx"},
		{`[1]`, "spec.gateway: is not an object"},
	} {
		_, err := specOf(aviaryRollout(c.gateway), []string{"aaa"}, "aaa")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("spec.gateway %s: error %v, want one that says %q", c.gateway, err, c.want)
		}
	}
}

func TestTrafficRoutingNamesExactlyOneRouter(t *testing.T) {
	both := aviaryRollout("")
	both.Spec.TrafficRouting.GatewayAPI = &v1alpha1.GatewayAPIRouting{HTTPRoute: "shop"}
	none := aviaryRollout("")
	none.Spec.TrafficRouting = &v1alpha1.TrafficRouting{}
	loose := testRollout(v1alpha1.Strategy{}, nil)
	loose.Spec.Gateway = &apiextensionsv1.JSON{Raw: []byte(`{}`)}
	for name, c := range map[string]struct {
		ro   *v1alpha1.Rollout
		want string
	}{
		"both":                 {both, "spec.trafficRouting: set exactly one of gatewayAPI"},
		"neither":              {none, "spec.trafficRouting: set exactly one of gatewayAPI"},
		"gateway, no fleet":    {loose, "spec.gateway: is read by Aviary's gateway fleet only"},
		"aviary, no canarySvc": {func() *v1alpha1.Rollout { ro := aviaryRollout(""); ro.Spec.CanaryService = ""; return ro }(), "spec.canaryService: is required"},
	} {
		if err := checkRouting(c.ro); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	if err := checkRouting(aviaryRollout(`{"match": {"pathPrefix": "/"}}`)); err != nil {
		t.Errorf("aviary routing with settings refused: %v", err)
	}
	// Segment routes, mirroring and blue-green need a router; the fleet is one.
	bg := aviaryRollout("")
	bg.Spec.Strategy = v1alpha1.Strategy{BlueGreen: &v1alpha1.BlueGreenStrategy{}}
	if err := checkRouting(bg); err != nil {
		t.Errorf("blue-green through the fleet refused: %v", err)
	}
	if !routed(bg) || routerOf(bg) != "Aviary gateway edge" {
		t.Errorf("routed %v, router %q", routed(bg), routerOf(bg))
	}
}

func TestStatusRoutingIsTheServedPlanForTheFleetOnly(t *testing.T) {
	plan := rollout.Plan{Stable: "aaa", Canary: "bbb", Weight: 20, Mirror: 10,
		Route: &config.Match{Cookie: &config.KeyMatch{Name: "beta", StringMatch: config.StringMatch{Prefix: "y"}}}}
	got := routingOf(aviaryRollout(""), plan)
	if got == nil || got.Stable != "aaa" || got.Canary != "bbb" || got.Weight != 20 || got.Mirror != 10 ||
		got.Route == nil || got.Route.Cookie == nil || got.Route.Cookie.Name != "beta" || got.Route.Cookie.Prefix != "y" {
		t.Errorf("routing %+v", got)
	}
	if got := routingOf(aviaryRollout(""), rollout.Plan{Stable: "aaa", Canary: "aaa", Weight: 0}); got.Canary != "" {
		t.Errorf("a canary that is the stable: %+v", got)
	}
	gw := testRollout(v1alpha1.Strategy{}, nil)
	gw.Spec.TrafficRouting = &v1alpha1.TrafficRouting{GatewayAPI: &v1alpha1.GatewayAPIRouting{HTTPRoute: "shop"}}
	if got := routingOf(gw, plan); got != nil {
		t.Errorf("an HTTPRoute-routed Rollout got status.routing %+v", got)
	}
}

func TestGatewayServiceIsThePlanOverTheServicesEndpoints(t *testing.T) {
	ro := aviaryRollout(`{"match": {"pathPrefix": "/"}, "stickiness": {"header": "X-User"}}`)
	ro.Status.Routing = &v1alpha1.RoutingStatus{Stable: "aaa", Canary: "bbb", Weight: 30, Mirror: 5,
		Route: &v1alpha1.Match{Header: &v1alpha1.KeyMatch{Name: "X-Beta", StringMatch: v1alpha1.StringMatch{Value: "1"}}}}
	stable, canary := []string{"http://10.0.0.1:8080", "http://10.0.0.2:8080"}, []string{"http://10.0.0.3:8080"}
	eps := map[string][]Endpoint{"shop-stable": {{URL: stable[0]}, {URL: stable[1], Pod: "shop-aaa-x1"}}, "shop-canary": {{URL: canary[0]}}}
	svc, err := GatewayService(ro, eps)
	if err != nil {
		t.Fatal(err)
	}
	if svc.Name != "shop.prod" || svc.Release != "" || svc.Strategy != nil || svc.Stickiness == nil {
		t.Errorf("service %+v", svc)
	}
	if len(svc.Versions) != 2 || !slices.Equal(svc.Versions[0].Endpoints, stable) || !slices.Equal(svc.Versions[1].Endpoints, canary) {
		t.Errorf("versions %+v", svc.Versions)
	}
	if !slices.Equal(svc.Traffic, []config.Traffic{{Version: "aaa", Weight: 70}, {Version: "bbb", Weight: 30}}) {
		t.Errorf("traffic %+v", svc.Traffic)
	}
	if len(svc.Routes) != 1 || svc.Routes[0].Version != "bbb" || svc.Routes[0].Match.Header.Name != "X-Beta" || svc.Mirror == nil {
		t.Errorf("routes %+v, mirror %+v", svc.Routes, svc.Mirror)
	}
	cfg, err := config.Parse([]byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Services = []config.Service{svc}
	if errs := cfg.Validate(); len(errs) > 0 {
		t.Errorf("the gateway would refuse it: %v", errs)
	}

	// A canary with no ready endpoint gets nothing; its share goes to the stable.
	delete(eps, "shop-canary")
	svc, err = GatewayService(ro, eps)
	if err != nil {
		t.Fatal(err)
	}
	if len(svc.Versions) != 1 || len(svc.Routes) != 0 || svc.Mirror != nil || svc.Traffic[0].Weight != 100 {
		t.Errorf("without canary endpoints: %+v", svc)
	}
	// A stable with none, or no routing yet, is an error that says what to do.
	if _, err := GatewayService(ro, nil); err == nil || !strings.Contains(err.Error(), "no ready endpoint") {
		t.Errorf("no stable endpoint: %v", err)
	}
	ro.Status.Routing = nil
	if _, err := GatewayService(ro, eps); err == nil || !strings.Contains(err.Error(), "aviary controller writes it") {
		t.Errorf("no routing: %v", err)
	}
}

// A Service's EndpointSlice follows its selector with a lag: pods known to be another version's
// are not served as this one's.
func TestGatewayServiceLeavesOutAnotherVersionsPods(t *testing.T) {
	ro := aviaryRollout(`{"match": {"pathPrefix": "/"}}`)
	ro.Status.Routing = &v1alpha1.RoutingStatus{Stable: "bbb", Canary: "", Weight: 0}
	// Just promoted: the stable Service still holds the old stable's pods and one of the new.
	eps := map[string][]Endpoint{"shop-stable": {{URL: "http://10.0.0.1:8080", Pod: "shop-aaa-1"}, {URL: "http://10.0.0.3:8080", Pod: "shop-bbb-1"}}}
	svc, err := GatewayService(ro, eps)
	if err != nil {
		t.Fatal(err)
	}
	if got := svc.Versions[0].Endpoints; !slices.Equal(got, []string{"http://10.0.0.3:8080"}) {
		t.Errorf("stable endpoints %v, want the new stable's pod only", got)
	}
	// None of the stable's pods yet (a Deployment adopted): what the Service holds serves.
	eps["shop-stable"] = []Endpoint{{URL: "http://10.0.0.7:8080", Pod: "shop-5d8f-xyz"}}
	if svc, err = GatewayService(ro, eps); err != nil || !slices.Equal(svc.Versions[0].Endpoints, []string{"http://10.0.0.7:8080"}) {
		t.Errorf("adopting: %v, %+v", err, svc.Versions)
	}
	// A canary Service that still holds the stable's pods gives the canary nothing.
	ro.Status.Routing = &v1alpha1.RoutingStatus{Stable: "bbb", Canary: "ccc", Weight: 20}
	eps = map[string][]Endpoint{"shop-stable": {{URL: "http://10.0.0.3:8080", Pod: "shop-bbb-1"}},
		"shop-canary": {{URL: "http://10.0.0.3:8080", Pod: "shop-bbb-1"}}}
	if svc, err = GatewayService(ro, eps); err != nil || len(svc.Versions) != 1 || svc.Traffic[0].Weight != 100 {
		t.Errorf("a canary Service still on the stable's pods: %v, %+v", err, svc)
	}
}
