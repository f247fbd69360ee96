package metrics

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// promBounds are the classic Prometheus buckets of
// aviary_request_duration_seconds, in nanoseconds. They are counted apart from
// the fine histogram so that each "le" is exact.
var promBounds = [...]time.Duration{
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
	30 * time.Second, 60 * time.Second,
}

// Series holds the measurements of one service, version and role: cumulative
// counters for Prometheus, and a ring of window slots for the judge. Get one
// from Registry.Series and keep the pointer; all methods are safe for
// concurrent use.
type Series struct {
	service, version string
	role             Role

	inFlight atomic.Int64

	// Requests and errors per cluster of sticky keys, cumulative (Observation.Unit).
	units [NumUnits][2]atomic.Uint64

	// Cumulative since the series was created.
	codes        atomic.Pointer[codeCounts] // by normalized status code; nil until the first request
	kinds        [numKinds]atomic.Uint64    // errors by kind (0: 5xx, else Fault)
	bytesIn      atomic.Uint64
	bytesOut     atomic.Uint64
	durBuckets   [len(promBounds) + 1]atomic.Uint64 // last: above 60s
	durSumMicros atomic.Uint64                      // µs: lasts ~58 years at 10⁴ s of latency per second
	latency      atomic.Pointer[Histogram]          // the fine histogram since the series began, for Counts; nil until the first request

	// What a controller that reads a fleet of gateways was last told of their requests in flight
	// (see SetPending); nil in a gateway, which counts its own.
	external atomic.Pointer[[]PendingSlot]

	// Window slots; see window.go. The ring is allocated when the first request ends, and a slot
	// (3.8 KB, mostly its latency histogram) when a request first ends in it, so a series that sees
	// no traffic costs a few hundred bytes: a config of thousands of services, most of them idle,
	// must not cost gigabytes.
	slotting
	rotate sync.Mutex           // taken only to allocate or recycle a slot
	slots  atomic.Pointer[ring] // nil until the first request ends
}

// ring is a series' window slots, indexed by slotting.index.
type ring []atomic.Pointer[slot]

// codeCounts counts requests by normalized status code.
type codeCounts [maxCode + 1]atomic.Uint64

func newSeries(service, version string, role Role, o Options) *Series {
	return &Series{
		service: service, version: version, role: role,
		slotting: newSlotting(o),
	}
}

// codeCounts returns the series' counts by status code, allocating them on first use.
func (s *Series) codeCounts() *codeCounts {
	if c := s.codes.Load(); c != nil {
		return c
	}
	s.codes.CompareAndSwap(nil, new(codeCounts))
	return s.codes.Load()
}

// Begin counts a request in flight, begun now. Every Begin must be followed by one End.
func (s *Series) Begin() { s.BeginAt(s.now()) }

// BeginAt counts a request in flight that began at start (the Observation's End minus its
// Duration, when it ends). Every BeginAt must be followed by one End.
func (s *Series) BeginAt(start time.Time) {
	s.inFlight.Add(1)
	if sl := s.slotFor(s.epochOf(start)); sl != nil {
		sl.begun.Add(1)
	}
}

// Units returns the requests and errors of each cluster of sticky keys since the series began.
func (s *Series) Units() (requests, errors [NumUnits]int64) {
	for i := range s.units {
		requests[i], errors[i] = int64(s.units[i][0].Load()), int64(s.units[i][1].Load())
	}
	return requests, errors
}

// Pending is the number of requests still in flight that began in a slot that ended at or before
// t: requests older than now − t, give or take a slot. A request whose start slot has left the
// retained range is no longer counted.
func (s *Series) Pending(t time.Time) int64 {
	first, last := s.covered(time.Time{}, t)
	if !t.Equal(s.startOf(last)) {
		last-- // only whole slots before t
	}
	var n int64
	for e := first; e < last; e++ {
		sl := s.held(e)
		if sl == nil {
			continue
		}
		b, d := sl.begun.Load(), sl.doneByStart.Load()
		if sl.epoch.Load() == e && b > d {
			n += int64(b - d)
		}
	}
	return n + s.externalPending(t)
}

// End ends a request begun with Begin and records it. It takes no lock and
// allocates nothing, except that the first observation of a new slot takes
// the series' rotation mutex briefly (see slotFor).
func (s *Series) End(o Observation) {
	s.inFlight.Add(-1)

	code := normCode(o.Code)
	kind := errorKind(code, o.Fault)
	d := max(o.Duration, 0)
	in, out := uint64(max(o.BytesIn, 0)), uint64(max(o.BytesOut, 0))

	s.codeCounts()[code].Add(1)
	if kind >= 0 {
		s.kinds[kind].Add(1)
	}
	if in != 0 {
		s.bytesIn.Add(in)
	}
	if out != 0 {
		s.bytesOut.Add(out)
	}
	s.durBuckets[promBucket(d)].Add(1)
	s.durSumMicros.Add(uint64((d + 500) / 1000))
	bucket := bucketOf(d) // once, for the cumulative histogram and the slot's
	s.totalLatency().counts[bucket].Add(1)

	end := o.End
	if end.IsZero() {
		end = s.now()
	}
	if sl := s.slotFor(s.epochOf(end)); sl != nil {
		sl.record(code/100, kind, in, out, bucket)
	}
	if o.Unit > 0 && int(o.Unit) <= NumUnits {
		s.units[o.Unit-1][0].Add(1)
		if kind >= 0 {
			s.units[o.Unit-1][1].Add(1)
		}
	}
	// The slot it began in (if it still holds it) counts it as no longer in flight.
	if sl := s.held(s.epochOf(end.Add(-d))); sl != nil {
		sl.doneByStart.Add(1)
	}
}

func promBucket(d time.Duration) int {
	for i, b := range promBounds {
		if d <= b {
			return i
		}
	}
	return len(promBounds)
}

// cumulative is a copy of a series' cumulative counters, taken at scrape time.
type cumulative struct {
	codes              [maxCode + 1]uint64
	kinds              [numKinds]uint64
	bytesIn, bytesOut  uint64
	durBuckets         [len(promBounds) + 1]uint64
	durSumSeconds      float64
	inFlight           int64
	durCount, requests uint64
}

func (s *Series) cumulative(c *cumulative) {
	if codes := s.codes.Load(); codes != nil {
		for i := range codes {
			c.codes[i] = codes[i].Load()
			c.requests += c.codes[i]
		}
	}
	for i := range s.kinds {
		c.kinds[i] = s.kinds[i].Load()
	}
	c.bytesIn, c.bytesOut = s.bytesIn.Load(), s.bytesOut.Load()
	for i := range s.durBuckets {
		c.durBuckets[i] = s.durBuckets[i].Load()
		c.durCount += c.durBuckets[i]
	}
	c.durSumSeconds = float64(s.durSumMicros.Load()) / 1e6
	c.inFlight = s.inFlight.Load()
}

// noEpoch marks a slot that is being cleared.
const noEpoch = math.MinInt64
