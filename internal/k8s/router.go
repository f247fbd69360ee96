package k8s

import (
	"context"
	"fmt"
	"regexp"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/rollout"
)

// selectServices points the stable Service at the stable pods and the canary Service at the
// canary's (at the stable's when there is none). Without a traffic router the stable Service
// selects every pod of the Rollout, so replica counts make the split. A Service is never pointed
// at a version with no available pod: it keeps what it selects (the Deployment's own pods, when
// a Rollout adopts a serving Deployment) until that version has one.
func (r *Reconciler) selectServices(ctx context.Context, ro *v1alpha1.Rollout, p rollout.Plan, vs []version) error {
	routed := routed(ro)
	available := func(hash string) bool {
		for _, v := range vs {
			if (hash == "" || v.hash == hash) && v.rs.Status.AvailableReplicas > 0 {
				return true
			}
		}
		return false
	}
	stableSel, target := map[string]string{RolloutLabel: ro.Name}, ""
	if routed {
		stableSel[HashLabel], target = p.Stable, p.Stable
	}
	if available(target) {
		if err := r.selectPods(ctx, ro.Namespace, ro.Spec.StableService, stableSel, !routed); err != nil {
			return err
		}
	}
	if ro.Spec.CanaryService == "" {
		return nil
	}
	canary := p.Canary
	if canary == "" || !available(canary) {
		canary = p.Stable
	}
	if !available(canary) {
		return nil
	}
	return r.selectPods(ctx, ro.Namespace, ro.Spec.CanaryService, map[string]string{RolloutLabel: ro.Name, HashLabel: canary}, false)
}

// selectPods adds labels to a Service's selector (dropHash: and removes the hash).
func (r *Reconciler) selectPods(ctx context.Context, ns, name string, labels map[string]string, dropHash bool) error {
	var svc corev1.Service
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &svc); err != nil {
		return fmt.Errorf("service %s: %w (create it, or fix the Rollout's stableService or canaryService)", name, err)
	}
	before := svc.DeepCopy()
	if svc.Spec.Selector == nil {
		svc.Spec.Selector = map[string]string{}
	}
	for k, v := range labels {
		svc.Spec.Selector[k] = v
	}
	if dropHash {
		delete(svc.Spec.Selector, HashLabel)
	}
	if equality.Semantic.DeepEqual(before.Spec.Selector, svc.Spec.Selector) {
		return nil
	}
	if err := r.Client.Patch(ctx, &svc, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("point Service %s at its pods: %w", name, err)
	}
	return nil
}

// routeRuleName names the HTTPRoute rule Aviary adds for a canary's segment route.
func routeRuleName(ro *v1alpha1.Rollout) gatewayv1.SectionName {
	return gatewayv1.SectionName("aviary-" + ro.Name + "-segment")
}

// route sets the HTTPRoute to the plan: in every rule that sends traffic to the stable Service,
// the stable and canary Services' weights and the mirror filter; and a rule of its own that sends
// the segment (header, cookie, query or path match) to the canary. Other rules, other backends
// and other filters are left as the user wrote them.
func (r *Reconciler) route(ctx context.Context, ro *v1alpha1.Rollout, p rollout.Plan) error {
	name := ro.Spec.TrafficRouting.GatewayAPI.HTTPRoute
	var hr gatewayv1.HTTPRoute
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: name}, &hr); err != nil {
		return fmt.Errorf("HTTPRoute %s: %w (create it, or fix spec.trafficRouting.gatewayAPI.httpRoute)", name, err)
	}
	before := hr.DeepCopy()
	rules, err := planRules(hr.Spec.Rules, ro.Spec.StableService, ro.Spec.CanaryService, routeRuleName(ro), p)
	if err != nil {
		return fmt.Errorf("HTTPRoute %s: %w", name, err)
	}
	hr.Spec.Rules = rules
	if equality.Semantic.DeepEqual(before.Spec, hr.Spec) {
		return nil
	}
	if err := r.Client.Update(ctx, &hr); err != nil {
		return fmt.Errorf("set HTTPRoute %s weights (stable %d%%, canary %d%%): %w", name, 100-p.Weight, p.Weight, err)
	}
	return nil
}

