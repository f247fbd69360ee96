package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Prometheus exposition. The metric names and labels are a contract with
// users' dashboards and alerts. Values are read from the series' cumulative
// atomics at scrape time, so recording never calls the client library.

var (
	seriesLabels = []string{"service", "version", "role"}

	descRequests = prometheus.NewDesc("aviary_requests_total",
		"Requests proxied, by exact HTTP status sent to the client (0: none sent).",
		append(seriesLabels[:3:3], "code"), nil)
	descErrors = prometheus.NewDesc("aviary_request_errors_total",
		"Failed requests by kind: 5xx (upstream answered 5xx), connect, timeout, gateway (the gateway failed it).",
		append(seriesLabels[:3:3], "kind"), nil)
	descDuration = prometheus.NewDesc("aviary_request_duration_seconds",
		"Time from request arrival to the end of the response body.",
		seriesLabels, nil)
	descBytesIn = prometheus.NewDesc("aviary_request_bytes_total",
		"Request body bytes read from clients.",
		seriesLabels, nil)
	descBytesOut = prometheus.NewDesc("aviary_response_bytes_total",
		"Response body bytes written to clients.",
		seriesLabels, nil)
	descInFlight = prometheus.NewDesc("aviary_requests_in_flight",
		"Requests begun and not yet ended.",
		seriesLabels, nil)
)

// Describe implements prometheus.Collector.
func (r *Registry) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descErrors, descDuration, descBytesIn, descBytesOut, descInFlight} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Status codes never seen by a series
// are left out; error kinds are always exported, zero included, so that rates
// of errors exist as soon as a series does.
func (r *Registry) Collect(ch chan<- prometheus.Metric) {
	var c cumulative
	for _, s := range r.all() {
		c = cumulative{}
		s.cumulative(&c)
		collectSeries(ch, s, &c)
	}
}

func collectSeries(ch chan<- prometheus.Metric, s *Series, c *cumulative) {
	lv := []string{s.service, s.version, s.role.String()}
	with := func(v string) []string { return append(lv[:3:3], v) }

	for code, n := range c.codes {
		if n != 0 {
			ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(n), with(strconv.Itoa(code))...)
		}
	}
	for kind, n := range c.kinds {
		ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(n), with(kindNames[kind])...)
	}

	buckets := make(map[float64]uint64, len(promBounds))
	var cum uint64
	for i, b := range promBounds {
		cum += c.durBuckets[i]
		buckets[b.Seconds()] = cum
	}
	ch <- prometheus.MustNewConstHistogram(descDuration, c.durCount, c.durSumSeconds, buckets, lv...)

	ch <- prometheus.MustNewConstMetric(descBytesIn, prometheus.CounterValue, float64(c.bytesIn), lv...)
	ch <- prometheus.MustNewConstMetric(descBytesOut, prometheus.CounterValue, float64(c.bytesOut), lv...)
	ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(c.inFlight), lv...)
}
