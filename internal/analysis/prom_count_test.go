package analysis

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/metrics"
	"aviary.dev/aviary/internal/polltest"
	"aviary.dev/aviary/internal/promtest"
	"aviary.dev/aviary/internal/rollout"
)

// counterExporter serves http_requests_total counters that grow with time: per version, requests
// per second and the share of them that are 5xx.
type counterExporter struct {
	start time.Time
	rates map[string][2]float64 // version → requests/s, error share
}

func (e *counterExporter) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	secs := time.Since(e.start).Seconds()
	fmt.Fprintln(w, "# TYPE http_requests_total counter")
	for v, r := range e.rates {
		n := r[0] * secs
		fmt.Fprintf(w, "http_requests_total{version=%q,code=\"200\"} %d\n", v, int64(n*(1-r[1])))
		fmt.Fprintf(w, "http_requests_total{version=%q,code=\"503\"} %d\n", v, int64(n*r[1]))
	}
}

// A Prometheus metric with requests and errors counters is judged by the sequential test: a
// canary with ten times the stable's errors is rolled back, an equal one is not, with a real
// Prometheus scraping the counters.
func TestPrometheusCountersAreJudgedCanaryAgainstBaseline(t *testing.T) {
	exp := &counterExporter{start: time.Now(), rates: map[string][2]float64{
		"v1": {200, 0.01}, "bad": {50, 0.10}, "good": {50, 0.01}}}
	srv := httptest.NewServer(exp)
	t.Cleanup(srv.Close)
	prom := promtest.Start(t, srv.URL)
	cfg, err := config.Parse([]byte(`
analysis:
  templates:
    - name: errors
      metrics:
        - name: error-ratio
          critical: true
          prometheus:
            address: ` + prom + `
            requests: sum(http_requests_total{version="{{version}}"})
            errors: sum(http_requests_total{version="{{version}}", code=~"5.."})
services:
  - name: shop
    versions: [{name: v1, endpoints: ["http://127.0.0.1:1"]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	a := New(Options{Metrics: metrics.NewRegistry(metrics.Options{}), Templates: cfg.Analysis.Templates, History: cfg.Analysis.History, Look: 200 * time.Millisecond})
	t.Cleanup(a.Close)
	now := time.Now()
	bad := rollout.Run{ID: "shop/1/0/bad", Kind: rollout.StepAnalysis, Service: "shop", Stable: "v1", Canary: "bad",
		Templates: []string{"errors"}, StartedAt: now, Weight: 20}
	good := bad
	good.ID, good.Canary = "shop/1/0/good", "good"
	var v rollout.Verdict
	for deadline := now.Add(45 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if v = a.Verdict(bad); v.Phase != rollout.Running {
			break
		}
	}
	if v.Phase != rollout.Fail || !strings.Contains(v.Message, "error-ratio") {
		t.Fatalf("a canary with 10%% errors against 1%%: %s: %s", v.Phase, v.Message)
	}
	t.Logf("rolled back after %s: %s", time.Since(now).Round(100*time.Millisecond), v.Message)
	if g := a.Verdict(good); g.Phase == rollout.Fail {
		t.Errorf("an equal canary failed: %s", g.Message)
	}
}

func TestAPrometheusComparisonIsValidatedAsOne(t *testing.T) {
	_, err := config.Parse([]byte(`
analysis:
  templates:
    - name: t
      metrics:
        - name: a
          prometheus: {address: "http://p:9090", requests: "sum(x)"}
        - name: b
          prometheus: {address: "http://p:9090", query: "q", requests: "sum(x)", errors: "sum(y)"}
        - name: c
          prometheus: {address: "http://p:9090", requests: "sum(x)", errors: "sum(y)"}
          successCondition: "result < 1"
services:
  - name: shop
    versions: [{name: v1, endpoints: ["http://127.0.0.1:1"]}]
`))
	text := fmt.Sprint(err)
	for _, want := range []string{"metrics[0].prometheus: requests and errors go together",
		"metrics[1].prometheus: set query", "metrics[2]: a prometheus metric with requests and errors"} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}
}

// A Prometheus comparison is one test per rollout, like a builtin's: the rollout's runs share it,
// and it is kept in the store and resumed by the next process exactly as it stood (the same state,
// so it decides bit for bit as the saved one would), with a real Prometheus scraping the counters.
func TestAPrometheusComparisonIsOnePerRolloutAndSurvivesARestart(t *testing.T) {
	exp := &counterExporter{start: time.Now(), rates: map[string][2]float64{"v1": {200, 0.01}, "v2": {50, 0.01}}}
	srv := httptest.NewServer(exp)
	t.Cleanup(srv.Close)
	prom := promtest.Start(t, srv.URL)
	cfg, err := config.Parse([]byte(`
analysis:
  templates:
    - name: errors
      metrics:
        - name: error-ratio
          prometheus:
            address: ` + prom + `
            requests: sum(http_requests_total{version="{{version}}"})
            errors: sum(http_requests_total{version="{{version}}", code=~"5.."})
services:
  - name: shop
    versions: [{name: v1, endpoints: ["http://127.0.0.1:1"]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	store := &memoryEvidence{}
	start := func(ids ...string) (*Analyzer, []*runner) {
		a := New(Options{Metrics: metrics.NewRegistry(metrics.Options{}), Templates: cfg.Analysis.Templates, History: cfg.Analysis.History, Evidence: store})
		a.mu.Lock()
		defer a.mu.Unlock()
		var rns []*runner
		for _, id := range ids {
			rns = append(rns, newRunner(a, rollout.Run{ID: id, Kind: rollout.StepAnalysis, Service: "shop", Stable: "v1", Canary: "v2",
				Templates: []string{"errors"}, StartedAt: time.Now(), Weight: 20}, a.templates))
		}
		return a, rns
	}
	promTest := func(rn *runner) *promCount {
		t.Helper()
		pc, ok := rn.seq[0].(*promCount)
		if !ok {
			t.Fatalf("the run judges %T, want a Prometheus count test", rn.seq[0])
		}
		return pc
	}
	a1, rns := start("shop/1/1/analysis", "shop/1/0/background")
	step, background := promTest(rns[0]), promTest(rns[1])
	if step != background {
		t.Fatal("two runs of one rollout judge the Prometheus metric with two tests, want one")
	}
	polltest.Wait(t, 60*time.Second, "a few hundred canary requests counted from Prometheus", func() bool {
		for _, rn := range rns {
			rn.look(context.Background(), time.Now())
		}
		return step.canaryN() >= 300
	})
	a1.persist("shop/1")
	step.mu.Lock()
	kept, err := json.Marshal(step.test.State())
	step.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}

	// The next process resumes the test from the store: the same state, bit for bit.
	_, rns2 := start("shop/1/1/analysis")
	resumed := promTest(rns2[0])
	got, err := json.Marshal(resumed.test.State())
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(kept) {
		t.Fatalf("after the restart the Prometheus test is\n%s\nbefore it\n%s", got, kept)
	}
	n := resumed.canaryN()
	polltest.Wait(t, 60*time.Second, "the resumed test counting new canary requests", func() bool {
		rns2[0].look(context.Background(), time.Now())
		return resumed.canaryN() >= n+100
	})
}
