package replica

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// sourceMetrics say whether a replica is in touch with the API server, and what it serves. Their
// labels are fixed values only.
type sourceMetrics struct {
	connected prometheus.Gauge
	lastSync  prometheus.Gauge
	served    *prometheus.GaugeVec
}

func newSourceMetrics(reg prometheus.Registerer) sourceMetrics {
	m := sourceMetrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "aviary_source_connected",
			Help: "1 while the replica's last contact with the Kubernetes API server succeeded, 0 while it is cut off (it serves its last snapshot)."}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{Name: "aviary_source_last_sync_timestamp_seconds",
			Help: "When the Kubernetes API server last answered the replica (Unix seconds); time() minus it is how stale the snapshot may be."}),
		served: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aviary_source_rollouts",
			Help: "Rollouts that name the replica's gateway: served as the cluster says them (state=current), as they last validated (state=last_good), or not at all (state=refused)."},
			[]string{"state"}),
	}
	if reg != nil {
		reg.MustRegister(m.connected, m.lastSync, m.served)
	}
	return m
}

func (m sourceMetrics) observe(connected bool, last time.Time) {
	v := 0.0
	if connected {
		v = 1
	}
	m.connected.Set(v)
	if !last.IsZero() {
		m.lastSync.Set(float64(last.UnixNano()) / 1e9)
	}
}

func (m sourceMetrics) rollouts(states []RolloutStatus) {
	n := map[string]int{"current": 0, "last_good": 0, "refused": 0}
	for _, st := range states {
		switch {
		case st.Error == "":
			n["current"]++
		case st.Served:
			n["last_good"]++
		default:
			n["refused"]++
		}
	}
	for k, v := range n {
		m.served.WithLabelValues(k).Set(float64(v))
	}
}
