package gateway

import (
	"net/url"
	"testing"
	"time"
)

func endpoints(n int) []*endpoint {
	var eps []*endpoint
	for i := 0; i < n; i++ {
		u, _ := url.Parse("http://127.0.0.1:1")
		eps = append(eps, newEndpoint(u, string(rune('a'+i))))
	}
	return eps
}

// The picker rotates evenly over available endpoints and skips the unavailable at once.
func TestPickerSmoothAndSkipsUnavailable(t *testing.T) {
	eps := endpoints(3)
	var p picker
	now := time.Now().UnixNano()
	var order string
	for i := 0; i < 6; i++ {
		order += p.pick(eps, now, nil).raw
	}
	if order != "abcabc" {
		t.Errorf("order %q, want abcabc", order)
	}
	eps[1].activeHealthy.Store(false)
	order = ""
	for i := 0; i < 4; i++ {
		order += p.pick(eps, now, nil).raw
	}
	if order != "acac" && order != "caca" {
		t.Errorf("with b down: order %q", order)
	}
	if got := p.pick(eps, now, eps[0]); got != eps[2] {
		t.Errorf("skip a: got %v", got.raw)
	}
	eps[0].ejectedUntil.Store(now + int64(time.Second))
	eps[2].activeHealthy.Store(false)
	if got := p.pick(eps, now, nil); got != nil {
		t.Errorf("none available, got %s", got.raw)
	}
	if got := p.pick(eps, now+int64(2*time.Second), nil); got != eps[0] {
		t.Errorf("a's ejection is over, got %v", got)
	}
}

// Passive ejection after the threshold, for a time that doubles on repeat up to the maximum; a
// success in between resets the count of failures.
func TestPassiveEjectionBackoff(t *testing.T) {
	e := endpoints(1)[0]
	p := passivePolicy{threshold: 3, base: time.Second, maximum: 3 * time.Second}
	now := time.Now()
	e.failed(p, now)
	e.failed(p, now)
	e.succeeded()
	e.failed(p, now)
	if d := e.failed(p, now); d != 0 {
		t.Fatalf("ejected after a success reset the count: %v", d)
	}
	wants := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}
	for i, want := range wants {
		var d time.Duration
		for j := 0; j < 3 && d == 0; j++ {
			d = e.failed(p, now)
		}
		if d != want {
			t.Fatalf("ejection %d lasted %v, want %v", i+1, d, want)
		}
		if e.available(now.UnixNano()) || !e.available(now.Add(d).UnixNano()) {
			t.Fatalf("ejection %d: available before its end, or not after", i+1)
		}
		now = now.Add(d)
	}
	// A quiet spell forgets the history.
	now = now.Add(time.Hour)
	var d time.Duration
	for j := 0; j < 3 && d == 0; j++ {
		d = e.failed(p, now)
	}
	if d != time.Second {
		t.Fatalf("after an hour of quiet the ejection lasted %v, want 1s", d)
	}
	if d := e.failed(passivePolicy{threshold: -1}, now); d != 0 {
		t.Fatal("passive ejection turned off still ejected")
	}
}
