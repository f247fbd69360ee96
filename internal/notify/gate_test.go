package notify

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/polltest"
	"aviary.dev/aviary/internal/rollout"
)

// gateServer answers each GET with reply(n), n being the request's number from 1, and records
// the query it was asked with.
type gateServer struct {
	*httptest.Server
	calls atomic.Int32
	mu    sync.Mutex
	query url.Values
}

func newGateServer(t *testing.T, reply func(n int) (int, string)) *gateServer {
	t.Helper()
	s := &gateServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(s.calls.Add(1))
		s.mu.Lock()
		s.query = r.URL.Query()
		s.mu.Unlock()
		code, body := reply(n)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(s.Close)
	return s
}

func gateRun(id, gateURL string, limit int) rollout.Run {
	return rollout.Run{ID: id, Kind: rollout.GateCheck, Service: "checkout", Stable: "v1", Canary: "v2",
		Gate: &config.GateStep{URL: gateURL, Interval: config.D(10 * time.Millisecond),
			Timeout: config.D(10 * time.Second), FailureLimit: limit}} // a loaded machine's bound, not a test of it
}

func newTestGates(t *testing.T) *Gates {
	t.Helper()
	g := NewGates(GateOptions{})
	t.Cleanup(g.Close)
	return g
}

// await asks for r's verdict until it has the phase, and returns it.
func await(t *testing.T, g *Gates, r rollout.Run, phase rollout.VerdictPhase, containing string) rollout.Verdict {
	t.Helper()
	var v rollout.Verdict
	if !polltest.Until(10*time.Second, 2*time.Millisecond, func() bool {
		v = g.Verdict(r)
		return v.Phase == phase && strings.Contains(v.Message, containing)
	}) {
		t.Fatalf("no %s verdict containing %q within 10 s; last: %s %q", phase, containing, v.Phase, v.Message)
	}
	return v
}

// until waits for cond, polling, for at most 10 s (a bound for a loaded machine, not a pace).
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	polltest.Wait(t, 10*time.Second, what, cond)
}

// pollerOf is the poller of check id (nil: none).
func pollerOf(g *Gates, id string) *gatePoller {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pollers[id]
}

// stopped waits until p has returned: after that it asks its gate nothing more.
func stopped(t *testing.T, p *gatePoller) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the poller of %s still runs after 10 s", p.id)
	}
}

func TestGatePassesOn2xx(t *testing.T) {
	srv := newGateServer(t, func(int) (int, string) { return http.StatusOK, `{"message": "change window open"}` })
	g := newTestGates(t)
	r := gateRun("gate-1", srv.URL+"/approve?team=payments", 3)

	v := await(t, g, r, rollout.Pass, "answered 200")
	if !strings.Contains(v.Message, "change window open") || !strings.Contains(v.Message, srv.URL+"/approve") {
		t.Errorf("message %q should name the gate and quote its message", v.Message)
	}
	srv.mu.Lock()
	q := srv.query
	srv.mu.Unlock()
	for k, want := range map[string]string{"team": "payments", "service": "checkout", "stable": "v1", "canary": "v2"} {
		if q.Get(k) != want {
			t.Errorf("query %s = %q, want %q (asked with %v)", k, q.Get(k), want, q)
		}
	}
	stopped(t, pollerOf(g, r.ID)) // a decided poller returns
	if n := srv.calls.Load(); n != 1 {
		t.Errorf("gate asked %d times, want once: a decided gate is not asked again", n)
	}
}

func TestGateNotYetThenPass(t *testing.T) {
	var open atomic.Bool
	srv := newGateServer(t, func(int) (int, string) {
		if open.Load() {
			return http.StatusNoContent, ""
		}
		return http.StatusLocked, `{"message": "freeze until 14:00"}`
	})
	g := newTestGates(t)
	r := gateRun("gate-1", srv.URL, 1)

	if v := g.Verdict(r); v.Phase != rollout.Running {
		t.Fatalf("first verdict %s %q, want Running", v.Phase, v.Message)
	}
	v := await(t, g, r, rollout.Running, "not yet: 423")
	if !strings.Contains(v.Message, "freeze until 14:00") {
		t.Errorf("message %q should quote the gate's message", v.Message)
	}
	// Several "not yet"s: none counts towards the failure limit of 1.
	asked := srv.calls.Load()
	until(t, "the gate asked 3 more times", func() bool {
		return srv.calls.Load() >= asked+3 || g.Verdict(r).Phase != rollout.Running
	})
	if v := g.Verdict(r); v.Phase != rollout.Running {
		t.Fatalf("after several 423s: %s %q, want still Running", v.Phase, v.Message)
	}
	open.Store(true)
	await(t, g, r, rollout.Pass, "answered 204")
}

