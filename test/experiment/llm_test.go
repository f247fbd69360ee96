//go:build e2e

package experiment

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/experiment"
	"aviary.dev/aviary/internal/fakellm"
	"aviary.dev/aviary/internal/polltest"
	"aviary.dev/aviary/test/e2e"
)

// The LLM builtins per unit on a running gateway: two versions that are real fake LLM servers, one
// slower to its first token and wordier; each unit's time to first token and cost per answer come
// from the gateway's LLM records of its streamed chats. Costs are exact (a price of 1 a token, no
// input price), times to first token at least what the slower server waits.
func TestLLMBuiltinsPerUnit(t *testing.T) {
	slow := httptest.NewServer(fakellm.New(fakellm.Options{Name: "v1", TTFT: 40 * time.Millisecond, OutputTokens: 20}))
	t.Cleanup(slow.Close)
	fast := httptest.NewServer(fakellm.New(fakellm.Options{Name: "v2", TTFT: time.Millisecond, OutputTokens: 10}))
	t.Cleanup(fast.Close)
	a := e2e.Start(t, fmt.Sprintf(`gateway: {listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0"}
storage: {path: %q}
llm:
  prices: [{model: m, input: 0, output: 1000000}]
services:
  - name: chat
    match: {pathPrefix: /}
    llm: {api: openai, includeUsage: true}
    versions: [{name: v1, endpoints: [%q]}, {name: v2, endpoints: [%q]}]
    stickiness: {header: X-User}
experiments:
  - name: answers
    service: chat
    arms: [{name: control, version: v1}, {name: short, version: v2}]
    minUnitsPerArm: 20
    metrics:
      - {name: cost, builtin: costPerRequest}
      - {name: ttft, builtin: ttft}
`, filepath.Join(t.TempDir(), "aviary.db"), slow.URL, fast.URL))
	const users = 100
	for i := 0; i < users; i++ {
		req, _ := http.NewRequest(http.MethodPost, a.GW+"/v1/chat/completions",
			strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hello"}]}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-User", fmt.Sprint("user-", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	var res experiment.Results
	polltest.Wait(t, 60*time.Second, "both LLM metrics per unit in the results", func() bool {
		get(t, a.Admin+"/api/v1/experiments/answers/results", &res)
		n := 0
		for _, m := range res.Metrics {
			if a := m.Arms[0]; a.ControlUnits+a.ArmUnits == users {
				n++
			}
		}
		return n == 2
	})
	for _, m := range res.Metrics {
		a := m.Arms[0]
		switch m.Metric {
		case "cost":
			if a.ControlMean-a.ArmMean != 10 || a.ArmMean < 10 {
				t.Errorf("cost per unit: control %v, short %v; want 10 tokens' worth more for control", a.ControlMean, a.ArmMean)
			}
		case "ttft":
			if a.ControlMean < 0.04 || a.ArmMean <= 0 {
				t.Errorf("ttft per unit: control %v s, short %v s; want control at least 0.04", a.ControlMean, a.ArmMean)
			}
		}
	}
	if res.Decision.Winner != "short" {
		t.Errorf("decision %+v; want short, cheaper by 10 a request", res.Decision)
	}
}
