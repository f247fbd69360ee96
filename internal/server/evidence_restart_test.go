package server_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"aviary.dev/aviary/internal/analysis"
	"aviary.dev/aviary/internal/polltest"
	"aviary.dev/aviary/internal/rollout"
)

// A restart of Aviary in the middle of an analysis step resumes the rollout's test where it stood:
// the same canary and stable counts and the same evidence against the canary, from the store, not
// a new test that would start from nothing and spend alpha afresh. The canary here fails a fifth
// of its requests and the stable none, so the test has gathered evidence (not yet enough to roll
// back: one ten-second batch can multiply it by at most 10) when the load stops and Aviary
// restarts; with no traffic after the restart, any other count or evidence than before could only
// come from a test started afresh.
func TestStoryARestartResumesTheAnalysisEvidence(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	canary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" && n.Add(1)%5 == 0 {
			http.Error(w, "v2 fails a fifth", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "v2")
	}))
	t.Cleanup(canary.Close)
	s := story(t).withService(fmt.Sprintf(`
		name: shop
		release: v1
		versions:
		  - {name: v1, endpoints: {{v1}}}
		  - {name: v2, endpoints: [%q]}
		passiveHealth: {consecutiveFailures: -1}
		strategy:
		  canary:
		    steps:
		      - setWeight: 50
		      - analysis: {templates: [errors]}
	`, canary.URL)).start()
	s.startRollout("shop", "v2")
	s.waitFor("shop", rollout.Progressing, step(1))
	s.load()
	before := s.waitEvidence("shop", func(m analysis.MetricResult) bool {
		return m.Canary.Events >= 5 && m.Evidence > 2
	})
	s.ld.end() // no more traffic: what the test shows from here on is what it had
	before = s.waitEvidence("shop", func(m analysis.MetricResult) bool {
		return m.Canary.Requests == before.Canary.Requests && m.Baseline.Requests == before.Baseline.Requests
	})
	if before.Phase != analysis.Running {
		t.Fatalf("the analysis decided before the restart: %s", before.Text)
	}

	s.restart()
	after := s.waitEvidence("shop", func(analysis.MetricResult) bool { return true })
	if after.Canary.Requests != before.Canary.Requests || after.Canary.Events != before.Canary.Events ||
		after.Baseline.Requests != before.Baseline.Requests || after.Evidence != before.Evidence {
		t.Fatalf("after the restart the test shows canary %d/%d, stable %d, evidence %v; before it %d/%d, %d, %v: it did not resume",
			after.Canary.Events, after.Canary.Requests, after.Baseline.Requests, after.Evidence,
			before.Canary.Events, before.Canary.Requests, before.Baseline.Requests, before.Evidence)
	}
}

// waitEvidence polls the service's running analysis step (not its background analysis) until its first metric satisfies ok, and
// returns that metric; it fails the story after a while with what it saw last.
func (s *scenario) waitEvidence(service string, ok func(analysis.MetricResult) bool) analysis.MetricResult {
	s.t.Helper()
	var last any
	var found analysis.MetricResult
	if polltest.Until(30*time.Second, pollEach, func() bool { // the load needs a few seconds to show evidence
		var out struct {
			Runs []analysis.RunReport `json:"runs"`
		}
		s.call("GET", "/api/v1/services/"+service+"/analysis", "", &out)
		last = out
		for _, r := range out.Runs {
			if r.Kind == string(rollout.StepAnalysis) && r.Verdict == string(rollout.Running) && len(r.Metrics) > 0 && r.Metrics[0].Canary != nil && ok(r.Metrics[0]) {
				found = r.Metrics[0]
				return true
			}
		}
		return false
	}) {
		return found
	}
	s.t.Fatalf("the analysis of %s never showed what was awaited; last: %s", service, pretty(last))
	return analysis.MetricResult{}
}
