//go:build e2e

package web_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"aviary.dev/aviary/internal/polltest"
	"aviary.dev/aviary/test/e2e"
)

// experimentsAviary serves two flag experiments with real exposures and outcomes: checkout, an
// even split where "on" converts 30% of its users against "off"'s 15% (with a refunds guardrail
// that holds), and skewed, whose flag gives "on" 70% of the users while the experiment expects
// half (a broken split, as a bug that loses units would make).
func experimentsAviary(t *testing.T) *aviary {
	t.Helper()
	file := filepath.Join(t.TempDir(), "flags.json")
	doc := `{"flags": {
  "new-checkout": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
    "targeting": {"fractional": [{"var": "targetingKey"}, ["off", 50], ["on", 50]]}},
  "skewed": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
    "targeting": {"fractional": [{"var": "targetingKey"}, ["off", 30], ["on", 70]]}}}}`
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	extra := fmt.Sprintf(`flags: {files: [%q]}
experiments:
  - name: checkout
    flag: new-checkout
    arms: [{name: "off", variant: "off"}, {name: "on", variant: "on"}]
    metrics:
      - {name: conversion, event: purchase}
      - {name: revenue, event: purchase, value: amount, kind: mean}
      - {name: refunds, event: refund, goal: decrease, guardrail: true}
    plannedUnits: 1000
  - name: skewed
    flag: skewed
    arms: [{name: "off", variant: "off"}, {name: "on", variant: "on"}]
    metrics: [{name: conversion, event: purchase}]
    plannedUnits: 1000
`, file)
	services := fmt.Sprintf("  - name: shop\n    match: {pathPrefix: /}\n    versions: [{name: v1, endpoints: [%q]}]\n", e2e.Upstream(t, "v1", 0))
	a := serve(t, services, extra)

	// Each user is evaluated as an app would (OFREP), and buys as its variant makes it: "off" 3
	// in 20 users, "on" 6 in 20; every 20th user of each arm asks for a refund.
	const users = 1000
	var events []map[string]any
	for _, flag := range []string{"new-checkout", "skewed"} {
		seen := map[string]int{}
		for i := range users {
			user := fmt.Sprintf("%s-user-%d", flag, i)
			var r struct{ Variant string }
			if code, body := a.call("POST", "/ofrep/v1/evaluate/flags/"+flag, adminToken, map[string]any{"context": map[string]string{"targetingKey": user}}, &r); code != http.StatusOK {
				t.Fatalf("evaluate %s for %s: %d %s", flag, user, code, body)
			}
			rate := 3
			if r.Variant == "on" {
				rate = 6
			}
			if seen[r.Variant]%20 < rate {
				events = append(events, map[string]any{"id": "order-" + user, "unit": user, "event": "purchase", "value": 40})
			}
			if seen[r.Variant]%20 == 19 {
				events = append(events, map[string]any{"id": "refund-" + user, "unit": user, "event": "refund"})
			}
			seen[r.Variant]++
		}
	}
	for _, flag := range []string{"new-checkout", "skewed"} {
		polltest.Wait(t, 20*time.Second, "every user exposed to "+flag, func() bool {
			var c struct{ Units int }
			a.call("GET", "/api/v1/flags/"+flag+"/exposures?recent=0", readToken, nil, &c)
			return c.Units == users
		})
	}
	for i := 0; i < len(events); i += 500 {
		if code, body := a.call("POST", "/api/v1/track", adminToken, map[string]any{"events": events[i:min(i+500, len(events))]}, nil); code != http.StatusOK {
			t.Fatalf("track: %d %s", code, body)
		}
	}
	return a
}

