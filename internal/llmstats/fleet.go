package llmstats

import (
	"aviary.dev/aviary/internal/metrics"
)

// Fleets: a controller that judges a fleet of gateway replicas (internal/fleet) adds the
// difference of each replica's Totals since its previous answer into its own registry with Add.

// Sub returns t − prev, and false when a count of t is below prev's: the series began again (its
// process restarted) and t is not a continuation of prev.
func (t Totals) Sub(prev Totals) (Totals, bool) {
	ok := true
	i := func(a, b int64) int64 {
		if a < b {
			ok = false
			return 0
		}
		return a - b
	}
	f := func(a, b float64) float64 { return max(a-b, 0) }
	d := Totals{
		Requests: i(t.Requests, prev.Requests), StreamErrors: i(t.StreamErrors, prev.StreamErrors),
		ClientAborts: i(t.ClientAborts, prev.ClientAborts), UsageN: i(t.UsageN, prev.UsageN),
		OutputSum: f(t.OutputSum, prev.OutputSum), OutputSumSq: f(t.OutputSumSq, prev.OutputSumSq),
		InputTokens: i(t.InputTokens, prev.InputTokens), OutputTokens: i(t.OutputTokens, prev.OutputTokens),
		CachedTokens: i(t.CachedTokens, prev.CachedTokens), ReasoningTokens: i(t.ReasoningTokens, prev.ReasoningTokens),
		CostN: i(t.CostN, prev.CostN), CostSum: f(t.CostSum, prev.CostSum), CostSumSq: f(t.CostSumSq, prev.CostSumSq),
	}
	var ok2 bool
	d.TTFT, ok2 = subHist(t.TTFT, prev.TTFT)
	ok = ok && ok2
	d.Gaps, ok2 = subHist(t.Gaps, prev.Gaps)
	ok = ok && ok2
	d.TimePerOutputToken, ok2 = subHist(t.TimePerOutputToken, prev.TimePerOutputToken)
	return d, ok && ok2
}

func subHist(a, b *metrics.Histogram) (*metrics.Histogram, bool) {
	var ca, cb [metrics.NumBuckets]uint64
	if a != nil {
		a.Load(&ca)
	}
	if b != nil {
		b.Load(&cb)
	}
	ok := true
	for i := range ca {
		if ca[i] < cb[i] {
			ok = false
			ca[i] = 0
			continue
		}
		ca[i] -= cb[i]
	}
	h := new(metrics.Histogram)
	h.AddCounts(&ca)
	return h, ok
}

// Add adds d, the difference of a replica's totals, to a series. It feeds the judge's totals
// only: the Prometheus metrics of the registry are the replicas' own to export.
func (r *Registry) Add(service, version string, mirror bool, d Totals) {
	if d.Requests == 0 { // an exchange's histograms are recorded with its count
		return
	}
	s := r.get(key{service, version, mirror})
	s.ttft.Merge(d.TTFT)
	s.gaps.Merge(d.Gaps)
	s.tpot.Merge(d.TimePerOutputToken)
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &s.t
	t.Requests += d.Requests
	t.StreamErrors += d.StreamErrors
	t.ClientAborts += d.ClientAborts
	t.UsageN += d.UsageN
	t.OutputSum += d.OutputSum
	t.OutputSumSq += d.OutputSumSq
	t.InputTokens += d.InputTokens
	t.OutputTokens += d.OutputTokens
	t.CachedTokens += d.CachedTokens
	t.ReasoningTokens += d.ReasoningTokens
	t.CostN += d.CostN
	t.CostSum += d.CostSum
	t.CostSumSq += d.CostSumSq
}

// Each calls fn with the totals of every series, in no particular order.
func (r *Registry) Each(fn func(service, version string, mirror bool, t Totals)) {
	r.mu.RLock()
	keys := make([]key, 0, len(r.series))
	for k := range r.series {
		keys = append(keys, k)
	}
	r.mu.RUnlock()
	for _, k := range keys {
		fn(k.service, k.version, k.mirror, r.Totals(k.service, k.version, k.mirror))
	}
}
