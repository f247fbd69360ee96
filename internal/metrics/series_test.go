package metrics

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestConcurrentTotalsExact records from many goroutines over many slots while
// others read windows and scrape, and checks that nothing was lost.
func TestConcurrentTotalsExact(t *testing.T) {
	const (
		writers   = 8
		perWriter = 3000
		slots     = 30 // of the 61 retained: nothing expires
	)
	clock := &fakeClock{t: t0.Add(slots * time.Second)}
	r := NewRegistry(Options{Slot: time.Second, Retention: time.Minute, Now: clock.Now})
	s := r.Series("shop", "v2", Primary)

	stop := make(chan struct{})
	var readers sync.WaitGroup
	reads := []func(){
		func() { s.Window(t0, t0.Add(slots*time.Second)) },
		func() { collectAll(r) },
	}
	readers.Add(len(reads))
	for _, read := range reads {
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
					read()
				}
			}
		}()
	}

	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				s.Begin()
				code := 200
				if i%10 == 0 {
					code = 503
				}
				s.End(Observation{
					Code:     code,
					Duration: time.Duration(i) * time.Microsecond,
					End:      t0.Add(time.Duration((i+w)%slots) * time.Second),
					BytesIn:  1,
					BytesOut: 2,
				})
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()

	const total = writers * perWriter
	sum := s.Window(t0, t0.Add(slots*time.Second))
	if sum.Requests != total || sum.Latency.Count() != total || sum.Errors != total/10 ||
		sum.BytesIn != total || sum.BytesOut != 2*total || sum.InFlight != 0 {
		t.Errorf("window: %d requests, %d latencies, %d errors, bytes %d/%d, %d in flight; want %d, %d, %d, %d/%d, 0",
			sum.Requests, sum.Latency.Count(), sum.Errors, sum.BytesIn, sum.BytesOut, sum.InFlight,
			total, total, total/10, total, 2*total)
	}
	var c cumulative
	s.cumulative(&c)
	if c.requests != total || c.codes[503] != total/10 || c.kinds[0] != total/10 || c.durCount != total {
		t.Errorf("cumulative: %d requests, %d 503s, %d 5xx errors, %d durations", c.requests, c.codes[503], c.kinds[0], c.durCount)
	}
}

// TestConcurrentRotation has writers race each other through more slots than
// the ring holds, so entries are recycled under load. Windows may drop the
// late ones; cumulative figures may not.
func TestConcurrentRotation(t *testing.T) {
	const writers, perWriter = 8, 2000
	clock := &fakeClock{t: t0}
	r := NewRegistry(Options{Slot: time.Second, Retention: 3 * time.Second, Now: clock.Now})
	s := r.Series("shop", "v2", Primary)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				s.Begin()
				s.End(Observation{Code: 200, Duration: time.Millisecond, End: t0.Add(time.Duration(i/20+w) * time.Second)})
				if i%50 == 0 {
					s.Window(t0, t0.Add(time.Hour))
				}
			}
		}()
	}
	wg.Wait()
	var c cumulative
	s.cumulative(&c)
	if c.requests != writers*perWriter || c.inFlight != 0 {
		t.Errorf("cumulative: %d requests, %d in flight; want %d, 0", c.requests, c.inFlight, writers*perWriter)
	}
	clock.Set(t0.Add(time.Duration(perWriter/20+writers) * time.Second))
	if w := s.Window(t0, t0.Add(time.Hour)); w.Requests == 0 || w.Requests > writers*perWriter || w.Requests != w.Latency.Count() {
		t.Errorf("window after rotation: %d requests, %d latencies", w.Requests, w.Latency.Count())
	}
}

func TestRecordingDoesNotAllocate(t *testing.T) {
	r, _ := newTestRegistry()
	s := r.Series("shop", "v2", Primary)
	o := Observation{Code: 200, Duration: 3 * time.Millisecond, End: t0, BytesIn: 10, BytesOut: 100}
	if n := testing.AllocsPerRun(1000, func() { s.Begin(); s.End(o) }); n != 0 {
		t.Errorf("Begin+End in one slot: %v allocations per run, want 0", n)
	}
	// Every run moves to a new slot, so every run recycles a ring entry.
	if n := testing.AllocsPerRun(1000, func() {
		o.End = o.End.Add(10 * time.Second)
		s.Begin()
		s.End(o)
	}); n != 0 {
		t.Errorf("Begin+End with slot rotation: %v allocations per run, want 0", n)
	}
}

