package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Experiment is an A/B test: arms that are versions of a service or variants of a flag, units
// counted in an arm at their first exposure, and metrics from the events apps send to
// POST /api/v1/track (docs/experiments.md). Package experiment runs it; package
// experiment/stats computes its results.
type Experiment struct {
	Name string `yaml:"name" json:"name"`
	// Service or Flag, one of them: whose versions or variants the arms are.
	Service string          `yaml:"service" json:"service,omitempty"`
	Flag    string          `yaml:"flag" json:"flag,omitempty"`
	Arms    []ExperimentArm `yaml:"arms" json:"arms"`
	// Traffic is the percentage of units in the experiment (default 100).
	Traffic float64 `yaml:"traffic" json:"traffic,omitempty"`
	// Unit is what a unit is; only "stickiness" (the service's stickiness key, or a flag's
	// targeting key) today.
	Unit    ExperimentUnit     `yaml:"unit" json:"unit,omitempty"`
	Metrics []ExperimentMetric `yaml:"metrics" json:"metrics"`
	// Alpha is the error rate of the intervals and of a winner (default 0.05).
	Alpha float64 `yaml:"alpha" json:"alpha,omitempty"`
	// MinimumDetectableEffect is relative to control's mean (default 0.02: 2%).
	MinimumDetectableEffect float64 `yaml:"minimumDetectableEffect" json:"minimumDetectableEffect,omitempty"`
	// Power aimed at when saying how long the experiment still needs (default 0.8).
	Power float64 `yaml:"power" json:"power,omitempty"`
	// PlannedUnits tunes the confidence sequence to be tightest near this many units, all arms
	// (default 20000); it never makes it invalid.
	PlannedUnits int `yaml:"plannedUnits" json:"plannedUnits,omitempty"`
	// MinUnitsPerArm is the fewest units each arm needs before its results are computed (default
	// 100): the confidence sequence is asymptotic.
	MinUnitsPerArm int `yaml:"minUnitsPerArm" json:"minUnitsPerArm,omitempty"`
	// Adjustment of p-values across metrics × arms: holm (default) or bh.
	Adjustment string `yaml:"adjustment" json:"adjustment,omitempty"`
}

// ExperimentArm is one arm; the first arm is control.
type ExperimentArm struct {
	Name    string `yaml:"name" json:"name"`
	Version string `yaml:"version" json:"version,omitempty"`
	Variant string `yaml:"variant" json:"variant,omitempty"`
	// Weight is the arm's share of the experiment's units (default 1: an even split).
	Weight float64 `yaml:"weight" json:"weight,omitempty"`
}

// ExperimentUnit is what an experiment counts.
type ExperimentUnit string

// UnitStickiness is the service's stickiness key (or a flag's targeting key).
const UnitStickiness ExperimentUnit = "stickiness"

// MetricKind is how a metric's events become one value per unit.
type MetricKind string

// The metric kinds.
const (
	// KindProportion: 1 if the unit sent the event after its exposure, else 0.
	KindProportion MetricKind = "proportion"
	// KindMean: the sum of the events' value field over the unit (0 without events).
	KindMean MetricKind = "mean"
)

// MetricGoal is the direction in which a metric is better.
type MetricGoal string

// The goals.
const (
	GoalIncrease MetricGoal = "increase"
	GoalDecrease MetricGoal = "decrease"
)

// ExperimentMetric is one metric: from tracked events (Event) or a builtin.
type ExperimentMetric struct {
	Name     string     `yaml:"name" json:"name"`
	Event    string     `yaml:"event" json:"event,omitempty"`
	Value    string     `yaml:"value" json:"value,omitempty"` // the event's value field for kind mean
	Kind     MetricKind `yaml:"kind" json:"kind,omitempty"`
	Goal     MetricGoal `yaml:"goal" json:"goal,omitempty"`
	Builtin  Builtin    `yaml:"builtin" json:"builtin,omitempty"`
	Quantile float64    `yaml:"quantile" json:"quantile,omitempty"`
	// Guardrail metrics may not move the wrong way; the first other metric is the primary one.
	Guardrail bool `yaml:"guardrail" json:"guardrail,omitempty"`
	// Prometheus reads the metric as a counter per arm from Prometheus (instead of Event or
	// Builtin): each arm's count over its units.
	Prometheus *ExperimentPrometheus `yaml:"prometheus" json:"prometheus,omitempty"`
}