// planRules is an HTTPRoute's rules under a plan: in every rule that sends traffic to the stable
// Service, the stable and canary Services' weights and the mirror filter; and, first, a rule named
// segment that sends the plan's segment to the canary. Other rules, backends and filters stay.
func planRules(in []gatewayv1.HTTPRouteRule, stable, canary string, segment gatewayv1.SectionName, p rollout.Plan) ([]gatewayv1.HTTPRouteRule, error) {
	var rules []gatewayv1.HTTPRouteRule
	var main *gatewayv1.HTTPRouteRule
	var mainPort *gatewayv1.PortNumber
	for _, rule := range in {
		if rule.Name != nil && *rule.Name == segment {
			continue // rebuilt below
		}
		i := slices.IndexFunc(rule.BackendRefs, func(b gatewayv1.HTTPBackendRef) bool { return isService(b.BackendRef, stable) })
		if i < 0 {
			rules = append(rules, rule)
			continue
		}
		port := rule.BackendRefs[i].Port
		var refs []gatewayv1.HTTPBackendRef
		for _, b := range rule.BackendRefs {
			switch {
			case isService(b.BackendRef, stable):
				b.Weight = ptr.To(int32(100 - p.Weight))
			case canary != "" && isService(b.BackendRef, canary):
				continue
			}
			refs = append(refs, b)
		}
		if canary != "" {
			refs = append(refs, serviceRef(canary, port, int32(p.Weight)))
		}
		rule.BackendRefs = refs
		rule.Filters = slices.DeleteFunc(slices.Clone(rule.Filters), func(f gatewayv1.HTTPRouteFilter) bool {
			return f.Type == gatewayv1.HTTPRouteFilterRequestMirror && f.RequestMirror != nil &&
				canary != "" && string(f.RequestMirror.BackendRef.Name) == canary
		})
		if p.Mirror > 0 && p.Canary != "" && canary != "" {
			rule.Filters = append(rule.Filters, gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterRequestMirror,
				RequestMirror: &gatewayv1.HTTPRequestMirrorFilter{
					BackendRef: serviceRef(canary, port, 0).BackendObjectReference, Percent: ptr.To(int32(p.Mirror + 0.5))}})
		}
		rules = append(rules, rule)
		if main == nil {
			main, mainPort = &rules[len(rules)-1], port
		}
	}
	if main == nil {
		return nil, fmt.Errorf("no rule sends traffic to Service %s; add a backendRef to it", stable)
	}
	if p.Route != nil && p.Canary != "" && canary != "" {
		rules = append([]gatewayv1.HTTPRouteRule{segmentRule(main, mainPort, canary, segment, p)}, rules...)
	}
	return rules, nil
}

// segmentRule is the rule named segment that sends the plan's segment (p.Route) to the canary
// Service. The segment's requests get what the main rule does to them (its filters but the
// mirror, its timeouts and retries), only on the canary.
func segmentRule(main *gatewayv1.HTTPRouteRule, mainPort *gatewayv1.PortNumber, canary string, segment gatewayv1.SectionName, p rollout.Plan) gatewayv1.HTTPRouteRule {
	seg := gatewayv1.HTTPRouteRule{Name: &segment, Timeouts: main.Timeouts, Retry: main.Retry,
		BackendRefs: []gatewayv1.HTTPBackendRef{serviceRef(canary, mainPort, 1)}}
	for _, f := range main.Filters {
		if f.Type != gatewayv1.HTTPRouteFilterRequestMirror {
			seg.Filters = append(seg.Filters, *f.DeepCopy())
		}
	}
	// The segment keeps the main rule's own matches (path, method, headers) and adds its own:
	// with more matches it is the more specific rule, which Gateway API routers prefer.
	bases := main.Matches
	if len(bases) == 0 { // the API server's default match
		bases = []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To("/")}}}
	}
	for _, base := range bases {
		seg.Matches = append(seg.Matches, segmentMatch(*base.DeepCopy(), *p.Route))
	}
	return seg
}

// isService reports whether a backendRef names the Service name (in the route's namespace).
func isService(b gatewayv1.BackendRef, name string) bool {
	return string(b.Name) == name && (b.Kind == nil || *b.Kind == "Service") &&
		(b.Group == nil || *b.Group == "") && b.Namespace == nil
}

// serviceRef is a backendRef to a Service, written as the API server stores it (group "" and kind
// Service spelled out), so that an unchanged route compares equal and is not written again.
func serviceRef(name string, port *gatewayv1.PortNumber, weight int32) gatewayv1.HTTPBackendRef {
	return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{
		BackendObjectReference: gatewayv1.BackendObjectReference{Group: ptr.To(gatewayv1.Group("")),
			Kind: ptr.To(gatewayv1.Kind("Service")), Name: gatewayv1.ObjectName(name), Port: port},
		Weight: ptr.To(weight)}}
}

