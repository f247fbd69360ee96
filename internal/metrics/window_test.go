package metrics

import (
	"math"
	"sync"
	"testing"
	"time"
)

// t0 is on a slot boundary for every slot width used in these tests.
var t0 = time.Unix(1_700_000_000, 0)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// newTestRegistry returns a registry with 10s slots kept for a minute (a ring
// of 7), its clock at t0.
func newTestRegistry() (*Registry, *fakeClock) {
	c := &fakeClock{t: t0}
	return NewRegistry(Options{Slot: 10 * time.Second, Retention: time.Minute, Now: c.Now}), c
}

func at(offset time.Duration, code int, d time.Duration) Observation {
	return Observation{Code: code, Duration: d, End: t0.Add(offset)}
}

func TestWindowMergesSlots(t *testing.T) {
	r, clock := newTestRegistry()
	s := r.Series("shop", "v2", Primary)
	for _, o := range []Observation{
		at(1*time.Second, 200, 10*time.Millisecond),
		at(9*time.Second, 404, 20*time.Millisecond),
		at(15*time.Second, 503, 30*time.Millisecond),
		{Code: 0, Duration: 5 * time.Second, End: t0.Add(25 * time.Second), Fault: FaultTimeout, BytesIn: 7},
		{Code: 502, Duration: time.Millisecond, End: t0.Add(26 * time.Second), Fault: FaultConnect, BytesOut: 9},
	} {
		s.Begin()
		s.End(o)
	}
	clock.Set(t0.Add(29 * time.Second))

	all := s.Window(t0, t0.Add(30*time.Second))
	if all.Requests != 5 || all.Errors != 3 || all.Latency.Count() != 5 {
		t.Fatalf("whole range: %d requests, %d errors, %d latencies; want 5, 3, 5", all.Requests, all.Errors, all.Latency.Count())
	}
	if want := [6]uint64{1, 0, 1, 0, 1, 2}; all.Classes != want {
		t.Errorf("Classes = %v, want %v", all.Classes, want)
	}
	if want := [4]uint64{0, 1, 1, 0}; all.Faults != want {
		t.Errorf("Faults = %v, want %v", all.Faults, want)
	}
	if all.BytesIn != 7 || all.BytesOut != 9 || all.InFlight != 0 {
		t.Errorf("bytes in %d out %d, in flight %d; want 7, 9, 0", all.BytesIn, all.BytesOut, all.InFlight)
	}
	if got := all.ErrorRate(); got != 0.6 {
		t.Errorf("ErrorRate = %v, want 0.6", got)
	}
	if got := all.Latency.Quantile(1); got < 4900*time.Millisecond || got > 5100*time.Millisecond {
		t.Errorf("max latency = %v, want about 5s", got)
	}

	mid := s.Window(t0.Add(10*time.Second), t0.Add(20*time.Second))
	if mid.Requests != 1 || mid.Classes[5] != 1 || mid.Errors != 1 || mid.Faults != [4]uint64{} {
		t.Errorf("middle slot: %+v, want the one 5xx", mid)
	}
	if !mid.Since.Equal(t0.Add(10*time.Second)) || !mid.Until.Equal(t0.Add(20*time.Second)) {
		t.Errorf("middle slot covers [%v, %v)", mid.Since, mid.Until)
	}
}

