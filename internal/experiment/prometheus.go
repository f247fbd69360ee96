package experiment

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"aviary.dev/aviary/internal/analysis/provider"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/experiment/stats"
	"aviary.dev/aviary/internal/store"
)

// ArmCounter reads a metric's count per arm (a Source that has it can compute prometheus
// metrics): the values by arm name, as of now, since the experiment started at since.
type ArmCounter interface {
	ArmCounts(e config.Experiment, m config.ExperimentMetric, since, now time.Time) (map[string]float64, error)
}

// promSource is the store with the arms' counters read from Prometheus.
type promSource struct {
	Source
	o provider.Options
}

func (p promSource) ArmCounts(e config.Experiment, m config.ExperimentMetric, since, now time.Time) (map[string]float64, error) {
	pm := m.Prometheus
	window := max(now.Sub(since).Round(time.Second), time.Second)
	query := strings.NewReplacer("{{experiment}}", e.Name, "{{since}}", strconv.FormatInt(int64(window/time.Second), 10)+"s").Replace(pm.Query)
	return provider.PrometheusByLabel(context.Background(), p.o, pm.Address, query, pm.Label, now, pm.Timeout.Duration)
}

// countMetric compares the arms on a count per arm read by src, over each arm's units.
func countMetric(e config.Experiment, spec config.ExperimentMetric, st store.ExperimentState, units []float64, src Source, now time.Time, o stats.Options) (stats.MetricResult, error) {
	ac, ok := src.(ArmCounter)
	if !ok {
		return stats.MetricResult{}, fmt.Errorf("this server reads no Prometheus")
	}
	counts, err := ac.ArmCounts(e, spec, st.Started, endOf(st, now))
	if err != nil {
		return stats.MetricResult{}, err
	}
	ms := make([]stats.Moments, len(e.Arms))
	var missing []string
	for i, a := range e.Arms {
		c, ok := counts[a.Name]
		if !ok {
			missing = append(missing, a.Name)
		}
		ms[i] = stats.CountMoments(units[i], c)
	}
	if len(missing) > 0 {
		return stats.MetricResult{}, fmt.Errorf("the query has no sample with %s=%s; every arm needs one (a counter that is still 0 counts: initialise it per arm)",
			spec.Prometheus.Label, strings.Join(missing, ", "))
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
