package provider

import (
	"context"
	"errors"
	"fmt"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/metrics"
)

// builtin measures a version from the gateway's own windows, for a builtin metric used with a
// threshold condition: result is the error rate (0..1) or the latency quantile in seconds over the
// metric's interval. (Compared with the baseline, builtin metrics go to the sequential judge
// instead, in the analysis package.)
type builtin struct{ reg *metrics.Registry }

func init() {
	Register("builtin", func(o Options) Provider { return builtin{reg: o.Metrics} })
}

func (b builtin) Measure(_ context.Context, q Query) (Measurement, error) {
	if b.reg == nil {
		return Measurement{}, errors.New("builtin metrics are not available in this process")
	}
	m := q.Metric
	w := b.reg.Window(q.Service, q.Version, metrics.Primary, q.Now.Add(-m.Interval.Duration), q.Now)
	if w.Requests == 0 {
		return Measurement{}, fmt.Errorf("%s served no requests in the last %s: %w (never read as zero errors)", q.Version, m.Interval.Duration, ErrNoData)
	}
	switch m.Builtin {
	case config.BuiltinErrorRate:
		return Measurement{Value: w.ErrorRate(), At: q.Now}, nil
	case config.BuiltinLatency:
		return Measurement{Value: w.Latency.Quantile(m.Quantile).Seconds(), At: q.Now}, nil
	}
	return Measurement{}, fmt.Errorf("unknown builtin metric %q; use errorRate or latency", m.Builtin)
}