func TestWindowBoundaries(t *testing.T) {
	r, clock := newTestRegistry()
	s := r.Series("shop", "v2", Primary)
	s.End(at(10*time.Second, 200, time.Millisecond)) // exactly on a boundary: the later slot
	s.End(at(10*time.Second-1, 200, time.Millisecond))
	clock.Set(t0.Add(15 * time.Second))

	for _, c := range []struct {
		name         string
		since, until time.Duration // from t0
		want         uint64
		from, to     time.Duration // covered range
	}{
		{"first slot", 0, 10 * time.Second, 1, 0, 10 * time.Second},
		{"second slot", 10 * time.Second, 20 * time.Second, 1, 10 * time.Second, 20 * time.Second},
		{"rounded out", 5 * time.Second, 12 * time.Second, 2, 0, 20 * time.Second},
		{"within one slot", 11 * time.Second, 12 * time.Second, 1, 10 * time.Second, 20 * time.Second},
		{"until clamped to now's slot", 0, time.Hour, 2, 0, 20 * time.Second},
		{"since clamped to retention", -time.Hour, 20 * time.Second, 2, -50 * time.Second, 20 * time.Second},
		{"empty range", 15 * time.Second, 5 * time.Second, 0, 10 * time.Second, 10 * time.Second},
		{"since after now", 30 * time.Second, time.Minute, 0, 20 * time.Second, 20 * time.Second},
	} {
		w := s.Window(t0.Add(c.since), t0.Add(c.until))
		if w.Requests != c.want || !w.Since.Equal(t0.Add(c.from)) || !w.Until.Equal(t0.Add(c.to)) {
			t.Errorf("%s: %d requests over [%v, %v), want %d over [%v, %v)", c.name,
				w.Requests, w.Since.Sub(t0), w.Until.Sub(t0), c.want, c.from, c.to)
		}
	}
	// Times UnixNano cannot represent.
	far := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	if w := s.Window(time.Time{}, far); w.Requests != 2 || !w.Until.Equal(t0.Add(20*time.Second)) {
		t.Errorf("zero since and far until: %d requests until %v, want 2 until t0+20s", w.Requests, w.Until.Sub(t0))
	}
	if w := s.Window(far, far.Add(time.Hour)); w.Requests != 0 || !w.Since.Equal(t0.Add(20*time.Second)) {
		t.Errorf("window in the far future: %d requests from %v, want none from t0+20s", w.Requests, w.Since.Sub(t0))
	}
	if w := s.Window(time.Time{}, time.Time{}.Add(time.Hour)); w.Requests != 0 || !w.Until.Equal(t0.Add(-50*time.Second)) {
		t.Errorf("window in the far past: %d requests until %v, want none until t0-50s", w.Requests, w.Until.Sub(t0))
	}
}

func TestWindowExpiry(t *testing.T) {
	r, clock := newTestRegistry()
	s := r.Series("shop", "v2", Primary)
	s.End(at(time.Second, 200, time.Millisecond))

	// Out of retention as of now, though its ring entry was not reused yet.
	clock.Set(t0.Add(2 * time.Minute))
	if w := s.Window(t0, t0.Add(10*time.Second)); w.Requests != 0 || !math.IsNaN(w.ErrorRate()) {
		t.Errorf("expired slot still answers: %d requests, error rate %v", w.Requests, w.ErrorRate())
	}

	// 70s later is 7 slots later: the same ring entry, which is cleared.
	clock.Set(t0.Add(75 * time.Second))
	s.End(at(71*time.Second, 500, time.Millisecond))
	if w := s.Window(t0, t0.Add(80*time.Second)); w.Requests != 1 || w.Errors != 1 {
		t.Errorf("after reuse: %d requests %d errors, want only the new 5xx", w.Requests, w.Errors)
	}

	// A request that ended in the recycled slot is too late for windows, but
	// still counted cumulatively.
	s.End(at(2*time.Second, 200, time.Millisecond))
	if w := s.Window(t0.Add(70*time.Second), t0.Add(80*time.Second)); w.Requests != 1 {
		t.Errorf("late observation landed in a newer slot: %d requests", w.Requests)
	}
	var c cumulative
	s.cumulative(&c)
	if c.requests != 3 {
		t.Errorf("cumulative requests = %d, want 3", c.requests)
	}
}

func TestWindowKeepsLateObservationsWithinRetention(t *testing.T) {
	r, clock := newTestRegistry()
	s := r.Series("shop", "v2", Primary)
	s.End(at(45*time.Second, 200, time.Millisecond))
	s.End(at(5*time.Second, 200, time.Millisecond)) // ended earlier, recorded later
	clock.Set(t0.Add(50 * time.Second))
	if w := s.Window(t0, t0.Add(10*time.Second)); w.Requests != 1 {
		t.Errorf("late observation within retention: %d requests in its slot, want 1", w.Requests)
	}
}

func TestEndWithoutTimeUsesClock(t *testing.T) {
	r, clock := newTestRegistry()
	s := r.Series("shop", "v2", Primary)
	clock.Set(t0.Add(33 * time.Second))
	s.End(Observation{Code: 200})
	if w := s.Window(t0.Add(30*time.Second), t0.Add(40*time.Second)); w.Requests != 1 {
		t.Errorf("observation without End not in now's slot")
	}
}

