package fleet

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync/atomic"
	"time"

	"aviary.dev/aviary/internal/llmstats"
	"aviary.dev/aviary/internal/metrics"
)

// Answer is a replica's answer to GET /api/v1/fleet/counts: its cumulative counts since it
// started, per service, version and role. Histograms are sparse (index, count, index, count, …
// over metrics.NumBuckets buckets), and zero figures are left out, so that an idle version costs a
// few dozen bytes.
type Answer struct {
	// Instance is random at each start of the process: a new one means the counts began again.
	Instance string `json:"instance"`
	// Seq grows by one with each answer of an instance, so a reader can tell an old answer from a
	// new one.
	Seq uint64 `json:"seq"`
	// UptimeMs is how long the instance has run: the reader places its start on its own clock.
	UptimeMs int64           `json:"uptimeMs"`
	Services []ServiceCounts `json:"services"`
}

// ServiceCounts are one service's series.
type ServiceCounts struct {
	Service string        `json:"service"`
	Series  []SeriesCount `json:"series,omitempty"`
	LLM     []LLMCount    `json:"llm,omitempty"`
}

// SeriesCount is one version and role's metrics.Counts, and its requests in flight.
type SeriesCount struct {
	Version  string    `json:"version"`
	Role     string    `json:"role"`              // primary, mirror or routed
	Classes  [6]uint64 `json:"classes"`           // requests by code/100 (0: no valid status)
	Kinds    [4]uint64 `json:"kinds"`             // errors: 5xx, connect, timeout, gateway
	BytesIn  uint64    `json:"bytesIn,omitempty"` // request body bytes
	BytesOut uint64    `json:"bytesOut,omitempty"`
	Latency  []uint64  `json:"latency,omitempty"` // sparse histogram
	Units    []uint64  `json:"units,omitempty"`   // requests, errors of each cluster of sticky keys; absent when all zero
	// Pending are the requests in flight by the slot they began in: [start unix ms, end unix ms, n].
	Pending [][3]int64 `json:"pending,omitempty"`
}

// LLMCount is one version's llmstats.Totals.
type LLMCount struct {
	Version         string   `json:"version"`
	Mirror          bool     `json:"mirror,omitempty"`
	Requests        int64    `json:"requests"`
	StreamErrors    int64    `json:"streamErrors,omitempty"`
	ClientAborts    int64    `json:"clientAborts,omitempty"`
	UsageN          int64    `json:"usageN,omitempty"`
	OutputSum       float64  `json:"outputSum,omitempty"`
	OutputSumSq     float64  `json:"outputSumSq,omitempty"`
	InputTokens     int64    `json:"inputTokens,omitempty"`
	OutputTokens    int64    `json:"outputTokens,omitempty"`
	CachedTokens    int64    `json:"cachedTokens,omitempty"`
	ReasoningTokens int64    `json:"reasoningTokens,omitempty"`
	CostN           int64    `json:"costN,omitempty"`
	CostSum         float64  `json:"costSum,omitempty"`
	CostSumSq       float64  `json:"costSumSq,omitempty"`
	TTFT            []uint64 `json:"ttft,omitempty"` // sparse histograms
	Gaps            []uint64 `json:"gaps,omitempty"`
	TPOT            []uint64 `json:"tpot,omitempty"`
}

// Counter answers a replica's counts: the gateway's registries, an instance id and a sequence.
type Counter struct {
	Metrics *metrics.Registry
	LLM     *llmstats.Registry // nil: no LLM counts
	Now     func() time.Time   // nil: time.Now

	instance string
	started  time.Time
	seq      atomic.Uint64
}

// NewCounter makes the counter of a process; its instance id is random.
func NewCounter(m *metrics.Registry, llm *llmstats.Registry, now func() time.Time) *Counter {
	if now == nil {
		now = time.Now
	}
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	return &Counter{Metrics: m, LLM: llm, Now: now, instance: hex.EncodeToString(b[:]), started: now()}
}

// Instance is the counter's instance id.
func (c *Counter) Instance() string { return c.instance }

// Counts answers the cumulative counts of the services named, in their order.
func (c *Counter) Counts(services []string) Answer {
	a := Answer{Instance: c.instance, Seq: c.seq.Add(1), UptimeMs: c.Now().Sub(c.started).Milliseconds(),
		Services: make([]ServiceCounts, len(services))}
	at := make(map[string]int, len(services))
	for i, name := range services {
		a.Services[i].Service = name
		at[name] = i
	}
	c.Metrics.Each(func(service, version string, role metrics.Role, s *metrics.Series) {
		if i, ok := at[service]; ok {
			a.Services[i].Series = append(a.Services[i].Series, seriesCount(version, role, s))
		}
	})
	if c.LLM != nil {
		c.LLM.Each(func(service, version string, mirror bool, t llmstats.Totals) {
			if i, ok := at[service]; ok {
				a.Services[i].LLM = append(a.Services[i].LLM, llmCount(version, mirror, t))
			}
		})
	}
	return a
}

