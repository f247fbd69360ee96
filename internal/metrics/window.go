package metrics

import (
	"math"
	"sync/atomic"
	"time"
)

// Windows.
//
// Time is cut into slots of Options.Slot aligned on the Unix epoch: slot k
// covers [k·Slot, (k+1)·Slot). An observation belongs to the slot that holds
// its End time, start included; a request ending exactly on a boundary counts
// in the later slot. A series keeps a ring of ceil(Retention/Slot)+1 slots,
// each tagged with the number k (its epoch) of the slot it holds.
//
// Recording loads the tag of the ring entry for k: when it is k, the
// observation is added with atomics (the fast path). Otherwise the entry still
// holds an older slot, which has left the retained range; the writer takes the
// series' rotation mutex, marks the entry as being cleared, zeroes it and tags
// it k. Writers that meanwhile find the mark wait on the mutex. An observation
// whose slot has already been recycled (it ended more than Retention before
// the newest one recorded) is dropped from windows but still counted in the
// cumulative Prometheus figures.
//
// A window [since, until) is answered with whole slots: since is rounded down
// and until up to slot boundaries, so a window may include up to a slot's
// worth of observations before since and after until. It is then clamped to
// the retained range, from the oldest slot still in the ring as of Now to the
// end of Now's slot (an observation whose End is past Now's slot is kept, and
// shows once Now reaches it). Summary.Since and Summary.Until report the range
// actually covered. A reader checks a slot's tag before and after copying it and
// ignores the copy when the slot was recycled in between. (A writer that
// checked the tag and then stalled for a whole Retention before adding would
// count in the newer slot; with minutes of retention that is not a practical
// concern, and it costs no lock.)

// slot is one entry of a series' ring.
type slot struct {
	epoch    atomic.Int64
	classes  [6]atomic.Uint64        // by code/100; 0: no valid status
	kinds    [numKinds]atomic.Uint64 // errors by kind (0: 5xx, else Fault)
	bytesIn  atomic.Uint64
	bytesOut atomic.Uint64
	latency  Histogram
	// Requests that began in this slot, and how many of those have ended: the difference is what
	// is still in flight (see Series.Pending). Kept by start time, unlike the rest (by end time).
	begun, doneByStart atomic.Uint64
}

func (sl *slot) record(class, kind int, in, out uint64, bucket int) {
	sl.classes[class].Add(1)
	if kind >= 0 {
		sl.kinds[kind].Add(1)
	}
	if in != 0 {
		sl.bytesIn.Add(in)
	}
	if out != 0 {
		sl.bytesOut.Add(out)
	}
	sl.latency.counts[bucket].Add(1)
}

func (sl *slot) clear() {
	for i := range sl.classes {
		sl.classes[i].Store(0)
	}
	for i := range sl.kinds {
		sl.kinds[i].Store(0)
	}
	sl.bytesIn.Store(0)
	sl.bytesOut.Store(0)
	sl.begun.Store(0)
	sl.doneByStart.Store(0)
	sl.latency.reset()
}

// slotData is a plain copy of a slot.
type slotData struct {
	classes           [6]uint64
	kinds             [numKinds]uint64
	bytesIn, bytesOut uint64
	latency           [numBuckets]uint64
}

// read copies the slot into d if it holds epoch e before and after the copy.
func (sl *slot) read(e int64, d *slotData) bool {
	if sl.epoch.Load() != e {
		return false
	}
	for i := range sl.classes {
		d.classes[i] = sl.classes[i].Load()
	}
	for i := range sl.kinds {
		d.kinds[i] = sl.kinds[i].Load()
	}
	d.bytesIn, d.bytesOut = sl.bytesIn.Load(), sl.bytesOut.Load()
	sl.latency.load(&d.latency)
	return sl.epoch.Load() == e
}

// slotting is how a series cuts time into slots; it depends on Options only.
type slotting struct {
	width int64 // ns
	count int64 // ring size
	now   func() time.Time
}

func newSlotting(o Options) slotting {
	return slotting{width: int64(o.Slot), count: o.slots(), now: o.Now}
}

// epochOf returns the number of the slot holding t.
func (g slotting) epochOf(t time.Time) int64 {
	n := t.UnixNano()
	e := n / g.width
	if n%g.width < 0 {
		e-- // floor, for times before 1970
	}
	return e
}

func (g slotting) startOf(e int64) time.Time {
	return time.Unix(0, e*g.width)
}

// index returns the ring entry of epoch e.
func (g slotting) index(e int64) int {
	return int((e%g.count + g.count) % g.count)
}

