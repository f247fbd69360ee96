//go:build e2e

// Package analysis_test runs the judge end to end: Aviary in-process (server.Run) with its real
// gateway, real upstream servers and real HTTP load on 127.0.0.1. A canary answering 10% 5xx at
// 10% weight must be rolled back within 60 s of receiving traffic, with the reason in its status;
// a healthy canary under the same load must be promoted, run after run.
package analysis_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/test/e2e"
)

type aviary struct {
	*e2e.Aviary
	requests, ok atomic.Int64
}

func start(t *testing.T, v1, v2 string) *aviary {
	return startWith(t, v1, v2, "", "[default]")
}

// errorsOnly is a template for the promotion tests: the default errors metric with a detectable
// effect a minute of this traffic can rule out (5 points). The upstreams here answer in well under
// a millisecond, so their latency is the scheduler's noise on a busy machine; ruling out the
// default latency effect on that takes many minutes and would test the machine, not the judge.
const errorsOnly = `
analysis:
  templates:
    - name: errors-only
      metrics:
        - {name: errors, builtin: errorRate, critical: true, detectableEffect: {points: 5}}
`

// startWith starts Aviary with extra top-level config and the templates of the analysis step.
func startWith(t *testing.T, v1, v2, extra, stepTemplates string) *aviary {
	return startSteps(t, v1, v2, extra, "          - analysis: {templates: "+stepTemplates+"}\n")
}

// startSteps starts Aviary with extra top-level config and a canary at 10%, then the steps given,
// then 50%.
func startSteps(t *testing.T, v1, v2, extra, steps string) *aviary {
	cfg := fmt.Sprintf(`%s
gateway: {listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0"}
services:
  - name: shop
    versions:
      - {name: v1, endpoints: [%q]}
      - {name: v2, endpoints: [%q]}
    release: v1
    strategy:
      canary:
        steps:
          - setWeight: 10
%s          - setWeight: 50
`, extra, v1, v2, steps)
	return &aviary{Aviary: e2e.Start(t, cfg)}
}

// load sends about rps requests a second until ctx ends.
func (a *aviary) load(ctx context.Context, rps int) { a.loadSegment(ctx, rps, 0) }

// loadSegment is load with every segmentEvery-th request of each worker in the beta segment
// (header X-Segment: beta); 0: none.
func (a *aviary) loadSegment(ctx context.Context, rps, segmentEvery int) {
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second * 4 / time.Duration(rps))
			defer tick.Stop()
			for i := 1; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.GW+"/", nil)
				if segmentEvery > 0 && i%segmentEvery == 0 {
					req.Header.Set("X-Segment", "beta")
				}
				resp, err := http.DefaultClient.Do(req)
				a.requests.Add(1)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 {
						a.ok.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestAnErroringCanaryIsRolledBackWithinAMinute(t *testing.T) {
	t.Parallel()
	a := start(t, e2e.Upstream(t, "v1", 0), e2e.Upstream(t, "v2", 10))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.load(ctx, 100)
	time.Sleep(3 * time.Second) // some stable traffic first, as in life
	began := a.StartRollout("shop", "v2")
	st := a.WaitFor("shop", 75*time.Second, func(s rollout.Status) bool { return s.Phase == rollout.Degraded })
	took := time.Since(began)
	t.Logf("rolled back after %s: %s", took.Round(time.Second), st.Message)
	if took > 60*time.Second {
		t.Errorf("rolled back after %s, want within 60 s", took)
	}
	if st.CanaryWeight != 0 || st.StableVersion != "v1" || !strings.Contains(st.Message, "errors") || !strings.Contains(st.Message, "evidence") {
		t.Errorf("after the rollback: weight %d, stable %s, message %q", st.CanaryWeight, st.StableVersion, st.Message)
	}
}

func TestAHealthyCanaryIsPromotedRunAfterRun(t *testing.T) {
	t.Parallel()
	for run := range 3 {
		t.Run(fmt.Sprint("run", run), func(t *testing.T) {
			t.Parallel()
			a := startWith(t, e2e.Upstream(t, "v1", 0), e2e.Upstream(t, "v2", 0), errorsOnly, "[errors-only]")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go a.load(ctx, 100)
			time.Sleep(3 * time.Second)
			a.StartRollout("shop", "v2")
			// A pass needs a regression past the detectable effect ruled out: at 10 canary
			// requests a second, about a minute.
			st := a.WaitFor("shop", 150*time.Second, e2e.Ended)
			if st.Phase != rollout.Healthy || st.StableVersion != "v2" {
				t.Fatalf("a healthy canary: phase %s, stable %s: %s", st.Phase, st.StableVersion, st.Message)
			}
		})
	}
}

// segmentUpstream answers 500 to every fifth request of the beta segment (X-Segment: beta), and
// 200 to everyone else: the segment errs more, on every version alike.
func segmentUpstream(t *testing.T, name string) string {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Segment") == "beta" && n.Add(1)%5 == 0 {
			w.WriteHeader(http.StatusInternalServerError)
		}
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// A segment routed to the canary that errs more on both versions is not a regression of the
// canary: the judge compares only traffic placed by weight, and the healthy canary is promoted.
func TestASegmentThatErrsOnBothVersionsDoesNotRollBackAHealthyCanary(t *testing.T) {
	t.Parallel()
	a := startSteps(t, segmentUpstream(t, "v1"), segmentUpstream(t, "v2"), errorsOnly,
		"          - setHeaderRoute: {match: {header: {name: X-Segment, value: beta}}}\n"+
			"          - analysis: {templates: [errors-only]}\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.loadSegment(ctx, 100, 5) // a fifth of the traffic is the segment, which errs 20% on both versions
	for a.requests.Load() < 300 { // the stable's traffic before the rollout (the latency boundary)
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	a.StartRollout("shop", "v2")
	st := a.WaitFor("shop", 150*time.Second, e2e.Ended)
	if st.Phase != rollout.Healthy || st.StableVersion != "v2" {
		t.Fatalf("a healthy canary with an erring segment routed to it: phase %s, stable %s: %s", st.Phase, st.StableVersion, st.Message)
	}
}

// hangingUpstream answers at once, except every fifth request, which it holds until the client
// (the gateway) gives up on it.
func hangingUpstream(t *testing.T, name string) string {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" && n.Add(1)%5 == 0 {
			<-r.Context().Done()
			return
		}
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// A canary whose requests hang is rolled back while they hang: a request in flight past the
// latency boundary counts as slow before it ends. The clients wait two minutes for an answer and
// the gateway five (its response-header timeout), so no hung request has ended by the rollback.
func TestACanaryWithHangingRequestsIsRolledBackWhileTheyHang(t *testing.T) {
	t.Parallel()
	a := start(t, e2e.Upstream(t, "v1", 0), hangingUpstream(t, "v2"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Minute}
	var hung atomic.Int64
	go func() { // 100 requests a second, each on its own, so a hung one holds up no other
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			go func() {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.GW+"/", nil)
				hung.Add(1)
				resp, err := client.Do(req)
				hung.Add(-1)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
	}()
	for a.Aviary != nil && hung.Load() == 0 { // traffic flows
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	began := a.StartRollout("shop", "v2")
	st := a.WaitFor("shop", 100*time.Second, func(s rollout.Status) bool { return s.Phase == rollout.Degraded })
	t.Logf("rolled back after %s with %d requests in flight: %s", time.Since(began).Round(time.Second), hung.Load(), st.Message)
	if st.Phase != rollout.Degraded || !strings.Contains(st.Message, "latency") {
		t.Fatalf("a canary whose requests hang: phase %s: %s", st.Phase, st.Message)
	}
}
