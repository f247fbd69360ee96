package fleet

import (
	"fmt"
	"math"
	"time"

	"aviary.dev/aviary/internal/llmstats"
	"aviary.dev/aviary/internal/metrics"
)

// take adds what a replica counted since its previous answer into the sinks, at now. Called with
// r.mu held. An error leaves the replica out of the look, its state as it was.
func (r *Reader) take(rep Replica, a *Answer, now time.Time) error {
	var spare map[seriesKey]*metrics.Counts
	if old := r.replicas[rep.URL]; old != nil {
		spare, old.spare = old.spare, nil
	}
	series, llm, pending, err := decode(a, spare)
	if err != nil {
		return fmt.Errorf("counts of %s: %w", rep.Name, err)
	}
	started := now.Add(-time.Duration(a.UptimeMs) * time.Millisecond)
	prev := r.replicas[rep.URL]
	switch {
	case prev != nil && prev.instance == a.Instance && a.Seq <= prev.seq:
		return fmt.Errorf("an answer older than the last one taken (sequence %d after %d)", a.Seq, prev.seq)
	case prev != nil && prev.instance == a.Instance:
		if prev.gone { // back with the same counters: nothing was lost
			r.cov.Ended--
			r.cov.Lost -= prev.lost
		}
	case prev != nil: // restarted at the same address
		if !prev.gone {
			r.ended(prev, started)
		}
		prev = nil
	}
	if prev == nil && !started.After(r.start) {
		// An instance that ran before this reader's first look: what it counted before then is
		// not this reader's to judge (another leader judged it, or it came before the rollout).
		// Its first answer is a baseline.
		r.replicas[rep.URL] = &replica{name: rep.Name, instance: a.Instance, seq: a.Seq, at: now, started: started,
			series: series, llm: llm, pending: pending, services: servicesOf(a), first: now}
		return nil
	}
	var n uint64
	first, counted := started, uint64(0) // for the rate: since the reader first heard of this address
	if old := r.replicas[rep.URL]; old != nil {
		first, counted = old.first, old.counted
	}
	if prev == nil {
		prev = &replica{}
	}
	for k, c := range series {
		if prev.services != nil && !prev.services[k.service] {
			continue // the service was not asked for last time (its rollout is new here): a baseline
		}
		d := *c
		if p, ok := prev.series[k]; ok {
			if sub, ok := c.Sub(p); ok {
				d = sub
			} // else the series began again on the replica (a version removed and added back)
		}
		n += d.Requests()
		if _, ok := r.sinks[k.service]; ok && d.Requests() > 0 {
			r.sumOf(k).AddCounts(&d)
		}
	}
	for k, t := range llm {
		if prev.services != nil && !prev.services[k.service] {
			continue
		}
		d := t
		if p, ok := prev.llm[k]; ok {
			if sub, ok := t.Sub(p); ok {
				d = sub
			}
		}
		if sink, ok := r.sinks[k.service]; ok && sink.LLM != nil {
			sink.LLM.Add(sink.name(k.service), k.version, k.mirror, d)
		}
	}
	counted += n
	rate := 0.0
	if dt := now.Sub(first).Seconds(); dt > 0 {
		rate = float64(counted) / dt
	}
	r.replicas[rep.URL] = &replica{name: rep.Name, instance: a.Instance, seq: a.Seq, at: now, started: started,
		series: series, llm: llm, pending: pending, rate: rate, services: servicesOf(a), first: first, counted: counted,
		spare: prev.series}
	return nil
}

// sumOf is the look's sum of the replicas' differences of a series, added into its sink once all
// have answered (addSums): one Add per series and look, whatever the number of replicas.
func (r *Reader) sumOf(k seriesKey) *metrics.Counts {
	if c := r.sum[k]; c != nil {
		return c
	}
	var c *metrics.Counts
	if n := len(r.free); n > 0 {
		c, r.free = r.free[n-1], r.free[:n-1]
	} else {
		c = new(metrics.Counts)
	}
	if r.sum == nil {
		r.sum = map[seriesKey]*metrics.Counts{}
	}
	r.sum[k] = c
	return c
}