func TestErrorClassification(t *testing.T) {
	for _, c := range []struct {
		o      Observation
		class  int
		errors uint64
		faults [4]uint64
	}{
		{Observation{Code: 200}, 2, 0, [4]uint64{}},
		{Observation{Code: 499}, 4, 0, [4]uint64{}},
		{Observation{Code: 0}, 0, 0, [4]uint64{}}, // client went away
		{Observation{Code: 500}, 5, 1, [4]uint64{}},
		{Observation{Code: 599}, 5, 1, [4]uint64{}},
		{Observation{Code: 502, Fault: FaultConnect}, 5, 1, [4]uint64{0, 1, 0, 0}},
		{Observation{Code: 504, Fault: FaultTimeout}, 5, 1, [4]uint64{0, 0, 1, 0}},
		{Observation{Code: 0, Fault: FaultGateway}, 0, 1, [4]uint64{0, 0, 0, 1}},
		{Observation{Code: 200, Fault: Fault(9)}, 2, 1, [4]uint64{0, 0, 0, 1}}, // unknown fault: gateway
		{Observation{Code: 600}, 0, 0, [4]uint64{}},                            // not a valid status
		{Observation{Code: -1}, 0, 0, [4]uint64{}},
	} {
		r, _ := newTestRegistry()
		s := r.Series("shop", "v2", Primary)
		c.o.End = t0
		s.End(c.o)
		w := s.Window(t0, t0.Add(time.Second))
		if w.Requests != 1 || w.Classes[c.class] != 1 || w.Errors != c.errors || w.Faults != c.faults {
			t.Errorf("%+v: classes %v errors %d faults %v; want class %d, %d errors, faults %v",
				c.o, w.Classes, w.Errors, w.Faults, c.class, c.errors, c.faults)
		}
	}
}

func TestRegistrySeries(t *testing.T) {
	r, _ := newTestRegistry()
	a := r.Series("shop", "v2", Primary)
	if r.Series("shop", "v2", Primary) != a {
		t.Fatal("Series returned a new pointer for the same key")
	}
	if r.Series("shop", "v2", Mirror) == a || r.Series("shop", "v1", Primary) == a {
		t.Fatal("different keys share a series")
	}
	a.Begin()
	a.End(at(0, 200, time.Millisecond))
	a.Begin()
	if w := r.Window("shop", "v2", Primary, t0, t0.Add(time.Second)); w.Requests != 1 || w.InFlight != 1 {
		t.Errorf("Registry.Window: %d requests %d in flight, want 1 and 1", w.Requests, w.InFlight)
	}

	r.Forget("shop", "v2")
	w := r.Window("shop", "v2", Primary, t0, t0.Add(time.Second))
	if w.Requests != 0 || w.Latency == nil || !math.IsNaN(w.ErrorRate()) || !w.Since.Equal(t0) {
		t.Errorf("forgotten series: %+v, want empty with NaN error rate", w)
	}
	if r.Series("shop", "v2", Primary) == a {
		t.Error("Forget kept the old series")
	}
	if r.Series("shop", "v1", Primary) == nil || len(r.all()) != 2 {
		t.Errorf("Forget dropped other versions: %d series left", len(r.all()))
	}
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{}.withDefaults()
	if o.Slot != DefaultSlot || o.Retention != DefaultRetention || o.Now == nil || o.slots() != 91 {
		t.Errorf("defaults: %+v with %d slots", o, o.slots())
	}
	for _, bad := range []Options{{Slot: -1}, {Retention: -1}, {Slot: time.Millisecond, Retention: time.Hour}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewRegistry(%+v) did not panic", bad)
				}
			}()
			NewRegistry(bad)
		}()
	}
}

func TestStrings(t *testing.T) {
	for got, want := range map[string]string{
		Primary.String(): "primary", Mirror.String(): "mirror", Role(7).String(): "Role(7)",
		NoFault.String(): "", FaultConnect.String(): "connect", FaultTimeout.String(): "timeout",
		FaultGateway.String(): "gateway", Fault(9).String(): "Fault(9)",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}
