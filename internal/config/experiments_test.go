package config

import (
	"strings"
	"testing"
)

const shop = `
services:
  - name: shop
    versions: [{name: v1, endpoints: ["http://127.0.0.1:1"]}, {name: v2, endpoints: ["http://127.0.0.1:2"]}]
    traffic: [{version: v1, weight: 100}]
    stickiness: {header: X-User}
`

// The issue's example, with its builtins, parses and gets its defaults.
func TestExperimentFromTheIssue(t *testing.T) {
	c, err := Parse([]byte(shop + `
experiments:
  - name: checkout-button
    service: shop
    arms: [{name: control, version: v1}, {name: green, version: v2}]
    traffic: 20
    unit: stickiness
    metrics:
      - {name: conversion, event: purchase, kind: proportion, goal: increase}
      - {name: revenue, event: purchase, value: amount, kind: mean, goal: increase}
      - {name: errors, builtin: errorRate, guardrail: true}
      - {name: p95, builtin: latency, quantile: 0.95, guardrail: true}
      - {name: thumbs, builtin: feedback, goal: increase}
      - {name: ttft, builtin: ttft}
      - {name: cost, builtin: costPerRequest, guardrail: true}
    alpha: 0.05
    minimumDetectableEffect: 0.02
  - name: new-checkout
    flag: new-checkout
    arms: [{name: off, variant: "off"}, {name: on, variant: "on", weight: 3}]
    metrics: [{name: conversion, event: purchase}]
`))
	if err != nil {
		t.Fatal(err)
	}
	e := c.Experiments[0]
	if e.Traffic != 20 || e.PlannedUnits != DefaultExperimentPlannedUnits || e.Power != DefaultExperimentPower ||
		e.Adjustment != "holm" || e.Arms[1].Weight != 1 || e.Metrics[2].Goal != GoalDecrease ||
		e.Metrics[5].Goal != GoalDecrease || e.Metrics[6].Goal != GoalDecrease {
		t.Errorf("defaults not applied: %+v", e)
	}
	f := c.Experiments[1]
	if f.Traffic != 100 || f.Alpha != 0.05 || f.Metrics[0].Kind != KindProportion || f.Metrics[0].Goal != GoalIncrease || f.Arms[1].Weight != 3 {
		t.Errorf("defaults not applied: %+v", f)
	}
}

func TestExperimentErrorsHavePaths(t *testing.T) {
	_, err := Parse([]byte(shop + `
experiments:
  - name: Checkout
    service: shop
    flag: x
    arms: [{name: control, version: v1}, {name: control, version: v9}]
    traffic: 120
    alpha: 0.7
    adjustment: bonferroni
    metrics:
      - {name: revenue, event: purchase, kind: mean}
      - {name: p95, builtin: latency, guardrail: true}
      - {name: signups, prometheus: {address: "localhost:9090", query: " "}}
      - {name: both, event: signup, prometheus: {address: "http://127.0.0.1:9090", query: "x"}}
      - {name: tokens, builtin: outputTokens}
  - name: lonely
    service: nope
    arms: [{name: control, version: v1}]
    metrics: [{name: errors, builtin: errorRate, guardrail: true}]
`))
	if err == nil {
		t.Fatal("bad experiments accepted")
	}
	for _, w := range []string{
		`experiments[0].name: "Checkout" is not a name`,
		"experiments[0]: sets both service and flag",
		`experiments[0].arms[1].name: "control" is used twice`,
		`experiments[0].arms[1].version: "v9" is not a version of service "shop"`,
		"experiments[0].traffic: 120 is not in (0, 100]",
		"experiments[0].alpha: 0.7 is not in (0, 0.5)",
		`experiments[0].adjustment: "bonferroni"`,
		"experiments[0].metrics[0].value: is required for kind mean",
		"experiments[0].metrics[1].quantile",
		`experiments[0].metrics[2].prometheus.address: "localhost:9090": want an http://`,
		"experiments[0].metrics[2].prometheus.query: is required",
		"experiments[0].metrics[3]: sets more than one of event, builtin and prometheus",
		`experiments[0].metrics[4].builtin: "outputTokens": use one of errorRate, latency, ttft, costPerRequest or feedback`,
		`experiments[1].service: "nope" is not a service`,
		"experiments[1].arms: has 1 arms",
		"experiments[1].metrics: are all guardrails",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
}