func TestGateFailsAfterFailureLimitInARow(t *testing.T) {
	srv := newGateServer(t, func(n int) (int, string) {
		if n == 2 {
			return http.StatusConflict, "" // not yet: breaks the row
		}
		return http.StatusInternalServerError, `{"message": "approvals db down"}`
	})
	g := newTestGates(t)
	r := gateRun("gate-1", srv.URL, 3)

	v := await(t, g, r, rollout.Fail, "failed 3 checks in a row")
	if !strings.Contains(v.Message, "answered 500") || !strings.Contains(v.Message, "approvals db down") {
		t.Errorf("message %q should quote the last error", v.Message)
	}
	stopped(t, pollerOf(g, r.ID)) // a decided poller returns
	if n := srv.calls.Load(); n != 5 {
		t.Errorf("gate asked %d times, want 5 (500, 409, then three 500s in a row) and no more", n)
	}
}

func TestGateTransportErrorsCountAsFailures(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	gone := srv.URL
	srv.Close()
	g := newTestGates(t)

	v := await(t, g, gateRun("gate-1", gone, 2), rollout.Fail, "failed 2 checks in a row; last: ")
	if strings.Contains(v.Message, "?") {
		t.Errorf("message %q shows the query; it may carry tokens", v.Message)
	}
}

func TestGateForgetStopsPolling(t *testing.T) {
	srv := newGateServer(t, func(int) (int, string) { return http.StatusLocked, "" })
	g := newTestGates(t)
	r := gateRun("gate-1", srv.URL, 3)

	g.Verdict(r)
	until(t, "the gate asked 3 times", func() bool { return srv.calls.Load() >= 3 })
	p := pollerOf(g, "gate-1")
	g.Forget("gate-1")
	asked := srv.calls.Load()
	select {
	case <-p.done: // Forget returns once the poller has: it asks nothing more
	default:
		t.Fatal("Forget returned while the poller still runs")
	}
	if pollerOf(g, "gate-1") != nil {
		t.Error("Forget kept the poller")
	}
	if n := srv.calls.Load(); n != asked {
		t.Errorf("gate asked %d more times after Forget", n-asked)
	}
}

func TestGateVerdictNeverWaitsForTheGate(t *testing.T) {
	release := make(chan struct{})
	srv := newGateServer(t, func(int) (int, string) { <-release; return http.StatusOK, "" })
	defer close(release) // before the server's cleanup, which waits for its handlers
	g := newTestGates(t)
	r := gateRun("gate-1", srv.URL, 3)
	r.Gate.Timeout = config.D(time.Minute)

	g.Verdict(r)
	// The gate holds the request: a Verdict that waited for it would not return.
	until(t, "the gate asked", func() bool { return srv.calls.Load() >= 1 })
	for range 3 {
		got := make(chan rollout.Verdict, 1)
		go func() { got <- g.Verdict(r) }()
		select {
		case v := <-got:
			if v.Phase != rollout.Running {
				t.Fatalf("Verdict returned %s %q while the gate holds its request, want Running", v.Phase, v.Message)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Verdict waited for the gate's answer")
		}
	}
	g.Close() // abandons the request in flight
	if v := g.Verdict(r); v.Phase != rollout.Running {
		t.Errorf("after Close: %s %q, want Running", v.Phase, v.Message)
	}
}

func TestGateRejectsChecksItCannotAnswer(t *testing.T) {
	g := newTestGates(t)
	for name, r := range map[string]rollout.Run{
		"not a gate":   {ID: "a-1", Kind: rollout.StepAnalysis, Service: "checkout"},
		"relative URL": gateRun("gate-1", "/approve", 3),
	} {
		if v := g.Verdict(r); v.Phase != rollout.Fail || v.Message == "" {
			t.Errorf("%s: %s %q, want Fail with a reason", name, v.Phase, v.Message)
		}
	}
}
