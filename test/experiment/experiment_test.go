//go:build e2e

// Package experiment tests experiments end to end on a running aviary: users evaluated through the
// OFREP endpoint (the real flag evaluation, which records exposures), purchases sent to
// POST /api/v1/track with a known lift, and the results read from the admin API.
package experiment

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/experiment"
	"aviary.dev/aviary/internal/polltest"
	"aviary.dev/aviary/internal/store"
	"aviary.dev/aviary/test/e2e"
)

// Two flags split by flagd's fractional operator on the targeting key: an even one, and one that
// gives "on" 70% while the experiment expects half (a broken split).
const flagsJSON = `{"flags": {
  "new-checkout": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
    "targeting": {"fractional": [{"var": "targetingKey"}, ["off", 50], ["on", 50]]}},
  "skewed": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
    "targeting": {"fractional": [{"var": "targetingKey"}, ["off", 30], ["on", 70]]}}
}}`

const config = `gateway: {listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0"}
storage: {path: %q}
flags: {files: [%q]}
experiments:
  - name: checkout
    flag: new-checkout
    arms: [{name: "off", variant: "off"}, {name: "on", variant: "on"}]
    metrics: [{name: conversion, event: purchase}, {name: revenue, event: purchase, value: amount, kind: mean}]
    plannedUnits: 1000
  - name: skewed
    flag: skewed
    arms: [{name: "off", variant: "off"}, {name: "on", variant: "on"}]
    metrics: [{name: conversion, event: purchase}]
    plannedUnits: 1000
`

const users = 1000

func TestExperimentDeclaresTheRightWinnerAndTheBrokenSplit(t *testing.T) {
	dir := t.TempDir()
	flags := filepath.Join(dir, "flags.json")
	if err := os.WriteFile(flags, []byte(flagsJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	a := e2e.Start(t, fmt.Sprintf(config, filepath.Join(dir, "aviary.db"), flags))

	// Each user is evaluated as an app would, and buys as its variant makes it: "off" 15%, "on"
	// 30% of users (every 3rd and 6th of 20 in each arm, so the lift is exact), for 40 each.
	var events []store.TrackedEvent
	for _, flag := range []string{"new-checkout", "skewed"} {
		seen := map[string]int{}
		for i := 0; i < users; i++ {
			user := fmt.Sprintf("%s-user-%d", flag, i)
			variant := evaluate(t, a.Admin, flag, user)
			rate := 3 // in 20
			if variant == "on" {
				rate = 6
			}
			if seen[variant]%20 < rate {
				events = append(events, store.TrackedEvent{ID: "order-" + user, Unit: user, Event: "purchase", Value: 40})
			}
			seen[variant]++
		}
	}
	// Exposures are written in batches off the request path: wait until every user has one.
	for _, flag := range []string{"new-checkout", "skewed"} {
		polltest.Wait(t, 10*time.Second, "every user exposed to "+flag, func() bool {
			var c store.ExposureCounts
			get(t, a.Admin+"/api/v1/flags/"+flag+"/exposures?recent=0", &c)
			return c.Units == users
		})
	}
	for i := 0; i < len(events); i += experiment.MaxTrackBatch {
		body, _ := json.Marshal(map[string]any{"events": events[i:min(i+experiment.MaxTrackBatch, len(events))]})
		post(t, a.Admin+"/api/v1/track", body)
		post(t, a.Admin+"/api/v1/track", body) // a retry: counted once
	}

	var res experiment.Results
	get(t, a.Admin+"/api/v1/experiments/checkout/results", &res)
	if res.Decision.Winner != "on" || !strings.HasPrefix(res.Decision.Text, "on beats off on conversion by +") {
		t.Errorf("checkout: decision %+v, arms %+v", res.Decision, res.Arms)
	}
	conv := res.Metrics[0].Arms[0]
	if d := conv.ArmMean - conv.ControlMean; d < 0.14 || d > 0.16 {
		t.Errorf("conversion %.3f against %.3f: the lift of 15 points was not measured (retries counted twice?)", conv.ArmMean, conv.ControlMean)
	}
	t.Logf("checkout: %s", res.Decision.Text)

	var skew experiment.Results
	get(t, a.Admin+"/api/v1/experiments/skewed/results", &skew)
	if skew.SRM == nil || !skew.SRM.Mismatch || skew.Decision.Winner != "" || !strings.Contains(skew.Decision.Text, "sample ratio mismatch") {
		t.Errorf("skewed: SRM %+v, decision %+v, arms %+v", skew.SRM, skew.Decision, skew.Arms)
	}
	t.Logf("skewed: %s", skew.Decision.Text)
}

func evaluate(t *testing.T, admin, flag, user string) string {
	t.Helper()
	body := fmt.Sprintf(`{"context": {"targetingKey": %q}}`, user)
	resp, err := http.Post(admin+"/ofrep/v1/evaluate/flags/"+flag, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct{ Variant string }
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&r) != nil {
		t.Fatalf("evaluate %s for %s: %s", flag, user, resp.Status)
	}
	return r.Variant
}

func get(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func post(t *testing.T, url string, body []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s: %s %s", url, resp.Status, b)
	}
}

// Arms that are versions of a service: the gateway places each sticky user on a version and
// records it; the version that sells more wins.
func TestVersionExperimentOnTheGateway(t *testing.T) {
	var ups [2]*httptest.Server
	for i, name := range []string{"v1", "v2"} {
		ups[i] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) }))
		t.Cleanup(ups[i].Close)
	}
	dir := t.TempDir()
	a := e2e.Start(t, fmt.Sprintf(`gateway: {listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0"}
storage: {path: %q}
services:
  - name: shop
    match: {pathPrefix: /}
    versions: [{name: v1, endpoints: [%q]}, {name: v2, endpoints: [%q]}]
    traffic: [{version: v1, weight: 50}, {version: v2, weight: 50}]
    stickiness: {header: X-User}
experiments:
  - name: checkout-button
    service: shop
    arms: [{name: control, version: v1}, {name: green, version: v2}]
    metrics: [{name: conversion, event: purchase}]
    plannedUnits: 1000
`, filepath.Join(dir, "aviary.db"), ups[0].URL, ups[1].URL))

	var events []store.TrackedEvent
	seen := map[string]int{}
	for i := 0; i < users; i++ {
		user := fmt.Sprintf("user-%d", i)
		req, _ := http.NewRequest(http.MethodGet, a.GW+"/checkout", nil)
		req.Header.Set("X-User", user)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		version := string(b)
		rate := 3 // in 20: 15% on v1, 30% on v2
		if version == "v2" {
			rate = 6
		}
		if seen[version]%20 < rate {
			events = append(events, store.TrackedEvent{ID: "order-" + user, Unit: user, Event: "purchase"})
		}
		seen[version]++
	}
	polltest.Wait(t, 10*time.Second, "every user exposed to a version", func() bool {
		var c store.ExposureCounts
		get(t, a.Admin+"/api/v1/flags/"+experiment.VersionExposures("shop")+"/exposures?recent=0", &c)
		return c.Units == users
	})
	body, _ := json.Marshal(map[string]any{"events": events})
	post(t, a.Admin+"/api/v1/track", body)
	var res experiment.Results
	get(t, a.Admin+"/api/v1/experiments/checkout-button/results", &res)
	if res.Decision.Winner != "green" || res.Arms[0].Units != seen["v1"] || res.Arms[1].Units != seen["v2"] {
		t.Errorf("decision %+v, arms %+v, served %v", res.Decision, res.Arms, seen)
	}
	t.Logf("checkout-button: %s", res.Decision.Text)

	// Concluding ships green: a rollout of v2, judged like any other.
	post(t, a.Admin+"/api/v1/experiments/checkout-button/conclude", []byte(`{"arm": "green"}`))
	st := a.Status("shop")
	if st.CanaryVersion != "v2" && st.StableVersion != "v2" {
		t.Errorf("after conclude, the rollout of shop is %+v; want v2 on its way", st)
	}
}