// addSums adds the look's sums into the sinks, at now.
func (r *Reader) addSums(now time.Time) {
	for k, c := range r.sum {
		if sink, ok := r.sinks[k.service]; ok {
			sink.Metrics.Series(sink.name(k.service), k.version, k.role).Add(now, c)
		}
		*c = metrics.Counts{}
		r.free = append(r.free, c)
		delete(r.sum, k)
	}
}

// ended counts a replica instance that will answer no more: what it counted between its last
// answer and until is lost, estimated at its last rate.
func (r *Reader) ended(rp *replica, until time.Time) {
	rp.lost = int64(math.Round(rp.rate * max(until.Sub(rp.at), 0).Seconds()))
	r.cov.Ended++
	r.cov.Lost += rp.lost
}

// markGone marks the replicas that are no longer in the fleet, and forgets those gone for longer
// than the metrics keep windows (an instance back after that is read as new).
func (r *Reader) markGone(reps []Replica, now time.Time) {
	in := make(map[string]bool, len(reps))
	for _, rep := range reps {
		in[rep.URL] = true
	}
	for u, rp := range r.replicas {
		switch {
		case in[u]:
			rp.gone = false
		case !rp.gone:
			rp.gone = true
			r.ended(rp, now)
		case now.Sub(rp.at) > metrics.DefaultRetention:
			delete(r.replicas, u)
		}
	}
}

// setPending tells every sink's series the requests in flight on the replicas still in the fleet,
// as of their last answers: a replica left out of a look keeps its last known count, never zero.
func (r *Reader) setPending() {
	sum := map[seriesKey][]metrics.PendingSlot{}
	for _, rp := range r.replicas {
		if rp.gone {
			continue
		}
		for k, p := range rp.pending {
			sum[k] = append(sum[k], p...)
		}
	}
	for service, sink := range r.sinks {
		as := sink.name(service)
		sink.Metrics.Each(func(name, version string, role metrics.Role, s *metrics.Series) {
			if name == as {
				s.SetPending(sum[seriesKey{service, version, role}]) // nil: none in flight now
			}
		})
	}
	for k, p := range sum {
		if sink, ok := r.sinks[k.service]; ok {
			sink.Metrics.Series(sink.name(k.service), k.version, k.role).SetPending(p) // a series with nothing ended yet
		}
	}
}

// decode reads an answer into the reader's own types.
// spare holds the Counts of an answer no longer needed, to be reused: a replica's counts are a
// few KB per series, and allocating them afresh at every look would cost the controller megabytes
// of garbage per look.
func decode(a *Answer, spare map[seriesKey]*metrics.Counts) (map[seriesKey]*metrics.Counts, map[llmKey]llmstats.Totals, map[seriesKey][]metrics.PendingSlot, error) {
	series := make(map[seriesKey]*metrics.Counts, len(spare))
	llm := map[llmKey]llmstats.Totals{}
	pending := map[seriesKey][]metrics.PendingSlot{}
	for _, sc := range a.Services {
		for i := range sc.Series {
			role, ok := metrics.ParseRole(sc.Series[i].Role)
			k := seriesKey{sc.Service, sc.Series[i].Version, role}
			c := spare[k]
			if !ok || c == nil {
				c = new(metrics.Counts)
			}
			if _, err := sc.Series[i].counts(c); err != nil {
				return nil, nil, nil, fmt.Errorf("service %q: %w", sc.Service, err)
			}
			series[k] = c
			for _, p := range sc.Series[i].Pending {
				pending[k] = append(pending[k], metrics.PendingSlot{Start: time.UnixMilli(p[0]), End: time.UnixMilli(p[1]), N: p[2]})
			}
		}
		for i := range sc.LLM {
			t, err := sc.LLM[i].totals()
			if err != nil {
				return nil, nil, nil, fmt.Errorf("service %q: %w", sc.Service, err)
			}
			llm[llmKey{sc.Service, sc.LLM[i].Version, sc.LLM[i].Mirror}] = t
		}
	}
	return series, llm, pending, nil
}

func servicesOf(a *Answer) map[string]bool {
	m := make(map[string]bool, len(a.Services))
	for _, sc := range a.Services {
		m[sc.Service] = true
	}
	return m
}