// ExperimentPrometheus is a metric read per arm from Prometheus: Query returns one sample per arm,
// labelled Label with the arm's name, whose value is the arm's count since the experiment
// started. {{experiment}} in the query is the experiment's name, {{since}} the time since it
// started as a PromQL duration (e.g. 3600s), for increase(...[{{since}}]).
type ExperimentPrometheus struct {
	Address string   `yaml:"address" json:"address"`
	Query   string   `yaml:"query" json:"query"`
	Label   string   `yaml:"label" json:"label,omitempty"`
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
}

// DefaultArmLabel is the label that names the arm in an experiment's Prometheus query.
const DefaultArmLabel = "arm"

// The experiments' defaults.
const (
	DefaultExperimentTraffic      = 100.0
	DefaultExperimentAlpha        = 0.05
	DefaultExperimentMDE          = 0.02
	DefaultExperimentPower        = 0.8
	DefaultExperimentPlannedUnits = 20000
	DefaultExperimentAdjustment   = "holm"
	DefaultExperimentMinUnits     = 100
)

// ApplyDefaults fills an experiment's unset fields; the API calls it for an experiment it is given.
func (e *Experiment) ApplyDefaults() {
	if e.Traffic == 0 {
		e.Traffic = DefaultExperimentTraffic
	}
	if e.Unit == "" {
		e.Unit = UnitStickiness
	}
	if e.Alpha == 0 {
		e.Alpha = DefaultExperimentAlpha
	}
	if e.MinimumDetectableEffect == 0 {
		e.MinimumDetectableEffect = DefaultExperimentMDE
	}
	if e.Power == 0 {
		e.Power = DefaultExperimentPower
	}
	setInt(&e.PlannedUnits, DefaultExperimentPlannedUnits)
	setString(&e.Adjustment, DefaultExperimentAdjustment)
	setInt(&e.MinUnitsPerArm, DefaultExperimentMinUnits)
	for i := range e.Arms {
		if e.Arms[i].Weight == 0 {
			e.Arms[i].Weight = 1
		}
	}
	for i := range e.Metrics {
		m := &e.Metrics[i]
		if p := m.Prometheus; p != nil {
			setString(&p.Label, DefaultArmLabel)
			setDur(&p.Timeout, DefaultProviderTimeout)
		}
		if m.Kind == "" && m.Builtin == "" && m.Prometheus == nil {
			m.Kind = KindProportion
			if m.Value != "" {
				m.Kind = KindMean
			}
		}
		if m.Goal == "" {
			m.Goal = GoalIncrease
			switch m.Builtin {
			case BuiltinErrorRate, BuiltinLatency, BuiltinTTFT, BuiltinCostPerRequest:
				m.Goal = GoalDecrease
			}
		}
	}
}

// ExperimentBuiltins are the builtin metrics an experiment may name: errorRate, latency, ttft and
// costPerRequest are computed per unit from the gateway's records; feedback is judged as a guardrail
// only.
var ExperimentBuiltins = []Builtin{BuiltinErrorRate, BuiltinLatency, BuiltinTTFT, BuiltinCostPerRequest, BuiltinFeedback}

const experimentBuiltinNames = "errorRate, latency, ttft, costPerRequest or feedback"

