package analysis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"aviary.dev/aviary/internal/analysis/provider"
	"aviary.dev/aviary/internal/config"
)

// promCount is the sequential count test (as builtin errorRate) on counters read from Prometheus:
// requests and errors, asked for the canary and the stable at every look. What each counter grew
// by since the last look is that look's observation, so traffic drift cancels as it does for the
// gateway's own counts. This is what Kubernetes mode judges with, having no gateway of its own.
//
// Prometheus samples counters at its scrape interval; a look between two scrapes sees no growth
// and adds nothing, and the two versions' pods may be scraped a moment apart: a small skew that
// the margin absorbs.
type promCount struct {
	*sequential
	p    provider.Provider
	last map[string]counts // by version: the counters at the last good look
	err  string            // the last query's failure, shown until a look succeeds
}

func newPromCount(template string, m config.AnalysisMetric, alpha float64, limit int, o provider.Options) (*promCount, error) {
	p, err := provider.New("prometheus", o)
	if err != nil {
		return nil, err
	}
	return &promCount{sequential: newSequential(template, m, alpha, limit), p: p}, nil
}

func (q *promCount) ready() bool { return q.last != nil }

// look reads both versions' counters; a look that fails for either adds nothing, and the next
// good one counts the growth since the last good one.
func (q *promCount) look(r *runner, now time.Time) {
	cur := map[string]counts{}
	for _, v := range []string{r.run.Canary, r.run.Stable} {
		var c counts
		var err error
		if c.requests, err = q.counter(r, v, q.metric.Prometheus.Requests, now); err == nil {
			c.events, err = q.counter(r, v, q.metric.Prometheus.Errors, now)
		}
		if err != nil {
			q.err = err.Error()
			return
		}
		cur[v] = c
	}
	q.err = ""
	if q.last != nil {
		cn, ce, okC := grew(q.last[r.run.Canary], cur[r.run.Canary])
		bn, be, okB := grew(q.last[r.run.Stable], cur[r.run.Stable])
		if okC && okB { // a counter that went down was reset (a pod restarted): skip that look
			q.test.Observe(r.batch(now), int64(cn), int64(ce), int64(bn), int64(be))
		}
	}
	q.last = cur
}

func grew(before, now counts) (n, e uint64, ok bool) {
	if now.requests < before.requests || now.events < before.events {
		return 0, 0, false
	}
	return now.requests - before.requests, now.events - before.events, true
}

// counter asks one counter of one version. No series yet (a version that has served nothing) is 0.
func (q *promCount) counter(r *runner, version, query string, now time.Time) (uint64, error) {
	m := q.metric
	pm := *m.Prometheus
	pm.Query, pm.Requests, pm.Errors = query, "", ""
	m.Prometheus = &pm
	ctx, cancel := context.WithTimeout(context.Background(), pm.Timeout.Duration)
	defer cancel()
	res, err := q.p.Measure(ctx, provider.Query{Service: r.run.Service, Stable: r.run.Stable, Canary: r.run.Canary,
		Version: version, Metric: m, Now: now})
	if errors.Is(err, provider.ErrNoData) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	x, ok := res.Value.(float64)
	if !ok || x < 0 || math.IsNaN(x) {
		return 0, fmt.Errorf("%s for %s: want one non-negative number (a counter summed with sum()), got %v", query, version, res.Value)
	}
	return uint64(math.Round(x)), nil
}

func (q *promCount) result(r *runner, minimumMet bool, now time.Time) MetricResult {
	res := q.sequential.result(r, minimumMet, now)
	switch {
	case q.err != "":
		res.Text = fmt.Sprintf("%s: prometheus: %s (retrying every look)", q.metric.Name, q.err)
	case q.last == nil:
		res.Text = q.metric.Name + ": waiting for the first reading of both versions' counters"
	}
	return res
}
