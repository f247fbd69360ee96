package k8s

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/rollout"
)

// collector exposes every Rollout as the standalone aviary_rollout_* gauges, with its namespace,
// beside controller-runtime's own metrics on the controller's /metrics. controller-runtime's
// registry is one per process, so is the collector: it reads through the cache of the manager
// that started last.
type collector struct{ c atomic.Pointer[client.Reader] }

var (
	gauges         = &collector{}
	registerGauges sync.Once
)

// serveGauges makes c the reader of the process's rollout gauges, registering them once.
func serveGauges(c client.Reader) error {
	gauges.c.Store(&c)
	var err error
	registerGauges.Do(func() { err = crmetrics.Registry.Register(gauges) })
	return err
}

var (
	phaseDesc = prometheus.NewDesc("aviary_rollout_phase",
		"1 for the phase a Rollout is in (Healthy, Progressing, Paused, Degraded).", []string{"namespace", "service", "phase"}, nil)
	weightDesc = prometheus.NewDesc("aviary_rollout_canary_weight",
		"The canary's share of a Rollout's traffic, in percent.", []string{"namespace", "service", "stable", "canary"}, nil)
	stepDesc = prometheus.NewDesc("aviary_rollout_step",
		"The index of the current step of a Rollout.", []string{"namespace", "service"}, nil)
	fleetDesc = prometheus.NewDesc("aviary_rollout_fleet_replicas",
		"Gateway replicas of the fleet a Rollout is routed through, at the judge's last look: answered (their counts were summed) or missing (left out of the look).",
		[]string{"namespace", "service", "state"}, nil)
	lostDesc = prometheus.NewDesc("aviary_rollout_fleet_lost_requests",
		"Estimated requests that gateway replicas served after their last answer and before they restarted or went away: not measured by the judge.",
		[]string{"namespace", "service"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- phaseDesc
	ch <- weightDesc
	ch <- stepDesc
	ch <- fleetDesc
	ch <- lostDesc
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	r := c.c.Load()
	if r == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var list v1alpha1.RolloutList
	if err := (*r).List(ctx, &list); err != nil {
		return // the cache is not ready yet: no gauges rather than wrong ones
	}
	for _, ro := range list.Items {
		st := ro.Status
		if st.Phase == "" {
			continue
		}
		for _, p := range []rollout.Phase{rollout.Healthy, rollout.Progressing, rollout.Paused, rollout.Degraded} {
			v := 0.0
			if st.Phase == string(p) {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(phaseDesc, prometheus.GaugeValue, v, ro.Namespace, ro.Name, string(p))
		}
		ch <- prometheus.MustNewConstMetric(weightDesc, prometheus.GaugeValue, float64(st.CanaryWeight), ro.Namespace, ro.Name, st.StableVersion, st.CanaryVersion)
		ch <- prometheus.MustNewConstMetric(stepDesc, prometheus.GaugeValue, float64(st.CurrentStepIndex), ro.Namespace, ro.Name)
		if f := st.Fleet; f != nil {
			ch <- prometheus.MustNewConstMetric(fleetDesc, prometheus.GaugeValue, float64(f.Answered), ro.Namespace, ro.Name, "answered")
			ch <- prometheus.MustNewConstMetric(fleetDesc, prometheus.GaugeValue, float64(f.Replicas-f.Answered), ro.Namespace, ro.Name, "missing")
			ch <- prometheus.MustNewConstMetric(lostDesc, prometheus.GaugeValue, float64(f.Lost), ro.Namespace, ro.Name)
		}
	}
}