var experimentName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func (v *validator) experiments(es []Experiment, services []Service) {
	svc := map[string]*Service{}
	for i := range services {
		svc[services[i].Name] = &services[i]
	}
	seen := map[string]int{}
	for i := range es {
		p := fmt.Sprintf("experiments[%d]", i)
		e := &es[i]
		if !experimentName.MatchString(e.Name) {
			v.addf(p+".name", "%q is not a name such as checkout-button: lower-case letters, digits and -, at most 63", e.Name)
		} else if j, dup := seen[e.Name]; dup {
			v.addf(p+".name", "%q is already the name of experiments[%d]; names must be unique", e.Name, j)
		} else {
			seen[e.Name] = i
		}
		v.experimentTarget(p, e, svc)
		if !(e.Traffic > 0 && e.Traffic <= 100) {
			v.addf(p+".traffic", "%v is not in (0, 100]: the percentage of units in the experiment", e.Traffic)
		}
		if e.Unit != UnitStickiness {
			v.addf(p+".unit", "%q: only %q is supported", e.Unit, UnitStickiness)
		}
		if !(e.Alpha > 0 && e.Alpha < 0.5) {
			v.addf(p+".alpha", "%v is not in (0, 0.5): 0.05 is usual", e.Alpha)
		}
		if !(e.MinimumDetectableEffect > 0 && e.MinimumDetectableEffect < 10) {
			v.addf(p+".minimumDetectableEffect", "%v is not a relative effect above 0 (0.02 for 2%%)", e.MinimumDetectableEffect)
		}
		if !(e.Power > 0 && e.Power < 1) {
			v.addf(p+".power", "%v is not in (0, 1): 0.8 is usual", e.Power)
		}
		if e.PlannedUnits < 2 {
			v.addf(p+".plannedUnits", "%d: must be at least 2 (the units you expect in all arms)", e.PlannedUnits)
		}
		if e.MinUnitsPerArm < 2 {
			v.addf(p+".minUnitsPerArm", "%d: must be at least 2 (100, the default, is safe)", e.MinUnitsPerArm)
		}
		if e.Adjustment != "holm" && e.Adjustment != "bh" {
			v.addf(p+".adjustment", "%q: use holm (family-wise error) or bh (false discovery rate)", e.Adjustment)
		}
		v.experimentMetrics(p, e.Metrics)
	}
}

func (v *validator) experimentTarget(p string, e *Experiment, svc map[string]*Service) {
	switch {
	case e.Service != "" && e.Flag != "":
		v.addf(p, "sets both service and flag; an experiment's arms are versions of a service or variants of a flag")
	case e.Service == "" && e.Flag == "":
		v.addf(p, "needs service (arms are versions) or flag (arms are variants)")
	}
	var versions map[string]bool
	if s, ok := svc[e.Service]; e.Service != "" {
		if !ok {
			v.addf(p+".service", "%q is not a service of this file", e.Service)
		} else {
			versions = map[string]bool{}
			for _, ver := range s.Versions {
				versions[ver.Name] = true
			}
		}
	}
	if len(e.Arms) < 2 {
		v.addf(p+".arms", "has %d arms: an experiment needs control and at least one more", len(e.Arms))
	}
	names := map[string]bool{}
	for j, a := range e.Arms {
		ap := fmt.Sprintf("%s.arms[%d]", p, j)
		if a.Name == "" {
			v.addf(ap+".name", "is required: control, green, ...")
		} else if names[a.Name] {
			v.addf(ap+".name", "%q is used twice; arm names must be unique", a.Name)
		}
		names[a.Name] = true
		if !(a.Weight > 0) {
			v.addf(ap+".weight", "%v must be above 0", a.Weight)
		}
		switch {
		case e.Service != "" && a.Version == "":
			v.addf(ap+".version", "is required: the arms of a service experiment are its versions")
		case e.Service != "" && versions != nil && !versions[a.Version]:
			v.addf(ap+".version", "%q is not a version of service %q", a.Version, e.Service)
		case e.Flag != "" && a.Variant == "":
			v.addf(ap+".variant", "is required: the arms of a flag experiment are its variants")
		}
	}
}

