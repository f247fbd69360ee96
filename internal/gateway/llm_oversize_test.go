package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/fakellm"
	"aviary.dev/aviary/internal/logtest"
	"aviary.dev/aviary/internal/metrics"
)

// A request over maxRequestBytes cannot get the version's rewrite: it is counted, shown in the
// status, warned about once a minute, and refused when the version says so.
func TestARequestTooLargeToRewriteIsCountedAndMayBeRefused(t *testing.T) {
	var reached atomic.Int64
	fake := fakellm.New(fakellm.Options{OutputTokens: 2})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	cfg, err := config.Parse([]byte(`
services:
  - name: fwd
    match: {hosts: [fwd.test]}
    llm: {api: openai, maxRequestBytes: 100}
    versions: [{name: v1, endpoints: ["` + up.URL + `"], llm: {systemPrompt: NEW-PROMPT}}]
  - name: strict
    match: {hosts: [strict.test]}
    llm: {api: openai, maxRequestBytes: 100}
    versions: [{name: v1, endpoints: ["` + up.URL + `"], llm: {systemPrompt: NEW-PROMPT, oversized: refuse}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	logs := &logtest.Buffer{}
	gw := New(Options{Gateway: defaultGateway(t), Metrics: metrics.NewRegistry(metrics.Options{}), Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	t.Cleanup(gw.Close)
	gw.Apply(cfg.Services)
	front := httptest.NewServer(gw)
	t.Cleanup(front.Close)

	large := `{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("x", 200) + `"}]}`
	post := func(host string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, front.URL+"/v1/chat/completions", strings.NewReader(large))
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b) + resp.Header.Get("X-Fakellm-System")
	}
	for range 2 {
		if code, got := post("fwd.test"); code != http.StatusOK || strings.Contains(got, "NEW-PROMPT") {
			t.Errorf("forward: %d %q, want the request sent on as the client wrote it", code, got)
		}
	}
	before := reached.Load()
	if code, got := post("strict.test"); code != http.StatusRequestEntityTooLarge || !strings.Contains(got, "llm.oversized: refuse") {
		t.Errorf("refuse: %d %q, want 413 saying why", code, got)
	}
	if reached.Load() != before {
		t.Error("a refused request reached the upstream")
	}
	for _, c := range []struct {
		service, action string
		want            float64
	}{{"fwd", "forward", 2}, {"strict", "refuse", 1}, {"fwd", "refuse", 0}} {
		if n := testutil.ToFloat64(gw.counters.llmOversized.WithLabelValues(c.service, "v1", c.action)); n != c.want {
			t.Errorf("%s %s: counted %g, want %g", c.service, c.action, n, c.want)
		}
	}
	for _, s := range gw.Services() {
		want := map[string]int64{"fwd": 2, "strict": 1}[s.Name]
		if got := s.Versions[0].LLMOversized; got != want {
			t.Errorf("status of %s: %d oversized requests, want %d", s.Name, got, want)
		}
	}
	if n := strings.Count(logs.String(), "cannot get the version's rewrite"); n != 2 { // one per version in the minute
		t.Errorf("%d warnings, want one per version within a minute:\n%s", n, logs.String())
	}
}
