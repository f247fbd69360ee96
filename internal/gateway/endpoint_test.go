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
	pick := func(now int64, skip *endpoint) *endpoint { e, _ := p.pick(eps, now, skip); return e }
	for i := 0; i < 6; i++ {
		order += pick(now, nil).raw
	}
	if order != "abcabc" {
		t.Errorf("order %q, want abcabc", order)
	}
	eps[1].activeHealthy.Store(false)
	order = ""
	for i := 0; i < 4; i++ {
		order += pick(now, nil).raw
	}
	if order != "acac" && order != "caca" {
		t.Errorf("with b down: order %q", order)
	}
	if got := pick(now, eps[0]); got != eps[2] {
		t.Errorf("skip a: got %v", got.raw)
	}
	eps[0].ejectedUntil.Store(now + int64(time.Second))
	eps[2].activeHealthy.Store(false)
	if got := pick(now, nil); got != nil {
		t.Errorf("none available, got %s", got.raw)
	}
	if got := pick(now+int64(2*time.Second), nil); got != eps[0] {
		t.Errorf("a's ejection is over, got %v", got)
	}
}

// Passive ejection after the threshold, for a time that doubles on repeat up to the maximum; a
// success in between resets the count of failures. After an ejection the endpoint gets one trial
// request at a time: a failed trial ejects it again at once, a successful one ends the probation, and
// requests sent before the ejection count for nothing.
func TestPassiveEjectionBackoff(t *testing.T) {
	e := endpoints(1)[0]
	p := passivePolicy{threshold: 3, base: time.Second, maximum: 3 * time.Second}
	now := time.Now()
	e.failed(p, false, now)
	e.failed(p, false, now)
	e.succeeded(false)
	e.failed(p, false, now)
	if d := e.failed(p, false, now); d != 0 {
		t.Fatalf("ejected after a success reset the count: %v", d)
	}
	if d := e.failed(p, false, now); d != time.Second {
		t.Fatalf("the third failure in a row ejected for %v, want 1s", d)
	}
	e.succeeded(false)
	if d := e.failed(p, false, now); d != 0 || !e.probation.Load() {
		t.Fatal("a request sent before the ejection changed the ejection or the probation")
	}
	now = now.Add(time.Second)
	for i, want := range []time.Duration{2 * time.Second, 3 * time.Second, 3 * time.Second} {
		ok, trial := e.take(now.UnixNano())
		if !ok || !trial {
			t.Fatalf("re-admission %d: take = %v, trial %v; want the trial", i+1, ok, trial)
		}
		if ok, _ := e.take(now.UnixNano()); ok {
			t.Fatalf("re-admission %d: a second request got the endpoint while its trial was in flight", i+1)
		}
		d := e.failed(p, true, now)
		if d != want {
			t.Fatalf("failed trial %d ejected for %v, want %v", i+1, d, want)
		}
		if e.available(now.UnixNano()) || !e.available(now.Add(d).UnixNano()) {
			t.Fatalf("ejection %d: available before its end, or not after", i+1)
		}
		now = now.Add(d)
	}
	ok, trial := e.take(now.UnixNano())
	if !ok || !trial {
		t.Fatal("no trial after the last ejection")
	}
	e.succeeded(true)
	if ok, trial := e.take(now.UnixNano()); !ok || trial {
		t.Fatalf("after a successful trial: take = %v, trial %v; want an ordinary request", ok, trial)
	}
	// A quiet spell forgets the history.
	now = now.Add(time.Hour)
	var d time.Duration
	for j := 0; j < 3 && d == 0; j++ {
		d = e.failed(p, false, now)
	}
	if d != time.Second {
		t.Fatalf("after an hour of quiet the ejection lasted %v, want 1s", d)
	}
	if d := e.failed(passivePolicy{threshold: -1}, true, now); d != 0 {
		t.Fatal("passive ejection turned off still ejected")
	}
}
