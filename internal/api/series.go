package api

import (
	"net/http"
	"strconv"
	"time"

	"aviary.dev/aviary/internal/metrics"
)

// Windows reads the gateway's in-process measurements: *metrics.Registry.
type Windows interface {
	Window(service, version string, role metrics.Role, since, until time.Time) metrics.Summary
	Slot() time.Duration
}

// SeriesView is the answer to GET /api/v1/services/{name}/series: each version's traffic, errors
// and latency quantiles per window slot, oldest first, for the dashboard's canary-versus-baseline
// charts. Only requests a version answered (placed by weight, sticky key or route) count; mirrored
// copies do not. A slot with no requests has null rates and quantiles: missing data is not zero.
type SeriesView struct {
	Service     string          `json:"service"`
	SlotSeconds float64         `json:"slotSeconds"`
	Times       []int64         `json:"times"` // each slot's start, Unix seconds
	Versions    []VersionSeries `json:"versions"`
}

// VersionSeries is one version's slots.
type VersionSeries struct {
	Version   string     `json:"version"`
	Requests  []uint64   `json:"requests"`
	Errors    []uint64   `json:"errors"`
	ErrorRate []*float64 `json:"errorRate"`
	P50Ms     []*float64 `json:"p50Ms"`
	P90Ms     []*float64 `json:"p90Ms"`
	P95Ms     []*float64 `json:"p95Ms"`
	P99Ms     []*float64 `json:"p99Ms"`
}

// maxSeriesMinutes is how far back the in-process windows reach (metrics.DefaultRetention).
const maxSeriesMinutes = 15

func (s *Server) series(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	minutes := maxSeriesMinutes
	if v := r.URL.Query().Get("minutes"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxSeriesMinutes {
			writeError(w, http.StatusBadRequest, "minutes must be an integer in 1..15 (the in-process windows keep 15 minutes)")
			return
		}
		minutes = n
	}
	for _, svc := range s.Services.Services() {
		if svc.Name != name {
			continue
		}
		versions := make([]string, len(svc.Versions))
		for i, v := range svc.Versions {
			versions[i] = v.Name
		}
		writeJSON(w, http.StatusOK, seriesOf(s.Windows, name, versions, time.Duration(minutes)*time.Minute, time.Now()))
		return
	}
	writeError(w, http.StatusNotFound, "no service named "+name+"; GET /api/v1/services lists them")
}

// seriesOf reads span's slots up to now (the last one still filling) of each version.
func seriesOf(m Windows, service string, versions []string, span time.Duration, now time.Time) SeriesView {
	slot := m.Slot()
	end := now.Truncate(slot).Add(slot)
	n := int(span / slot)
	view := SeriesView{Service: service, SlotSeconds: slot.Seconds(), Times: make([]int64, n), Versions: []VersionSeries{}}
	for i := range n {
		view.Times[i] = end.Add(-time.Duration(n-i) * slot).Unix()
	}
	for _, v := range versions {
		vs := VersionSeries{Version: v, Requests: make([]uint64, n), Errors: make([]uint64, n),
			ErrorRate: make([]*float64, n), P50Ms: make([]*float64, n), P90Ms: make([]*float64, n), P95Ms: make([]*float64, n), P99Ms: make([]*float64, n)}
		for i := range n {
			since := time.Unix(view.Times[i], 0)
			sum := m.Window(service, v, metrics.Primary, since, since.Add(slot))
			routed := m.Window(service, v, metrics.Routed, since, since.Add(slot))
			sum.Latency.Merge(routed.Latency)
			vs.Requests[i], vs.Errors[i] = sum.Requests+routed.Requests, sum.Errors+routed.Errors
			if vs.Requests[i] == 0 {
				continue
			}
			vs.ErrorRate[i] = ptr(float64(vs.Errors[i]) / float64(vs.Requests[i]))
			vs.P50Ms[i] = ptr(ms(sum.Latency.Quantile(0.5)))
			vs.P90Ms[i] = ptr(ms(sum.Latency.Quantile(0.9)))
			vs.P95Ms[i] = ptr(ms(sum.Latency.Quantile(0.95)))
			vs.P99Ms[i] = ptr(ms(sum.Latency.Quantile(0.99)))
		}
		view.Versions = append(view.Versions, vs)
	}
	return view
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func ptr(v float64) *float64 { return &v }
