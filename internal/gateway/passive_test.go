package gateway

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testClock is a clock that moves only when the test says so.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *testClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

const passiveYAML = `
services:
  - name: shop
    versions:
      - {name: v1, endpoints: ["{{good}}", "{{bad}}"]}
    traffic: [{version: v1, weight: 100}]
    passiveHealth: {consecutiveFailures: 3, baseEjection: 10s, maxEjection: 1m}
`

// With two endpoints and one failing every request, clients see the failures that eject it
// (consecutiveFailures) and then one per re-admission: the trial request that finds it still broken.
func TestPassiveHealthFailuresAfterEjectionAreBounded(t *testing.T) {
	clock := newTestClock()
	good := newUpstream(t, "good", nil)
	var broken atomic.Bool
	broken.Store(true)
	bad := newUpstream(t, "bad", func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() {
			http.Error(w, "broken", http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	f := newFixtureWith(t, Options{Now: clock.now}, passiveYAML, good, bad)

	failed := 0
	send := func(n int) {
		for range n {
			if code, _ := f.get(t, "/"); code != http.StatusOK {
				failed++
			}
		}
	}
	send(20)
	if failed != 3 || bad.hits.Load() != 3 {
		t.Fatalf("before the ejection: %d failed, %d sent to the broken endpoint; want 3 and 3", failed, bad.hits.Load())
	}
	const readmissions = 4
	for i := range readmissions {
		clock.advance(time.Minute + time.Second) // past any ejection
		send(20)
		if want := 3 + i + 1; failed != want || bad.hits.Load() != int64(want) {
			t.Fatalf("after re-admission %d: %d failed, %d sent to the broken endpoint; want %d and %d",
				i+1, failed, bad.hits.Load(), want, want)
		}
	}
	// Mended: its next trial succeeds and it gets its share again.
	broken.Store(false)
	clock.advance(time.Minute + time.Second)
	before := bad.hits.Load()
	send(20)
	if failed != 3+readmissions || bad.hits.Load()-before < 9 {
		t.Fatalf("after mending: %d failed (want %d), %d of 20 requests to the mended endpoint (want about half)",
			failed, 3+readmissions, bad.hits.Load()-before)
	}
}

// While a trial request is in flight, no other request goes to the endpoint on probation.
func TestPassiveHealthOneTrialAtATime(t *testing.T) {
	clock := newTestClock()
	good := newUpstream(t, "good", nil)
	var hold atomic.Bool
	release := make(chan struct{})
	stop := sync.OnceFunc(func() { close(release) })
	bad := newUpstream(t, "bad", func(w http.ResponseWriter, r *http.Request) {
		if hold.Load() {
			select {
			case <-release:
			case <-r.Context().Done(): // a request that should not have come here, given up by its client
			}
		}
		http.Error(w, "broken", http.StatusBadGateway)
	})
	f := newFixtureWith(t, Options{Now: clock.now}, passiveYAML, good, bad)
	t.Cleanup(stop) // before the servers close (cleanups run last first)
	for range 20 {
		f.get(t, "/")
	}
	if n := bad.hits.Load(); n != 3 {
		t.Fatalf("%d requests reached the broken endpoint before its ejection, want 3", n)
	}
	clock.advance(time.Minute)
	hold.Store(true)
	done := make(chan int, 20)
	for bad.hits.Load() == 3 { // send one request at a time until one is the trial, held by the endpoint
		go func() { code, _ := f.get(t, "/"); done <- code }()
		waitFor(t, func() bool { return len(done) > 0 || bad.hits.Load() > 3 }, "a request to end or reach the endpoint")
		if bad.hits.Load() == 3 {
			<-done
		}
	}
	client := &http.Client{Transport: f.srv.Client().Transport, Timeout: 5 * time.Second}
	for i := range 20 {
		resp, err := client.Get(f.srv.URL + "/")
		if err != nil {
			t.Fatalf("request %d while the trial was in flight: %v (it went to the endpoint on probation)", i+1, err)
		}
		resp.Body.Close()
		if up := resp.Header.Get("X-Upstream"); resp.StatusCode != http.StatusOK || up != "good" {
			t.Fatalf("request %d while the trial was in flight: %d from %q, want 200 from good", i+1, resp.StatusCode, up)
		}
	}
	stop()
	if code := <-done; code != http.StatusBadGateway {
		t.Errorf("the trial answered %d, want the broken endpoint's 502", code)
	}
	if n := bad.hits.Load(); n != 4 {
		t.Errorf("%d requests reached the broken endpoint, want 3 and its trial", n)
	}
}
