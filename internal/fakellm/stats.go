package fakellm

import (
	"encoding/json"
	"net/http"
	"sync/atomic"
)

// Stats is what GET /__stats answers: what the server did since it started or was reset.
type Stats struct {
	Name string `json:"name"`
	Counts
	// Evaluations counts /v1/evaluate requests answered with a score.
	Evaluations int64 `json:"evaluations"`
	// ByEndpoint holds the Counts of each LLM endpoint, keyed by path ("/v1/chat/completions").
	ByEndpoint map[string]Counts `json:"byEndpoint"`
}

// Counts are the requests one endpoint (or all of them) received.
type Counts struct {
	// Requests counts every request to an LLM endpoint, the bad ones included.
	Requests int64 `json:"requests"`
	// Streams counts streams started with a 200.
	Streams int64 `json:"streams"`
	// Errors counts requests answered 500 by ErrorRate.
	Errors int64 `json:"errors"`
	// MidStreamErrors counts streams ended by an error event after a 200.
	MidStreamErrors int64 `json:"midStreamErrors"`
	// BadRequests counts requests answered 400 (a body the API would reject).
	BadRequests int64 `json:"badRequests"`
	// Canceled counts requests whose client went away before the answer was complete.
	Canceled int64 `json:"canceled"`
}

// counters are the live Counts of one endpoint.
type counters struct {
	requests, streams, errors, midStreamErrors, badRequests, canceled atomic.Int64
}

func (c *counters) load() Counts {
	return Counts{
		Requests:        c.requests.Load(),
		Streams:         c.streams.Load(),
		Errors:          c.errors.Load(),
		MidStreamErrors: c.midStreamErrors.Load(),
		BadRequests:     c.badRequests.Load(),
		Canceled:        c.canceled.Load(),
	}
}

func (c *counters) reset() {
	for _, v := range []*atomic.Int64{&c.requests, &c.streams, &c.errors, &c.midStreamErrors, &c.badRequests, &c.canceled} {
		v.Store(0)
	}
}

// stats holds the counters of every endpoint and their sums. The map is built once and only read.
type stats struct {
	name        string
	total       counters
	evaluations atomic.Int64
	endpoints   map[string]*counters
}

func newStats(name string) *stats {
	s := &stats{name: name, endpoints: map[string]*counters{}}
	for _, p := range []string{pathChat, pathResponses, pathMessages} {
		s.endpoints[p] = &counters{}
	}
	return s
}

// endpoint counts one request's events into its endpoint's counters and into the totals.
type endpoint struct {
	total, ep *counters
}

func (s *stats) endpoint(path string) endpoint { return endpoint{&s.total, s.endpoints[path]} }

// The returned numbers are the event's place in the server-wide sequence, used by evenly.
func (e endpoint) request() int64 { e.ep.requests.Add(1); return e.total.requests.Add(1) }
func (e endpoint) stream() int64  { e.ep.streams.Add(1); return e.total.streams.Add(1) }
func (e endpoint) failed()        { e.ep.errors.Add(1); e.total.errors.Add(1) }
func (e endpoint) failedMid()     { e.ep.midStreamErrors.Add(1); e.total.midStreamErrors.Add(1) }
func (e endpoint) badRequest()    { e.ep.badRequests.Add(1); e.total.badRequests.Add(1) }
func (e endpoint) canceled()      { e.ep.canceled.Add(1); e.total.canceled.Add(1) }

func (s *stats) snapshot() Stats {
	out := Stats{
		Name:        s.name,
		Counts:      s.total.load(),
		Evaluations: s.evaluations.Load(),
		ByEndpoint:  make(map[string]Counts, len(s.endpoints)),
	}
	for p, c := range s.endpoints {
		out.ByEndpoint[p] = c.load()
	}
	return out
}

func (s *stats) reset() {
	s.total.reset()
	s.evaluations.Store(0)
	for _, c := range s.endpoints {
		c.reset()
	}
}

func (s *stats) serve(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.snapshot())
}