// Concluding a flag experiment ships the variant by a flag rollout of the flag's service, judged
// like any other.
func TestConcludeAFlagExperimentStartsAFlagRollout(t *testing.T) {
	dir := t.TempDir()
	flags := filepath.Join(dir, "flags.json")
	if err := os.WriteFile(flags, []byte(flagsJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	a := e2e.Start(t, fmt.Sprintf(`gateway: {listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0"}
storage: {path: %q}
flags: {files: [%q]}
services:
  - name: shop
    match: {pathPrefix: /}
    versions: [{name: v1, endpoints: [%q]}]
    stickiness: {header: X-User}
    flags: [{key: new-checkout, header: X-Checkout}]
experiments:
  - name: checkout
    flag: new-checkout
    arms: [{name: "off", variant: "off"}, {name: "on", variant: "on"}]
    metrics: [{name: conversion, event: purchase}]
`, filepath.Join(dir, "aviary.db"), flags, e2e.Upstream(t, "v1", 0)))
	post(t, a.Admin+"/api/v1/experiments/checkout/conclude", []byte(`{"arm": "on"}`))
	st := a.Status("flag:new-checkout")
	if st.CanaryVersion != "on" && st.StableVersion != "on" {
		t.Errorf("after conclude, the flag rollout is %+v; want \"on\" on its way", st)
	}
	var list struct{ Experiments []experiment.Summary }
	get(t, a.Admin+"/api/v1/experiments", &list)
	if len(list.Experiments) != 1 || list.Experiments[0].Phase != store.ExperimentConcluded {
		t.Errorf("experiments %+v", list)
	}
}
