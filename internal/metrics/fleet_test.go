package metrics

import (
	"testing"
	"time"
)

// A series' counts added into another registry at the same time read back as the same window: what
// a controller judging a fleet sees is what the replica saw.
func TestCountsAddedBackReadTheSame(t *testing.T) {
	src, clock := newTestRegistry()
	s := src.Series("shop", "v2", Primary)
	obs := []Observation{
		at(time.Second, 200, 10*time.Millisecond),
		at(2*time.Second, 503, 300*time.Millisecond),
		{Code: 0, Duration: 5 * time.Second, End: t0.Add(3 * time.Second), Fault: FaultTimeout, BytesIn: 7, Unit: 3},
		{Code: 200, Duration: time.Millisecond, End: t0.Add(4 * time.Second), BytesOut: 11, Unit: 3},
	}
	for _, o := range obs {
		s.BeginAt(o.End.Add(-o.Duration))
		s.End(o)
	}
	clock.Set(t0.Add(5 * time.Second))
	c := s.Counts()
	if c.Requests() != 4 || c.Errors() != 2 {
		t.Fatalf("counts: %d requests %d errors, want 4 and 2", c.Requests(), c.Errors())
	}

	dst, _ := newTestRegistry()
	d := dst.Series("shop", "v2", Primary)
	d.Add(t0.Add(5*time.Second), &c)
	want, got := s.Window(t0, t0.Add(10*time.Second)), d.Window(t0, t0.Add(10*time.Second))
	if got.Requests != want.Requests || got.Errors != want.Errors || got.Faults != want.Faults ||
		got.Classes != want.Classes || got.BytesIn != want.BytesIn || got.BytesOut != want.BytesOut {
		t.Fatalf("added back: %+v\nthe replica's: %+v", got, want)
	}
	if got.Latency.Quantile(0.5) != want.Latency.Quantile(0.5) || got.Latency.CountAbove(100*time.Millisecond) != 2 {
		t.Fatalf("latency added back: median %v above-100ms %d; the replica's median %v",
			got.Latency.Quantile(0.5), got.Latency.CountAbove(100*time.Millisecond), want.Latency.Quantile(0.5))
	}
	if n, e := d.Units(); n[2] != 2 || e[2] != 1 {
		t.Fatalf("units added back: cluster 3 has %d requests %d errors, want 2 and 1", n[2], e[2])
	}
}

func TestCountsSubTellsARestart(t *testing.T) {
	r, _ := newTestRegistry()
	s := r.Series("shop", "v1", Primary)
	s.End(at(time.Second, 200, time.Millisecond))
	before := s.Counts()
	s.End(at(2*time.Second, 500, time.Millisecond))
	after := s.Counts()
	d, ok := after.Sub(&before)
	if !ok || d.Requests() != 1 || d.Errors() != 1 {
		t.Fatalf("difference %d requests %d errors (ok %v), want 1 and 1", d.Requests(), d.Errors(), ok)
	}
	if _, ok := before.Sub(&after); ok {
		t.Fatal("counts that went back were taken for a continuation")
	}
}

func TestPendingSlotsAddUpElsewhere(t *testing.T) {
	r, clock := newTestRegistry()
	s := r.Series("shop", "v1", Primary)
	s.BeginAt(t0.Add(time.Second))
	s.BeginAt(t0.Add(12 * time.Second))
	clock.Set(t0.Add(25 * time.Second))
	slots := s.PendingSlots()
	if len(slots) != 2 || slots[0].N != 1 || !slots[0].End.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("pending slots %+v", slots)
	}
	dst, _ := newTestRegistry()
	d := dst.Series("shop", "v1", Primary)
	d.SetPending(slots)
	for _, tc := range []struct {
		t    time.Duration
		want int64
	}{{5 * time.Second, 0}, {10 * time.Second, 1}, {20 * time.Second, 2}} {
		if got, own := d.Pending(t0.Add(tc.t)), s.Pending(t0.Add(tc.t)); got != tc.want || own != tc.want {
			t.Fatalf("pending by %v: %d elsewhere, %d on the replica, want %d", tc.t, got, own, tc.want)
		}
	}
}
