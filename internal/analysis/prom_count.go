package analysis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"aviary.dev/aviary/internal/analysis/provider"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/rollout"
)

// promCount is the sequential count test (as builtin errorRate) on counters read from Prometheus:
// requests and errors, asked for the canary and the stable at every look. What each counter grew
// by since the last look is that look's observation, so traffic drift cancels as it does for the
// gateway's own counts. This is what Kubernetes mode judges with, having no gateway of its own.
//
// Prometheus samples counters at its scrape interval; a look between two scrapes sees no growth
// and adds nothing, and the two versions' pods may be scraped a moment apart: a small skew that
// the margin absorbs.
//
// Like a builtin's, the test is one per rollout: its runs share it (the counters' growth since
// the last look, whichever run made it, is what a look adds), and it is kept across restarts of
// the process with the rollout's other tests (persist.go). The counters read at the last look are
// not kept: after a restart the first look reads them afresh, and what grew while no process
// looked is left out — dropped looks that depend on when the process stopped, not on what they
// held, which keeps the test valid (see package judge, "One e-process per rollout").
type promCount struct {
	*sequential
	p provider.Provider
	// Guarded by sequential.mu:
	last   map[string]counts // by version: the counters at the last good look
	lastAt time.Time         // when they were read
	err    string            // the last query's failure, shown until a look succeeds
}

// rolloutPromCount is the Prometheus count test of the rollout r belongs to: around the shared
// sequential test of rolloutSequential (so it is shared and kept as a builtin's is), the reader of
// the counters, made once per test. Called with a.mu held.
func (a *Analyzer) rolloutPromCount(r rollout.Run, template string, m config.AnalysisMetric, alpha float64) (*promCount, error) {
	q := a.rolloutSequential(r, template, m, alpha)
	_, key := evidenceKey(r, template, m)
	if pc, ok := a.proms[key]; ok && pc.sequential == q {
		return pc, nil
	}
	p, err := provider.New("prometheus", a.o.Providers)
	if err != nil {
		return nil, err
	}
	pc := &promCount{sequential: q, p: p}
	a.proms[key] = pc
	return pc, nil
}

func (q *promCount) ready() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.last != nil
}

// look reads both versions' counters; a look that fails for either adds nothing, and the next
// good one counts the growth since the last good one. The queries run without the test's lock
// (they may take a while); a look whose reading is older than one another run has counted since
// adds nothing, so no growth is counted twice.
func (q *promCount) look(r *runner, now time.Time) {
	cur := map[string]counts{}
	var failed error
	for _, v := range []string{r.run.Canary, r.run.Stable} {
		var c counts
		var err error
		if c.requests, err = q.counter(r, v, q.metric.Prometheus.Requests, now); err == nil {
			c.events, err = q.counter(r, v, q.metric.Prometheus.Errors, now)
		}
		if err != nil {
			failed = err
			break
		}
		cur[v] = c
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.start.IsZero() {
		q.start = r.run.StartedAt
	}
	if failed != nil {
		q.err = failed.Error()
		return
	}
	q.err = ""
	if q.last != nil && !now.After(q.lastAt) {
		return // another run has read the counters since
	}
	if q.last != nil {
		cn, ce, okC := grew(q.last[r.run.Canary], cur[r.run.Canary])
		bn, be, okB := grew(q.last[r.run.Stable], cur[r.run.Stable])
		if okC && okB { // a counter that went down was reset (a pod restarted): skip that look
			q.test.Observe(r.batch(now), int64(cn), int64(ce), int64(bn), int64(be))
		}
	}
	q.last, q.lastAt = cur, now
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
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.err != "":
		res.Text = fmt.Sprintf("%s: prometheus: %s (retrying every look)", q.metric.Name, q.err)
	case q.last == nil:
		res.Text = q.metric.Name + ": waiting for the first reading of both versions' counters"
	}
	return res
}