// TestExperimentsPageShowsResultsTheBrokenSplitAndStops: the list shows both experiments; the
// page of the even one shows the decision in words, per metric and arm the effect with the
// anytime-valid and the fixed interval, and the guardrail holding; the broken split raises the
// SRM banner; the admin stops an experiment from the page, with a reason.
func TestExperimentsPageShowsResultsTheBrokenSplitAndStops(t *testing.T) {
	a := experimentsAviary(t)
	ctx := browser(t, 1400, 1000)
	signIn(t, ctx, a, adminToken)
	run(t, ctx, 10*time.Second, "open the experiments page", navigateHash(a, "#/experiments"))
	waitJS(t, ctx, 10*time.Second, "both experiments, running",
		`document.querySelectorAll('#experiments tr[data-experiment]').length === 2 &&
		 document.querySelector('#experiments tr[data-experiment="checkout"]').dataset.phase === 'running'`)
	screenshot(t, ctx, "experiments")

	run(t, ctx, 10*time.Second, "open checkout", chromedpClick(`#experiments tr[data-experiment="checkout"] a`))
	waitJS(t, ctx, 10*time.Second, "the decision: on wins",
		`document.querySelector('#decision [data-verdict]')?.dataset.verdict === 'ship' &&
		 document.querySelector('#decision-text').textContent.startsWith('on beats off on conversion')`)
	waitJS(t, ctx, 5*time.Second, "conversion's effect with both intervals, better",
		`(() => { const r = document.querySelector('#metrics [data-metric="conversion"] tr[data-arm="on"]');
		  return r && r.classList.contains('better') && /^\+\d/.test(r.querySelector('.effect').textContent) &&
		    /^\[.+, .+\]$/.test(r.querySelector('.seq').textContent) && /^\[.+, .+\]$/.test(r.querySelector('.fixed').textContent) &&
		    r.querySelector('.ci .seq') && r.querySelector('.ci .fixed'); })()`)
	waitJS(t, ctx, 5*time.Second, "the refunds guardrail holding",
		`document.querySelector('#guardrails li[data-metric="refunds"][data-arm="on"]')?.dataset.state === 'holding'`)
	if n := eval[int](t, ctx, `document.querySelectorAll('#srm-banner').length`); n != 0 {
		t.Errorf("the even split shows an SRM banner")
	}
	screenshot(t, ctx, "experiment")

	run(t, ctx, 10*time.Second, "open skewed", navigateHash(a, "#/experiments/skewed"))
	waitJS(t, ctx, 10*time.Second, "the SRM banner, and no winner",
		`document.querySelector('#srm-banner')?.textContent.includes('Sample ratio mismatch') &&
		 document.querySelector('#decision [data-verdict]')?.dataset.verdict === 'blocked'`)
	screenshot(t, ctx, "experiment-srm")

	run(t, ctx, 10*time.Second, "stop skewed", chromedpClick(`#controls button[data-action="stop"]`))
	waitJS(t, ctx, 5*time.Second, "the confirmation, asking for a reason", `document.getElementById('confirm').open`)
	run(t, ctx, 10*time.Second, "confirm with a reason", sendKeys("#reason", "the split is broken"), chromedpClick("#confirm-ok"))
	waitJS(t, ctx, 10*time.Second, "skewed stopped, and no stop button",
		`!document.getElementById('confirm').open && document.querySelector('#exp-phase').textContent === 'stopped' &&
		 !document.querySelector('#controls button[data-action="stop"]')`)
	var list struct {
		Experiments []struct{ Name, Phase string }
	}
	a.call("GET", "/api/v1/experiments", readToken, nil, &list)
	for _, e := range list.Experiments {
		if want := map[string]string{"checkout": "running", "skewed": "stopped"}[e.Name]; e.Phase != want {
			t.Errorf("after the stop from the page: %s is %q, want %q", e.Name, e.Phase, want)
		}
	}
}

// TestExperimentPageHasNoControlsForTheReadToken: the read token sees the results, and no start,
// stop or conclude.
func TestExperimentPageHasNoControlsForTheReadToken(t *testing.T) {
	a := experimentsAviary(t)
	ctx := browser(t, 1280, 900)
	signIn(t, ctx, a, readToken)
	run(t, ctx, 10*time.Second, "open checkout", navigateHash(a, "#/experiments/checkout"))
	waitJS(t, ctx, 10*time.Second, "the results", `document.querySelector('#metrics [data-metric="conversion"] tr[data-arm="on"]')`)
	if n := eval[int](t, ctx, `document.querySelectorAll('#controls button').length`); n != 0 {
		t.Errorf("the read token sees %d experiment controls, want none", n)
	}
}
