package metrics

import (
	"math"
	"slices"
	"time"
)

// Fleets. A controller that judges a fleet of gateway replicas (internal/fleet) has no traffic of
// its own: each replica answers its series' cumulative Counts and PendingSlots, the controller
// takes the difference from that replica's previous answer (Counts.Sub) and adds the sum of the
// replicas' differences into its own registry (Series.Add, Series.SetPending), whose windows the
// judge then reads exactly as it reads a gateway's own.

// NumBuckets is the number of buckets of a latency Histogram.
const NumBuckets = numBuckets

// Counts are a series' cumulative figures since it began: what the judge's windows are made of.
type Counts struct {
	Classes           [6]uint64 // requests by code/100 (0: no valid status)
	Kinds             [numKinds]uint64
	BytesIn, BytesOut uint64
	Latency           [NumBuckets]uint64  // the latency histogram's buckets
	Units             [NumUnits][2]uint64 // requests and errors per cluster of sticky keys
}

// Requests is the number of requests the counts hold.
func (c *Counts) Requests() uint64 {
	var n uint64
	for _, v := range c.Classes {
		n += v
	}
	return n
}

// Errors is the number of failed requests the counts hold.
func (c *Counts) Errors() uint64 {
	var n uint64
	for _, v := range c.Kinds {
		n += v
	}
	return n
}

// Sub returns c − prev, and false when any figure of c is below prev's: the series began again
// (its process restarted), and c is not a continuation of prev.
func (c *Counts) Sub(prev *Counts) (Counts, bool) {
	var d Counts
	ok := true
	sub := func(a, b uint64) uint64 {
		if a < b {
			ok = false
			return 0
		}
		return a - b
	}
	for i := range c.Classes {
		d.Classes[i] = sub(c.Classes[i], prev.Classes[i])
	}
	for i := range c.Kinds {
		d.Kinds[i] = sub(c.Kinds[i], prev.Kinds[i])
	}
	d.BytesIn, d.BytesOut = sub(c.BytesIn, prev.BytesIn), sub(c.BytesOut, prev.BytesOut)
	for i := range c.Latency {
		d.Latency[i] = sub(c.Latency[i], prev.Latency[i])
	}
	for i := range c.Units {
		d.Units[i][0], d.Units[i][1] = sub(c.Units[i][0], prev.Units[i][0]), sub(c.Units[i][1], prev.Units[i][1])
	}
	return d, ok
}

// AddCounts adds o to c.
func (c *Counts) AddCounts(o *Counts) {
	for i := range c.Classes {
		c.Classes[i] += o.Classes[i]
	}
	for i := range c.Kinds {
		c.Kinds[i] += o.Kinds[i]
	}
	c.BytesIn += o.BytesIn
	c.BytesOut += o.BytesOut
	for i := range c.Latency {
		c.Latency[i] += o.Latency[i]
	}
	for i := range c.Units {
		c.Units[i][0] += o.Units[i][0]
		c.Units[i][1] += o.Units[i][1]
	}
}

// totalLatency returns the series' cumulative latency histogram, allocating it on first use (a
// series that never sees a request does not pay its 3.8 KB).
func (s *Series) totalLatency() *Histogram {
	if h := s.latency.Load(); h != nil {
		return h
	}
	s.latency.CompareAndSwap(nil, new(Histogram))
	return s.latency.Load()
}

// Counts returns the series' cumulative figures. Taken during traffic, a request being recorded
// may show in some figures and not yet in others; the next Counts has it everywhere.
func (s *Series) Counts() Counts {
	var c Counts
	if codes := s.codes.Load(); codes != nil {
		for code := range codes {
			c.Classes[code/100] += codes[code].Load()
		}
	}
	for i := range s.kinds {
		c.Kinds[i] = s.kinds[i].Load()
	}
	c.BytesIn, c.BytesOut = s.bytesIn.Load(), s.bytesOut.Load()
	if h := s.latency.Load(); h != nil {
		h.load(&c.Latency)
	}
	for i := range s.units {
		c.Units[i][0], c.Units[i][1] = s.units[i][0].Load(), s.units[i][1].Load()
	}
	return c
}

