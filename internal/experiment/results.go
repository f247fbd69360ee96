package experiment

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/experiment/stats"
	"aviary.dev/aviary/internal/store"
)

// srmConcentration is c of the sequential SRM test's Dirichlet(c·p₀) prior: tuned for shares off by
// about a point (c ≈ 1/δ²), which is where a lost-units bug starts to matter.
const srmConcentration = 10000

// ArmUnits is an arm's units against its configured share.
type ArmUnits struct {
	Name   string  `json:"name"`
	Units  int     `json:"units"`
	Weight float64 `json:"weight"`
	// Stopped says when and why the arm was stopped (a guardrail broke); nil while it runs.
	Stopped *store.StoppedArm `json:"stopped,omitempty"`
}

// Results are an experiment's results as of At.
type Results struct {
	Experiment string                `json:"experiment"`
	Phase      store.ExperimentPhase `json:"phase"`
	Started    time.Time             `json:"started"`
	At         time.Time             `json:"at"`
	Arms       []ArmUnits            `json:"arms"`
	// Crossovers are units exposed to more than one arm; each stays in its first.
	Crossovers int                  `json:"crossovers"`
	SRM        *stats.SRM           `json:"srm,omitempty"`
	Metrics    []stats.MetricResult `json:"metrics"`
	Decision   stats.Decision       `json:"decision"`
	Notes      []string             `json:"notes,omitempty"`
}

// Compute reads the units and events of experiment e in state st and computes its results at now.
func Compute(e config.Experiment, st store.ExperimentState, src Source, now time.Time) (Results, error) {
	r := Results{Experiment: e.Name, Phase: st.Phase, Started: st.Started, At: now}
	units, ok, pre, crossed, err := load(e, st, src)
	if err != nil {
		return r, err
	}
	r.Crossovers = crossed
	counts := make([]float64, len(e.Arms))
	srmCounts := make([]float64, len(e.Arms))
	weights := make([]float64, len(e.Arms))
	// Once an arm stops, its share of the new units goes to control: the split is tested on the
	// units that came while every arm ran.
	firstStop := time.Time{}
	for _, a := range st.StoppedArms {
		if firstStop.IsZero() || a.At.Before(firstStop) {
			firstStop = a.At
		}
	}
	for _, u := range units {
		counts[u.arm]++
		if firstStop.IsZero() || !u.exposed.After(firstStop) {
			srmCounts[u.arm]++
		}
	}
	in := stats.DecisionInput{Control: e.Arms[0].Name, Alpha: e.Alpha, MDE: e.MinimumDetectableEffect, Units: float64(len(units))}
	for i, a := range e.Arms {
		au := ArmUnits{Name: a.Name, Units: int(counts[i]), Weight: a.Weight}
		if s, ok := st.ArmStopped(a.Name); ok {
			au.Stopped = &s
			in.Stopped = append(in.Stopped, stats.StoppedArm{Arm: a.Name, Reason: s.Reason})
		}
		r.Arms = append(r.Arms, au)
		weights[i] = a.Weight
	}
	if !firstStop.IsZero() {
		r.Notes = append(r.Notes, fmt.Sprintf("sample ratio: tested on the %.0f units exposed before the first arm stopped (%s)",
			sum(srmCounts), firstStop.Format(time.RFC3339)))
	}
	if srm, err := stats.SampleRatio(srmCounts, weights, srmConcentration); err == nil {
		r.SRM = &srm
	}
	o := stats.Options{Alpha: e.Alpha, PlannedUnits: float64(e.PlannedUnits), Power: e.Power, MDE: e.MinimumDetectableEffect, MinUnits: e.MinUnitsPerArm}
	for m, spec := range e.Metrics {
		if spec.Prometheus != nil {
			mr, err := countMetric(e, spec, st, counts, src, now, o)
			switch {
			case errors.Is(err, stats.ErrTooFewUnits):
				r.Notes = append(r.Notes, fmt.Sprintf("metric %s: %v", spec.Name, err))
			case err != nil: // a failed query is no zero: the metric is left out, and the note says why
				r.Notes = append(r.Notes, fmt.Sprintf("metric %s: prometheus: %v", spec.Name, err))
			default:
				r.Metrics = append(r.Metrics, mr)
			}
			continue
		}
		if !ok[m] {
			r.Notes = append(r.Notes, fmt.Sprintf("metric %s: builtin %s is judged as a guardrail only; its per-unit values are not computed", spec.Name, spec.Builtin))
			continue
		}
		mr, err := metric(e, m, spec, units, pre[m], o)
		if errors.Is(err, stats.ErrTooFewUnits) {
			r.Notes = append(r.Notes, fmt.Sprintf("metric %s: %v", spec.Name, err))
			continue
		}
		if err != nil {
			return r, err
		}
		r.Metrics = append(r.Metrics, mr)
	}
	adj, _ := stats.ParseAdjustment(e.Adjustment)
	stats.AdjustAll(r.Metrics, adj)
	in.Metrics, in.Adjustment = r.Metrics, adj
	if r.SRM != nil {
		in.SRM = *r.SRM
	}
	if end := endOf(st, now); end.After(st.Started) {
		in.UnitsPerDay = float64(len(units)) / (end.Sub(st.Started).Hours() / 24)
	}
	r.Decision = stats.Decide(in)
	return r, nil
}

