package ofrep

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"aviary.dev/aviary/internal/flags"
)

// endpoint names an OFREP endpoint in metrics: a bounded label.
type endpoint string

const (
	endpointFlag          endpoint = "flag"
	endpointBulk          endpoint = "bulk"
	endpointConfiguration endpoint = "configuration"
	endpointChanges       endpoint = "changes"
	endpointTrack         endpoint = "track"
	endpointOther         endpoint = "other"
)

// otherFlag is the flag label of a key the set in force does not have: clients choose keys, and
// each unknown one must not become a series of its own.
const otherFlag = "other"

// Metrics counts OFREP requests and evaluations. Every label is bounded: the flag label holds only
// keys of the set in force (others are "other"), reasons and error codes are the evaluator's, and
// endpoints and status codes are this package's. A nil *Metrics counts nothing.
type Metrics struct {
	requests    *prometheus.CounterVec
	evaluations *prometheus.CounterVec
	errors      *prometheus.CounterVec
}

// NewMetrics makes the counters and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aviary_ofrep_requests_total",
			Help: "OFREP requests, by endpoint (flag, bulk, configuration, changes, track, other) and status code."}, []string{"endpoint", "code"}),
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aviary_flag_evaluations_total",
			Help: "Flag evaluations served over OFREP, by flag (other for keys not in the set) and reason."}, []string{"flag", "reason"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aviary_flag_evaluation_errors_total",
			Help: "Flag evaluations that ended in an error, by flag (other for keys not in the set) and error code."}, []string{"flag", "code"}),
	}
	reg.MustRegister(m.requests, m.evaluations, m.errors)
	return m
}

func (m *Metrics) request(ep endpoint, code int) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(string(ep), strconv.Itoa(code)).Inc()
}

func (m *Metrics) evaluated(set *flags.Set, res flags.Result) {
	if m == nil {
		return
	}
	flag := res.Key
	if _, ok := set.Flag(flag); !ok {
		flag = otherFlag
	}
	m.evaluations.WithLabelValues(flag, string(res.Reason)).Inc()
	if res.ErrorCode != "" {
		m.errors.WithLabelValues(flag, string(res.ErrorCode)).Inc()
	}
}
