//go:build e2e

// Package llm_test runs LLM canaries end to end: Aviary in-process (server.Run) with its real
// gateway in front of the project's fake LLM servers, and real streaming load on 127.0.0.1.
package llm_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"aviary.dev/aviary/internal/fakellm"
	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/test/e2e"
)

func fake(t *testing.T, o fakellm.Options) string {
	srv := httptest.NewServer(fakellm.New(o))
	t.Cleanup(srv.Close)
	return srv.URL
}

type aviary struct{ *e2e.Aviary }

// start runs Aviary with a chat service of v1 and v2 (each line of versions given as YAML) and the
// llm analysis template.
func start(t *testing.T, versions, extra string) *aviary {
	return startWith(t, versions, extra, "", "")
}

// startWith adds metrics to the llm template and keys to the service's llm setting.
func startWith(t *testing.T, versions, extra, metrics, serviceLLM string) *aviary {
	cfg := fmt.Sprintf(`gateway: {listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0"}
%s
analysis:
  templates:
    - name: llm
      minimum: {duration: 15s, requests: 40}
      metrics:
        - {name: ttft, builtin: ttft, quantile: 0.9, critical: true}
        - {name: stream-errors, builtin: streamErrorRate, critical: true}
%s
services:
  - name: chat
    llm: {api: openai, includeUsage: true%s}
    versions:
%s
    release: v1
    strategy:
      defaultAnalysis: false
      canary:
        steps:
          - setWeight: 20
          - analysis: {templates: [llm]}
          - setWeight: 50
`, extra, metrics, serviceLLM, versions)
	return &aviary{e2e.Start(t, cfg)}
}

// load streams chat completions through the gateway, a few at a time, until ctx ends.
func (a *aviary) load(ctx context.Context, workers int) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				body := fmt.Sprintf(`{"model":"m","stream":true,"messages":[{"role":"user","content":"question %d of %d"}]}`, i, w)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.GW+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if resp, err := http.DefaultClient.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
}

// rollout starts a rollout to v2 and waits for it to end, Healthy or Degraded.
func (a *aviary) rollout(limit time.Duration) (rollout.Status, time.Duration) {
	began := a.StartRollout("chat", "v2")
	st := a.WaitFor("chat", limit, e2e.Ended)
	return st, time.Since(began)
}

func withLoad(t *testing.T, a *aviary) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.load(ctx, 8) }()
	t.Cleanup(func() { cancel(); <-done })
	time.Sleep(3 * time.Second) // the stable's first tokens set the boundary
}

func TestACanaryModelWithSlowerFirstTokensIsRolledBack(t *testing.T) {
	t.Parallel()
	v1 := fake(t, fakellm.Options{TTFT: 150 * time.Millisecond, TokenEvery: 2 * time.Millisecond, OutputTokens: 30})
	v2 := fake(t, fakellm.Options{TTFT: 210 * time.Millisecond, TokenEvery: 2 * time.Millisecond, OutputTokens: 30}) // +40%
	a := start(t, fmt.Sprintf("      - {name: v1, endpoints: [%q]}\n      - {name: v2, endpoints: [%q], llm: {model: m-next}}", v1, v2), "")
	withLoad(t, a)
	st, took := a.rollout(90 * time.Second)
	t.Logf("after %s: %s", took.Round(time.Second), st.Message)
	if st.Phase != rollout.Degraded || st.StableVersion != "v1" || !strings.Contains(st.Message, "first tokens slower than") || !strings.Contains(st.Message, "evidence") {
		t.Fatalf("+40%% time to first token: phase %s: %s", st.Phase, st.Message)
	}
}

func TestAPromptVariantThatHoldsIsPromoted(t *testing.T) {
	t.Parallel()
	up := fake(t, fakellm.Options{TTFT: 150 * time.Millisecond, TokenEvery: 2 * time.Millisecond, OutputTokens: 30})
	a := start(t, fmt.Sprintf("      - {name: v1, endpoints: [%q]}\n      - {name: v2, endpoints: [%q], llm: {systemPrompt: \"Answer briefly.\"}}", up, up), "")
	withLoad(t, a)
	st, _ := a.rollout(90 * time.Second)
	if st.Phase != rollout.Healthy || st.StableVersion != "v2" {
		t.Fatalf("a prompt variant as fast as the stable: phase %s: %s", st.Phase, st.Message)
	}
}

func TestACanaryModelThatCostsThirtyPercentMoreIsRolledBack(t *testing.T) {
	t.Parallel()
	v1 := fake(t, fakellm.Options{TTFT: 100 * time.Millisecond, TokenEvery: time.Millisecond, OutputTokens: 50})
	v2 := fake(t, fakellm.Options{TTFT: 100 * time.Millisecond, TokenEvery: time.Millisecond, OutputTokens: 65}) // +30% tokens
	a := startWith(t, fmt.Sprintf("      - {name: v1, endpoints: [%q]}\n      - {name: v2, endpoints: [%q], llm: {model: m-verbose}}", v1, v2),
		"llm:\n  prices: [{model: m, input: 1, output: 10}, {model: m-verbose, input: 1, output: 10}]",
		"        - {name: cost, builtin: costPerRequest, critical: true}", "")
	withLoad(t, a)
	st, took := a.rollout(120 * time.Second)
	t.Logf("after %s: %s", took.Round(time.Second), st.Message)
	if st.Phase != rollout.Degraded || !strings.Contains(st.Message, "costPerRequest") {
		t.Fatalf("+30%% cost: phase %s: %s", st.Phase, st.Message)
	}
}

func TestAPromptVariantIsPromotedWhenItsEvaluationScoresHold(t *testing.T) {
	t.Parallel()
	up := fake(t, fakellm.Options{TTFT: 100 * time.Millisecond, TokenEvery: time.Millisecond, OutputTokens: 30, Quality: 0.85})
	a := startWith(t, fmt.Sprintf("      - {name: v1, endpoints: [%q]}\n      - {name: v2, endpoints: [%q], llm: {systemPrompt: \"Answer briefly.\"}}", up, up),
		"", "        - {name: quality, builtin: evaluation, score: quality, critical: true}",
		fmt.Sprintf(", evaluator: {url: %q, percent: 50}", up+"/v1/evaluate"))
	withLoad(t, a)
	st, _ := a.rollout(120 * time.Second)
	if st.Phase != rollout.Healthy || st.StableVersion != "v2" {
		t.Fatalf("a prompt variant whose evaluation scores hold: phase %s: %s", st.Phase, st.Message)
	}
	resp, err := http.Get(a.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	metrics, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(metrics), `aviary_evaluation_score_count{name="quality",role="primary",service="chat",version="v2"}`) {
		t.Errorf("no evaluation scores of v2 were measured:\n%s", grepLines(string(metrics), "aviary_evaluation"))
	}
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