func (v *validator) experimentMetrics(p string, ms []ExperimentMetric) {
	if len(ms) == 0 {
		v.addf(p+".metrics", "is empty: name at least one metric, e.g. {name: conversion, event: purchase}")
	}
	primary := false
	names := map[string]bool{}
	for j, m := range ms {
		mp := fmt.Sprintf("%s.metrics[%d]", p, j)
		if m.Name == "" || names[m.Name] {
			v.addf(mp+".name", "%q: each metric needs a unique name", m.Name)
		}
		names[m.Name] = true
		sources := 0
		for _, set := range []bool{m.Event != "", m.Builtin != "", m.Prometheus != nil} {
			if set {
				sources++
			}
		}
		switch {
		case sources > 1:
			v.addf(mp, "sets more than one of event, builtin and prometheus; keep one")
		case sources == 0:
			v.addf(mp, "needs event (from POST /api/v1/track), builtin (%s) or prometheus (a counter per arm)", experimentBuiltinNames)
		case m.Builtin != "" && !slices.Contains(ExperimentBuiltins, m.Builtin):
			v.addf(mp+".builtin", "%q: use one of %s", m.Builtin, experimentBuiltinNames)
		}
		if m.Event != "" && m.Kind != KindProportion && m.Kind != KindMean {
			v.addf(mp+".kind", "%q: use proportion (did the unit send the event) or mean (with value)", m.Kind)
		}
		if m.Kind == KindMean && m.Value == "" {
			v.addf(mp+".value", "is required for kind mean: the event's field to average, e.g. amount")
		}
		if m.Goal != GoalIncrease && m.Goal != GoalDecrease {
			v.addf(mp+".goal", "%q: use increase or decrease", m.Goal)
		}
		if p := m.Prometheus; p != nil {
			if u, err := url.Parse(p.Address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				v.addf(mp+".prometheus.address", "%q: want an http:// or https:// URL such as http://127.0.0.1:9090", p.Address)
			}
			if strings.TrimSpace(p.Query) == "" {
				v.addf(mp+".prometheus.query", "is required: one sample per arm, e.g. sum by (arm) (increase(purchases_total[{{since}}]))")
			}
			if p.Timeout.Duration <= 0 {
				v.addf(mp+".prometheus.timeout", "%s: must be above 0", p.Timeout.Duration)
			}
		}
		if m.Builtin == BuiltinLatency && !(m.Quantile > 0 && m.Quantile < 1) {
			v.addf(mp+".quantile", "%v: a latency metric needs a quantile in (0, 1), e.g. 0.95", m.Quantile)
		}
		primary = primary || !m.Guardrail
	}
	if len(ms) > 0 && !primary {
		v.addf(p+".metrics", "are all guardrails: add the metric the experiment is meant to move")
	}
}

// GuardrailTemplatePrefix begins the name of an experiment's guardrail template; a user's
// template name cannot contain ":", so the two never meet.
const GuardrailTemplatePrefix = "experiment:"

// GuardrailTemplate is the analysis template that judges the experiment's guardrails on the
// gateway's own measures, each arm against control, with the canary judge: every guardrail
// metric with a builtin, critical (it stops an arm the moment the evidence allows), at the
// experiment's alpha. ok is false when the experiment has no such guardrail.
func (e Experiment) GuardrailTemplate() (t AnalysisTemplate, ok bool) {
	t = AnalysisTemplate{Name: GuardrailTemplatePrefix + e.Name, Alpha: e.Alpha}
	for _, m := range e.Metrics {
		if m.Guardrail && m.Builtin != "" {
			t.Metrics = append(t.Metrics, AnalysisMetric{Name: m.Name, Builtin: m.Builtin, Quantile: m.Quantile, Critical: true})
		}
	}
	if len(t.Metrics) == 0 {
		return t, false
	}
	t.applyDefaults()
	return t, true
}

// GuardrailTemplates are the guardrail templates of experiments.
func GuardrailTemplates(es []Experiment) []AnalysisTemplate {
	var out []AnalysisTemplate
	for _, e := range es {
		if t, ok := e.GuardrailTemplate(); ok {
			out = append(out, t)
		}
	}
	return out
}