func collectAll(r *Registry) {
	ch := make(chan prometheus.Metric)
	go func() { r.Collect(ch); close(ch) }()
	for range ch {
	}
}

func benchSeries(b *testing.B) (*Series, Observation) {
	r := NewRegistry(Options{})
	s := r.Series("shop", "v2", Primary)
	return s, Observation{Code: 200, Duration: 3 * time.Millisecond, End: time.Now(), BytesIn: 10, BytesOut: 100}
}

func BenchmarkEnd(b *testing.B) {
	s, o := benchSeries(b)
	b.ReportAllocs()
	for b.Loop() {
		s.Begin()
		s.End(o)
	}
}

// BenchmarkEndParallel hammers one series from every P: the worst case, as
// all goroutines contend on the same counters.
func BenchmarkEndParallel(b *testing.B) {
	s, o := benchSeries(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Begin()
			s.End(o)
		}
	})
}

// BenchmarkEndParallelSeries gives each goroutine its own series, as with
// traffic spread over versions.
func BenchmarkEndParallelSeries(b *testing.B) {
	r := NewRegistry(Options{})
	var mu sync.Mutex
	n := 0
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		n++
		s := r.Series("shop", string(rune('a'+n)), Primary)
		mu.Unlock()
		o := Observation{Code: 200, Duration: 3 * time.Millisecond, End: time.Now()}
		for pb.Next() {
			s.Begin()
			s.End(o)
		}
	})
}

func BenchmarkWindow(b *testing.B) {
	s, o := benchSeries(b)
	for range 1000 {
		s.End(o)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.Window(o.End.Add(-5*time.Minute), o.End)
	}
}

func TestPendingCountsRequestsInFlightFromOlderSlots(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	reg := NewRegistry(Options{Now: func() time.Time { return now }})
	s := reg.Series("shop", "v2", Primary)
	s.BeginAt(now)                       // hangs
	s.BeginAt(now)                       // ends after 2 s
	s.BeginAt(now.Add(15 * time.Second)) // hangs, but begins in a later slot
	now = now.Add(20 * time.Second)
	s.End(Observation{Code: 200, Duration: 2 * time.Second, End: time.Unix(1_000_002, 0)})
	if got := s.Pending(now.Add(-time.Second)); got != 1 {
		t.Errorf("in flight from slots ended a second ago: %d, want 1 (the other began in the slot still open)", got)
	}
	now = now.Add(20 * time.Second)
	if got := reg.Pending("shop", "v2", Primary, now); got != 2 {
		t.Errorf("in flight from every closed slot: %d, want 2", got)
	}
	if got := reg.Pending("shop", "v9", Primary, now); got != 0 {
		t.Errorf("unknown series: %d, want 0", got)
	}
}

// A series allocates its window ring and slots when requests end, not before: an idle series is
// small, and reads of it are empty, not missing.
func TestSeriesAllocatesWindowsOnFirstUse(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	r := NewRegistry(Options{Now: func() time.Time { return now }})
	s := r.Series("shop", "v1", Primary)
	if s.slots.Load() != nil || s.codes.Load() != nil {
		t.Fatal("a series that saw no request has its windows or status counts allocated")
	}
	if sum := s.Window(now.Add(-time.Minute), now); sum.Requests != 0 || sum.Latency == nil {
		t.Fatalf("idle window: %d requests, latency %v; want 0 and an empty histogram", sum.Requests, sum.Latency)
	}
	s.Begin()
	s.End(Observation{Code: 200, Duration: time.Millisecond, End: now})
	slots := s.slots.Load()
	used := 0
	for i := range *slots {
		if (*slots)[i].Load() != nil {
			used++
		}
	}
	if used != 1 {
		t.Errorf("%d slots allocated after one request, want 1", used)
	}
	if sum := s.Window(now.Add(-time.Minute), now.Add(time.Second)); sum.Requests != 1 || sum.Latency.Count() != 1 {
		t.Errorf("window after one request: %d requests, %d latencies; want 1 and 1", sum.Requests, sum.Latency.Count())
	}
}
