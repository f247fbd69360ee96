package quality

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Results, the values of the result label.
const (
	resultOK      = "ok"      // the evaluator answered scores and labels
	resultFailed  = "failed"  // transport error, timeout, non-2xx answer, or an answer that is not {scores, labels}
	resultSkipped = "skipped" // chosen for evaluation, but maxInFlight was reached or Close had begun
	resultJoined  = "joined"  // feedback credited to the version that served its request
	resultUnknown = "unknown" // feedback for an id not served, forgotten, or past the window
	resultInvalid = "invalid" // feedback with neither score nor label, or one that cannot be kept
)

// metrics are the package's Prometheus metrics. Their label values are bounded: services and
// versions come from the config, score names and labels are capped per version (see totals.go),
// and feedback that joins nothing is counted with empty service and version.
type metrics struct {
	evaluations    *prometheus.CounterVec // service, version, role, result
	evalScore      *prometheus.SummaryVec // service, version, role, name
	evalLabels     *prometheus.CounterVec // service, version, role, label
	feedback       *prometheus.CounterVec // service, version, result
	feedbackScore  *prometheus.SummaryVec // service, version
	feedbackLabels *prometheus.CounterVec // service, version, label
}

func newMetrics(r prometheus.Registerer) *metrics {
	sv := []string{"service", "version"}
	svr := []string{"service", "version", "role"}
	return &metrics{
		evaluations: register(r, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aviary_evaluations_total",
			Help: "Exchanges chosen for evaluation, by result: ok, failed (transport, timeout, non-2xx, bad answer) or skipped (evaluator's maxInFlight reached, or shutting down)."},
			append(svr, "result"))),
		// A summary without quantiles is exactly the _sum and _count pair: the mean score over
		// any range is rate(_sum) / rate(_count), and it costs two series per score name.
		evalScore: register(r, prometheus.NewSummaryVec(prometheus.SummaryOpts{Name: "aviary_evaluation_score",
			Help: "Scores the evaluator gave, by score name (the gen_ai.evaluation.result score)."},
			append(svr, "name"))),
		evalLabels: register(r, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aviary_evaluation_labels_total",
			Help: "Evaluations that carried each label; \"(other)\" counts labels beyond the first 32 of a version."},
			append(svr, "label"))),
		feedback: register(r, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aviary_feedback_total",
			Help: "Feedback received, by result: joined to the version that served it, unknown (id not served, forgotten or past the window; service and version empty) or invalid."},
			append(sv, "result"))),
		feedbackScore: register(r, prometheus.NewSummaryVec(prometheus.SummaryOpts{Name: "aviary_feedback_score",
			Help: "Scores given as feedback, joined to the version that served the request."}, sv)),
		feedbackLabels: register(r, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aviary_feedback_labels_total",
			Help: "Feedback that carried each label; \"(other)\" counts labels beyond the first 32 of a version."},
			append(sv, "label"))),
	}
}

// register registers c, or returns the collector of the same kind registered already (after a
// reload, or a second Quality on one registry).
func register[C prometheus.Collector](r prometheus.Registerer, c C) C {
	if r == nil {
		return c
	}
	if err := r.Register(c); err != nil {
		if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("register quality metrics: %v", err))
	}
	return c
}

func role(mirror bool) string {
	if mirror {
		return "mirror"
	}
	return "primary"
}
