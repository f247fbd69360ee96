package k8s

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"k8s.io/utils/ptr"
	"pgregory.net/rapid"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/rollout"
)

func userRules() []gatewayv1.HTTPRouteRule {
	port := ptr.To[gatewayv1.PortNumber](8080)
	return []gatewayv1.HTTPRouteRule{
		{ // the user's rule for /api, with a filter of their own
			Matches: []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To("/api")}}},
			Filters: []gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterRequestHeaderModifier,
				RequestHeaderModifier: &gatewayv1.HTTPHeaderFilter{Add: []gatewayv1.HTTPHeader{{Name: "X-From", Value: "gw"}}}}},
			BackendRefs: []gatewayv1.HTTPBackendRef{serviceRef("shop-stable", port, 1)},
		},
		{BackendRefs: []gatewayv1.HTTPBackendRef{serviceRef("other", port, 1)}}, // not ours
	}
}

func TestPlanRulesSetWeightsMirrorAndASegmentAndLeaveTheRestAlone(t *testing.T) {
	seg := &config.Match{Header: &config.KeyMatch{Name: "X-Beta", StringMatch: config.StringMatch{Value: "yes"}}}
	rules, err := planRules(userRules(), "shop-stable", "shop-canary", "aviary-shop-segment",
		rollout.Plan{Stable: "a", Canary: "b", Weight: 30, Mirror: 20, Route: seg})
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 3 || rules[0].Name == nil || *rules[0].Name != "aviary-shop-segment" {
		t.Fatalf("want the segment rule first, then the user's two: %+v", rules)
	}
	s := rules[0]
	if len(s.Matches) != 1 || s.Matches[0].Path == nil || *s.Matches[0].Path.Value != "/api" ||
		len(s.Matches[0].Headers) != 1 || s.Matches[0].Headers[0].Name != "X-Beta" || s.BackendRefs[0].Name != "shop-canary" {
		t.Errorf("the segment keeps the rule's path and adds its header: %+v", s)
	}
	if len(s.Filters) != 1 || s.Filters[0].Type != gatewayv1.HTTPRouteFilterRequestHeaderModifier {
		t.Errorf("the segment's requests should get the rule's own filters (not the mirror): %+v", s.Filters)
	}
	main := rules[1]
	if len(main.BackendRefs) != 2 || *main.BackendRefs[0].Weight != 70 || main.BackendRefs[1].Name != "shop-canary" ||
		*main.BackendRefs[1].Weight != 30 || *main.BackendRefs[1].Port != 8080 {
		t.Errorf("weights: %+v", main.BackendRefs)
	}
	if len(main.Filters) != 2 || main.Filters[0].Type != gatewayv1.HTTPRouteFilterRequestHeaderModifier ||
		main.Filters[1].RequestMirror == nil || *main.Filters[1].RequestMirror.Percent != 20 {
		t.Errorf("filters: the user's, then the mirror: %+v", main.Filters)
	}
	if rules[2].BackendRefs[0].Name != "other" || rules[2].BackendRefs[0].Weight == nil || *rules[2].BackendRefs[0].Weight != 1 {
		t.Errorf("a rule without the stable Service changed: %+v", rules[2])
	}

	// Applied again with the rollout over, everything Aviary added goes, and twice is the same as once.
	back, err := planRules(rules, "shop-stable", "shop-canary", "aviary-shop-segment", rollout.Plan{Stable: "b"})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := planRules(back, "shop-stable", "shop-canary", "aviary-shop-segment", rollout.Plan{Stable: "b"})
	if len(back) != 2 || len(back[0].Filters) != 1 || *back[0].BackendRefs[0].Weight != 100 || *back[0].BackendRefs[1].Weight != 0 {
		t.Errorf("after the rollout: %+v", back)
	}
	if len(again) != len(back) || len(again[0].BackendRefs) != 2 {
		t.Errorf("not idempotent: %+v then %+v", back, again)
	}
}

func TestARouteWithoutTheStableServiceIsAnError(t *testing.T) {
	_, err := planRules(userRules()[1:], "shop-stable", "shop-canary", "seg", rollout.Plan{Stable: "a"})
	if err == nil || !strings.Contains(err.Error(), "shop-stable") {
		t.Errorf("got %v", err)
	}
}

// The Cookie header match a cookie segment becomes selects exactly the requests whose cookie has
// that value, wherever it sits among the others, as Aviary's own gateway decides.
func TestACookieSegmentMatchesTheCookieHeaderAsTheGatewayWould(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		token := rapid.StringMatching(`[A-Za-z0-9._-]{1,8}`)
		// The other cookies' names start with _, which the segment's name never does: one cookie of the name.
		name := rapid.StringMatching(`[A-Za-z][A-Za-z0-9.-]{0,7}`).Draw(t, "name")
		value, other := token.Draw(t, "value"), token.Draw(t, "other")
		m := segmentMatch(gatewayv1.HTTPRouteMatch{}, config.Match{Cookie: &config.KeyMatch{Name: name, StringMatch: config.StringMatch{Value: value}}})
		re := regexp.MustCompile("^(?:" + m.Headers[0].Value + ")$") // Gateway API matches the whole value
		before := rapid.SliceOfN(token, 0, 3).Draw(t, "before")
		var parts []string
		for i, b := range before {
			parts = append(parts, "_c"+string(rune('a'+i))+"="+b)
		}
		sent := value // half the time the segment's value, else any (a prefix of it, say)
		if rapid.Bool().Draw(t, "differs") {
			sent = rapid.SampledFrom([]string{value[:len(value)-1] + "x", value + "x", "x" + value, other}).Draw(t, "sent")
		}
		parts = append(parts, name+"="+sent)
		if rapid.Bool().Draw(t, "trailing") {
			parts = append(parts, "_z"+other+"=1")
		}
		header := strings.Join(parts, "; ")
		req := &http.Request{Header: http.Header{"Cookie": {header}}}
		c, err := req.Cookie(name)
		want := err == nil && c.Value == value
		if got := re.MatchString(header); got != want {
			t.Fatalf("cookie header %q, segment %s=%s: regex %q says %v, the cookie parser %v", header, name, value, re, got, want)
		}
	})
}

func TestQueryAndPathSegmentsBecomeGatewayMatches(t *testing.T) {
	m := segmentMatch(gatewayv1.HTTPRouteMatch{}, config.Match{
		Query: &config.KeyMatch{Name: "beta", StringMatch: config.StringMatch{Prefix: "on"}},
		Path:  &config.StringMatch{Prefix: "/v2"},
	})
	q := m.QueryParams[0]
	if *q.Type != gatewayv1.QueryParamMatchRegularExpression || !regexp.MustCompile(q.Value).MatchString("one") ||
		regexp.MustCompile(q.Value).MatchString("xon") {
		t.Errorf("query %+v", q)
	}
	if *m.Path.Type != gatewayv1.PathMatchPathPrefix || *m.Path.Value != "/v2" {
		t.Errorf("path %+v", m.Path)
	}
}