// segmentMatch adds a segment's match to a rule's match. A cookie is matched in the Cookie header.
func segmentMatch(m gatewayv1.HTTPRouteMatch, seg config.Match) gatewayv1.HTTPRouteMatch {
	exact, re := gatewayv1.HeaderMatchExact, gatewayv1.HeaderMatchRegularExpression
	header := func(name string, sm config.StringMatch) gatewayv1.HTTPHeaderMatch {
		h := gatewayv1.HTTPHeaderMatch{Name: gatewayv1.HTTPHeaderName(name), Type: &exact, Value: sm.Value}
		if pattern := regexOf(sm); pattern != "" {
			h.Type, h.Value = &re, pattern
		}
		return h
	}
	if k := seg.Header; k != nil {
		m.Headers = append(m.Headers, header(k.Name, k.StringMatch))
	}
	if k := seg.Cookie; k != nil {
		value := regexp.QuoteMeta(k.Value)
		switch {
		case k.Prefix != "":
			value = regexp.QuoteMeta(k.Prefix) + "[^;]*"
		case k.Regex != "":
			value = "(?:" + k.Regex + ")"
		}
		m.Headers = append(m.Headers, gatewayv1.HTTPHeaderMatch{Name: "Cookie", Type: &re,
			Value: `(^|.*;\s*)` + regexp.QuoteMeta(k.Name) + "=" + value + `(;.*|$)`})
	}
	if k := seg.Query; k != nil {
		qt := gatewayv1.QueryParamMatchExact
		q := gatewayv1.HTTPQueryParamMatch{Name: gatewayv1.HTTPHeaderName(k.Name), Type: &qt, Value: k.Value}
		if pattern := regexOf(k.StringMatch); pattern != "" {
			qt = gatewayv1.QueryParamMatchRegularExpression
			q.Value = pattern
		}
		m.QueryParams = append(m.QueryParams, q)
	}
	if pm := seg.Path; pm != nil {
		path := gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchExact), Value: ptr.To(pm.Value)}
		switch {
		case pm.Prefix != "":
			path = gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To(pm.Prefix)}
		case pm.Regex != "":
			path = gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchRegularExpression), Value: ptr.To(pm.Regex)}
		}
		m.Path = &path
	}
	return m
}

// regexOf is a prefix or regex match as a regular expression ("" for an exact value).
func regexOf(sm config.StringMatch) string {
	switch {
	case sm.Prefix != "":
		return "^" + regexp.QuoteMeta(sm.Prefix) + ".*"
	case sm.Regex != "":
		return "^(?:" + sm.Regex + ")$"
	}
	return ""
}

// routingOf is the plan a Rollout's Aviary gateway fleet serves, as status.routing says it (nil
// when another router, or none, moves the weights). The replicas send the stable version to the
// stable Service's ready endpoints and the canary to the canary Service's, which selectServices
// points at them.
func routingOf(ro *v1alpha1.Rollout, p rollout.Plan) *v1alpha1.RoutingStatus {
	if gatewayName(ro) == "" {
		return nil
	}
	out := &v1alpha1.RoutingStatus{Stable: p.Stable, Weight: int32(p.Weight)}
	if p.Canary == "" || p.Canary == p.Stable {
		return out
	}
	out.Canary, out.Mirror = p.Canary, p.Mirror
	if p.Route != nil {
		out.Route = matchOf(*p.Route)
	}
	return out
}

// matchOf is a config match as the Rollout's API writes it (the same fields).
func matchOf(m config.Match) *v1alpha1.Match {
	out := &v1alpha1.Match{}
	key := func(k *config.KeyMatch) *v1alpha1.KeyMatch {
		if k == nil {
			return nil
		}
		return &v1alpha1.KeyMatch{Name: k.Name, StringMatch: v1alpha1.StringMatch(k.StringMatch)}
	}
	out.Header, out.Cookie, out.Query = key(m.Header), key(m.Cookie), key(m.Query)
	if m.Path != nil {
		out.Path = &v1alpha1.StringMatch{Value: m.Path.Value, Prefix: m.Path.Prefix, Regex: m.Path.Regex}
	}
	return out
}