// covered returns the slots [first, last) that answer a window [since, until).
// Times are clamped to the retained range before they are converted, as
// UnixNano is undefined for times before 1678 or after 2262.
func (g slotting) covered(since, until time.Time) (first, last int64) {
	cur := g.epochOf(g.now())
	lo, hi := g.startOf(cur-g.count+1), g.startOf(cur+1)
	clamp := func(t time.Time) time.Time {
		if t.Before(lo) {
			return lo
		}
		if t.After(hi) {
			return hi
		}
		return t
	}
	since, until = clamp(since), clamp(until)
	first, last = g.epochOf(since), g.epochOf(until)
	if !until.Equal(g.startOf(last)) {
		last++ // round up
	}
	return first, max(last, first)
}

// emptySummary returns a summary of slots [first, last) with no observations.
func (g slotting) emptySummary(first, last int64) Summary {
	return Summary{Since: g.startOf(first), Until: g.startOf(last), Latency: new(Histogram)}
}

// slotFor returns the ring entry for epoch e, allocating it on first use and
// recycling it if it holds an older slot, or nil if it already holds a newer one.
// held returns the slot of epoch e if the ring holds it now, else nil; it never allocates or
// recycles.
func (s *Series) held(e int64) *slot {
	if slots := s.slots.Load(); slots != nil {
		if sl := (*slots)[s.index(e)].Load(); sl != nil && sl.epoch.Load() == e {
			return sl
		}
	}
	return nil
}

func (s *Series) slotFor(e int64) *slot {
	slots := s.slots.Load()
	if slots != nil {
		if sl := (*slots)[s.index(e)].Load(); sl != nil && sl.epoch.Load() == e {
			return sl // fast path
		}
	}
	s.rotate.Lock()
	defer s.rotate.Unlock()
	if slots = s.slots.Load(); slots == nil {
		r := make(ring, s.count)
		slots = &r
		s.slots.Store(slots)
	}
	entry := &(*slots)[s.index(e)]
	sl := entry.Load()
	if sl == nil {
		sl = new(slot)
		sl.epoch.Store(e)
		entry.Store(sl)
		return sl
	}
	switch cur := sl.epoch.Load(); {
	case cur == e:
		return sl
	case cur > e:
		return nil
	}
	// Mark first, so that readers ignore the slot and writers wait for the
	// mutex while it is being zeroed.
	sl.epoch.Store(noEpoch)
	sl.clear()
	sl.epoch.Store(e)
	return sl
}

// Summary is what a series saw during a window. Each field is exact for the
// observations it includes, but one taken during traffic may include an
// observation still being recorded in some fields and not yet in others.
type Summary struct {
	Since, Until time.Time // the slot-aligned range actually covered
	Requests     uint64
	Classes      [6]uint64 // index = Code/100 (0 = no status), e.g. Classes[5] = 5xx
	Errors       uint64    // 5xx without a fault, plus every fault
	Faults       [4]uint64 // by Fault; Faults[NoFault] is always 0
	BytesIn      uint64
	BytesOut     uint64
	InFlight     int64      // now, not over the window
	Latency      *Histogram // merged over the range; never nil
}

// ErrorRate returns Errors/Requests, or NaN when there were no requests:
// missing data is never zero errors.
func (s Summary) ErrorRate() float64 {
	if s.Requests == 0 {
		return math.NaN()
	}
	return float64(s.Errors) / float64(s.Requests)
}

func (s *Summary) add(d *slotData) {
	for i, v := range d.classes {
		s.Classes[i] += v
		s.Requests += v
	}
	for i, v := range d.kinds {
		s.Errors += v
		if i > 0 {
			s.Faults[i] += v
		}
	}
	s.BytesIn += d.bytesIn
	s.BytesOut += d.bytesOut
	s.Latency.add(&d.latency)
}

// Window summarizes the observations that ended in [since, until), rounded
// out to whole slots and clamped to the retained range (see the comment at
// the top of window.go).
func (s *Series) Window(since, until time.Time) Summary {
	first, last := s.covered(since, until)
	sum := s.emptySummary(first, last)
	sum.InFlight = s.inFlight.Load()
	slots := s.slots.Load()
	if slots == nil {
		return sum
	}
	var d slotData
	for e := first; e < last; e++ {
		if sl := (*slots)[s.index(e)].Load(); sl != nil && sl.read(e, &d) {
			sum.add(&d)
		}
	}
	return sum
}