func sum(xs []float64) float64 {
	t := 0.0
	for _, x := range xs {
		t += x
	}
	return t
}

func endOf(st store.ExperimentState, now time.Time) time.Time {
	if !st.Stopped.IsZero() {
		return st.Stopped
	}
	return now
}

func load(e config.Experiment, st store.ExperimentState, src Source) (units []*unit, ok, pre []bool, crossed int, err error) {
	w := window{start: st.Started, end: st.Stopped}
	units, byKey, crossed, err := assign(e, st, w, src)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	sort.Slice(units, func(i, j int) bool { return units[i].key < units[j].key })
	ok, pre, err = measure(e, w, units, byKey, src)
	return units, ok, pre, crossed, err
}

func metric(e config.Experiment, m int, spec config.ExperimentMetric, units []*unit, pre bool, o stats.Options) (stats.MetricResult, error) {
	ms := make([]stats.Moments, len(e.Arms))
	for _, u := range units {
		if spec.Builtin != "" && u.d[m] == 0 {
			continue // no request of the unit was recorded after its exposure
		}
		if pre {
			ms[u.arm].AddWithPre(u.y[m], u.x[m])
		} else {
			ms[u.arm].Add(u.y[m])
		}
	}
	cs, err := stats.CompareAll(ms[0], ms[1:], o)
	if err != nil {
		return stats.MetricResult{}, err
	}
	mr := stats.MetricResult{Metric: spec.Name, Goal: stats.Goal(spec.Goal), Guardrail: spec.Guardrail}
	for i, c := range cs {
		mr.Arms = append(mr.Arms, stats.ArmResult{Arm: e.Arms[i+1].Name, Comparison: c})
	}
	return mr, nil
}

// WriteUnits writes one CSV row per unit: its key, arm, exposure time, and for every event metric
// its value and pre-experiment value, so that an analyst can check every figure.
func WriteUnits(w io.Writer, e config.Experiment, st store.ExperimentState, src Source) error {
	units, ok, _, _, err := load(e, st, src)
	if err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	head := []string{"unit", "arm", "exposed"}
	for m, spec := range e.Metrics {
		if ok[m] {
			head = append(head, spec.Name, spec.Name+"_pre")
		}
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	for _, u := range units {
		row := []string{u.key, e.Arms[u.arm].Name, u.exposed.UTC().Format(time.RFC3339Nano)}
		for m := range e.Metrics {
			if ok[m] {
				row = append(row, num(u.y[m]), num(u.x[m]))
			}
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func num(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