func seriesCount(version string, role metrics.Role, s *metrics.Series) SeriesCount {
	c := s.Counts()
	out := SeriesCount{Version: version, Role: role.String(), Classes: c.Classes, Kinds: c.Kinds,
		BytesIn: c.BytesIn, BytesOut: c.BytesOut, Latency: sparse(&c.Latency)}
	for i := range c.Units {
		if c.Units[i][0] != 0 {
			out.Units = make([]uint64, 0, 2*len(c.Units))
			for _, u := range c.Units {
				out.Units = append(out.Units, u[0], u[1])
			}
			break
		}
	}
	for _, p := range s.PendingSlots() {
		out.Pending = append(out.Pending, [3]int64{p.Start.UnixMilli(), p.End.UnixMilli(), p.N})
	}
	return out
}

func llmCount(version string, mirror bool, t llmstats.Totals) LLMCount {
	return LLMCount{Version: version, Mirror: mirror, Requests: t.Requests, StreamErrors: t.StreamErrors,
		ClientAborts: t.ClientAborts, UsageN: t.UsageN, OutputSum: t.OutputSum, OutputSumSq: t.OutputSumSq,
		InputTokens: t.InputTokens, OutputTokens: t.OutputTokens, CachedTokens: t.CachedTokens,
		ReasoningTokens: t.ReasoningTokens, CostN: t.CostN, CostSum: t.CostSum, CostSumSq: t.CostSumSq,
		TTFT: sparseHist(t.TTFT), Gaps: sparseHist(t.Gaps), TPOT: sparseHist(t.TimePerOutputToken)}
}

func sparseHist(h *metrics.Histogram) []uint64 {
	if h == nil {
		return nil
	}
	var c [metrics.NumBuckets]uint64
	h.Load(&c)
	return sparse(&c)
}

func sparse(c *[metrics.NumBuckets]uint64) []uint64 {
	var out []uint64
	for i, v := range c {
		if v != 0 {
			out = append(out, uint64(i), v)
		}
	}
	return out
}

// dense reads a sparse histogram back.
func dense(s []uint64, into *[metrics.NumBuckets]uint64) error {
	if len(s)%2 != 0 {
		return fmt.Errorf("a sparse histogram has %d numbers; it needs index, count pairs", len(s))
	}
	for i := 0; i < len(s); i += 2 {
		if s[i] >= metrics.NumBuckets {
			return fmt.Errorf("histogram bucket %d is past the last (%d): the replica's aviary lays out latency differently; run the same aviary version on the controller and the gateway", s[i], metrics.NumBuckets-1)
		}
		into[s[i]] += s[i+1]
	}
	return nil
}

// counts decodes a SeriesCount into c, which it overwrites.
func (s *SeriesCount) counts(c *metrics.Counts) (metrics.Role, error) {
	*c = metrics.Counts{}
	role, ok := metrics.ParseRole(s.Role)
	if !ok {
		return 0, fmt.Errorf("version %q: unknown role %q (known: primary, mirror, routed); run the same aviary version on the controller and the gateway", s.Version, s.Role)
	}
	c.Classes, c.Kinds, c.BytesIn, c.BytesOut = s.Classes, s.Kinds, s.BytesIn, s.BytesOut
	if err := dense(s.Latency, &c.Latency); err != nil {
		return 0, fmt.Errorf("version %q latency: %w", s.Version, err)
	}
	if len(s.Units) != 0 {
		if len(s.Units) != 2*metrics.NumUnits {
			return 0, fmt.Errorf("version %q has %d unit counts, and this aviary counts %d; run the same aviary version on the controller and the gateway", s.Version, len(s.Units), 2*metrics.NumUnits)
		}
		for i := range c.Units {
			c.Units[i] = [2]uint64{s.Units[2*i], s.Units[2*i+1]}
		}
	}
	return role, nil
}

// totals decodes an LLMCount.
func (l *LLMCount) totals() (llmstats.Totals, error) {
	t := llmstats.Totals{Requests: l.Requests, StreamErrors: l.StreamErrors, ClientAborts: l.ClientAborts,
		UsageN: l.UsageN, OutputSum: l.OutputSum, OutputSumSq: l.OutputSumSq, InputTokens: l.InputTokens,
		OutputTokens: l.OutputTokens, CachedTokens: l.CachedTokens, ReasoningTokens: l.ReasoningTokens,
		CostN: l.CostN, CostSum: l.CostSum, CostSumSq: l.CostSumSq}
	hists := []struct {
		s   []uint64
		dst **metrics.Histogram
		n   string
	}{{l.TTFT, &t.TTFT, "ttft"}, {l.Gaps, &t.Gaps, "gaps"}, {l.TPOT, &t.TimePerOutputToken, "tpot"}}
	for _, h := range hists {
		var c [metrics.NumBuckets]uint64
		if err := dense(h.s, &c); err != nil {
			return t, fmt.Errorf("version %q %s: %w", l.Version, h.n, err)
		}
		*h.dst = new(metrics.Histogram)
		(*h.dst).AddCounts(&c)
	}
	return t, nil
}