// Add records d as requests that ended at at: in the window slot of at (dropped from windows if
// that slot has left the retained range, as End drops them) and in the cumulative figures. A
// class counts under its round code (5xx as 500). Durations reach the Prometheus histogram at
// their bucket's middle, so its sum is an estimate within the histogram's relative error.
func (s *Series) Add(at time.Time, d *Counts) {
	if d.Requests() == 0 {
		return
	}
	if sl := s.slotFor(s.epochOf(at)); sl != nil {
		for i, v := range d.Classes {
			addNonZero(&sl.classes[i], v)
		}
		for i, v := range d.Kinds {
			addNonZero(&sl.kinds[i], v)
		}
		addNonZero(&sl.bytesIn, d.BytesIn)
		addNonZero(&sl.bytesOut, d.BytesOut)
		sl.latency.add(&d.Latency)
	}
	codes := s.codeCounts()
	for i, v := range d.Classes {
		addNonZero(&codes[i*100], v)
	}
	for i, v := range d.Kinds {
		addNonZero(&s.kinds[i], v)
	}
	addNonZero(&s.bytesIn, d.BytesIn)
	addNonZero(&s.bytesOut, d.BytesOut)
	s.totalLatency().add(&d.Latency)
	var micros float64
	for i, v := range d.Latency {
		if v != 0 {
			r := representative(i)
			addNonZero(&s.durBuckets[promBucket(r)], v)
			micros += float64(v) * float64(r) / 1e3
		}
	}
	s.durSumMicros.Add(uint64(math.Round(micros)))
	for i, u := range d.Units {
		addNonZero(&s.units[i][0], u[0])
		addNonZero(&s.units[i][1], u[1])
	}
}

type counter interface{ Add(uint64) uint64 }

func addNonZero(c counter, v uint64) {
	if v != 0 {
		c.Add(v)
	}
}

// PendingSlot counts requests still in flight that began in [Start, End).
type PendingSlot struct {
	Start, End time.Time
	N          int64
}

// PendingSlots lists the slots still retained that hold requests in flight, oldest first: what
// Pending reads, for a reader in another process.
func (s *Series) PendingSlots() []PendingSlot {
	first, last := s.covered(time.Time{}, s.now())
	var out []PendingSlot
	for e := first; e < last; e++ {
		sl := s.held(e)
		if sl == nil {
			continue
		}
		if b, d := sl.begun.Load(), sl.doneByStart.Load(); sl.epoch.Load() == e && b > d {
			out = append(out, PendingSlot{Start: s.startOf(e), End: s.startOf(e + 1), N: int64(b - d)})
		}
	}
	return out
}

// SetPending replaces what the series knows of requests in flight elsewhere (in the replicas of a
// fleet): Pending adds those of the slots that ended by its time. nil forgets them.
func (s *Series) SetPending(slots []PendingSlot) {
	if len(slots) == 0 {
		s.external.Store(nil)
		return
	}
	c := slices.Clone(slots)
	s.external.Store(&c)
}

func (s *Series) externalPending(t time.Time) int64 {
	p := s.external.Load()
	if p == nil {
		return 0
	}
	var n int64
	for _, sl := range *p {
		if !sl.End.After(t) {
			n += sl.N
		}
	}
	return n
}

// Each calls fn with every series, in no particular order.
func (r *Registry) Each(fn func(service, version string, role Role, s *Series)) {
	for _, s := range r.all() {
		fn(s.service, s.version, s.role, s)
	}
}

// Load copies the histogram's counts into c and returns their sum.
func (h *Histogram) Load(c *[NumBuckets]uint64) uint64 { return h.load(c) }

// AddCounts adds counts, as Load gives them, to the histogram.
func (h *Histogram) AddCounts(c *[NumBuckets]uint64) { h.add(c) }

// ParseRole is the Role whose String is s.
func ParseRole(s string) (Role, bool) {
	for _, r := range []Role{Primary, Mirror, Routed} {
		if r.String() == s {
			return r, true
		}
	}
	return 0, false
}
