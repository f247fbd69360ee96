package gateway

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/fakellm"
	"aviary.dev/aviary/internal/metrics"
)

// records is an LLMSink that keeps what it is given; wait returns the
// records one by one, in the order they were served.
type records struct {
	mu   sync.Mutex
	list []LLMRecord
	read int // how many of list wait has returned
	got  chan struct{}
}

func (r *records) Served(rec LLMRecord) {
	r.mu.Lock()
	r.list = append(r.list, rec)
	r.mu.Unlock()
	r.got <- struct{}{}
}

func (r *records) wait(t *testing.T) LLMRecord {
	t.Helper()
	select {
	case <-r.got:
	case <-time.After(30 * time.Second):
		t.Fatal("no LLM record")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.read++
	return r.list[r.read-1]
}

// llmGateway serves one LLM service whose version v1 is a real fake LLM server. The service has
// an evaluator, so its records carry the request and the answer (the sink here never calls it).
func llmGateway(t *testing.T, versionLLM string, o fakellm.Options) (*httptest.Server, *records) {
	up := httptest.NewServer(fakellm.New(o))
	t.Cleanup(up.Close)
	return serveLLM(t, `
services:
  - name: chat
    llm: {api: openai, includeUsage: true, evaluator: {url: "http://127.0.0.1:9/", percent: 10, maxBytes: 4096}}
    versions:
      - {name: v1, endpoints: ["`+up.URL+`"]`+versionLLM+`}
`)
}

// serveLLM serves a config through a gateway whose LLM records the test reads.
func serveLLM(t *testing.T, yaml string) (*httptest.Server, *records) {
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	rec := &records{got: make(chan struct{}, 16)}
	gw := New(Options{Gateway: defaultGateway(t), Metrics: metrics.NewRegistry(metrics.Options{}), LLM: rec})
	t.Cleanup(gw.Close)
	gw.Apply(cfg.Services)
	front := httptest.NewServer(gw)
	t.Cleanup(front.Close)
	return front, rec
}

func TestAStreamedChatIsReadBesideTheBytesAndTheUsageChunkStaysHidden(t *testing.T) {
	front, rec := llmGateway(t, `, llm: {model: gpt-new, systemPrompt: "be brief"}`,
		fakellm.Options{TTFT: 50 * time.Millisecond, TokenEvery: 5 * time.Millisecond, OutputTokens: 20, Quality: 0.8})
	body := `{"model":"gpt-old","stream":true,"messages":[{"role":"user","content":"hello there"}]}`
	resp, err := http.Post(front.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := resp.Header.Get("X-Fakellm-Model"); got != "gpt-new" {
		t.Errorf("the version's model rewrite did not reach the upstream: %q", got)
	}
	if got := resp.Header.Get("X-Fakellm-System"); got != "be brief" {
		t.Errorf("the version's system prompt did not reach the upstream: %q", got)
	}
	if resp.Header.Get(RequestIDHeader) == "" {
		t.Error("no request id for feedback")
	}
	var events []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "data: ") {
			events = append(events, line)
		}
	}
	for _, e := range events {
		if strings.Contains(e, `"usage":{`) && strings.Contains(e, `"choices":[]`) {
			t.Errorf("the usage chunk Aviary asked for reached the client: %s", e)
		}
	}
	if n := len(events); n < 20 || events[n-1] != "data: [DONE]" {
		t.Fatalf("the client got %d events, the last %q", n, events[len(events)-1])
	}
	r := rec.wait(t)
	x := r.Exchange
	if !x.Usage.Known || x.Usage.Output != 20 || x.Usage.Input == 0 || !x.Complete || x.ContentChunks != 20 {
		t.Errorf("exchange %+v", x)
	}
	if x.RequestModel != "gpt-old" || x.ResponseModel != "gpt-new" || x.VersionModel != "gpt-new" {
		t.Errorf("models asked %q, answered %q", x.RequestModel, x.ResponseModel)
	}
	if x.FirstToken < 50*time.Millisecond || x.FirstToken > 10*time.Second { // the upper bound: a loaded machine
		t.Errorf("time to first token %s, want about 50ms", x.FirstToken)
	}
	if r.Version != "v1" || r.Status != 200 || !strings.Contains(string(r.Input), "be brief") || !strings.Contains(string(r.Output), "[q=0.80]") {
		t.Errorf("record %+v", r)
	}
}

// The request and the answer are kept for the evaluator, up to its maxBytes and one more byte;
// a service without an evaluator keeps neither, and copies nothing aside.
func TestAnExchangeKeepsItsTextOnlyForAnEvaluator(t *testing.T) {
	up := httptest.NewServer(fakellm.New(fakellm.Options{OutputTokens: 100}))
	t.Cleanup(up.Close)
	body := `{"model":"m","stream":true,"messages":[{"role":"user","content":"` + strings.Repeat("long question ", 20) + `"}]}`
	for _, tc := range []struct {
		evaluator string
		keep      int
	}{{"", 0}, {", evaluator: {url: \"http://127.0.0.1:9/\", percent: 10, maxBytes: 64}", 65}} {
		front, rec := serveLLM(t, `
services:
  - name: chat
    llm: {api: openai`+tc.evaluator+`}
    versions: [{name: v1, endpoints: ["`+up.URL+`"]}]
`)
		resp, err := http.Post(front.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		r := rec.wait(t)
		if len(r.Input) != tc.keep || len(r.Output) != tc.keep {
			t.Errorf("evaluator %q: kept %d bytes of the request and %d of the answer, want %d of each",
				tc.evaluator, len(r.Input), len(r.Output), tc.keep)
		}
		if tc.keep > 0 && (!strings.HasPrefix(body, string(r.Input)) || !strings.HasPrefix(string(r.Output), "data: ")) {
			t.Errorf("kept %q and %q, want the first bytes of the request and of the answer", r.Input, r.Output)
		}
	}
}

// The client's trace context reaches the record (for the exchange's span) and the upstream.
// A request over maxRequestBytes is forwarded unread, but the evaluator still gets its first
// bytes, with the cut shown by the one byte more than it may send.
func TestAnOversizedRequestKeepsItsFirstBytesForTheEvaluator(t *testing.T) {
	up := httptest.NewServer(fakellm.New(fakellm.Options{OutputTokens: 3}))
	t.Cleanup(up.Close)
	front, rec := serveLLM(t, `
services:
  - name: chat
    llm: {api: openai, maxRequestBytes: 100, evaluator: {url: "http://127.0.0.1:9/", percent: 10, maxBytes: 64}}
    versions: [{name: v1, endpoints: ["`+up.URL+`"]}]
`)
	body := `{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("x", 200) + `"}]}`
	resp, err := http.Post(front.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if r := rec.wait(t); string(r.Input) != body[:65] || resp.StatusCode != http.StatusOK {
		t.Errorf("status %d, kept %q of the oversized request, want its first 65 bytes", resp.StatusCode, r.Input)
	}
}

func TestAnExchangeCarriesTheClientsTraceContext(t *testing.T) {
	front, rec := llmGateway(t, "", fakellm.Options{OutputTokens: 3})
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	req, _ := http.NewRequest(http.MethodPost, front.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Traceparent", tp)
	req.Header.Add("Tracestate", "vendor=x")
	req.Header.Add("Tracestate", "other=y") // W3C: several lines are one list
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if r := rec.wait(t); r.TraceParent != tp || r.TraceState != "vendor=x,other=y" {
		t.Errorf("record trace context %q / %q, want the client's", r.TraceParent, r.TraceState)
	}
}

func TestAClientThatAskedForUsageKeepsIt(t *testing.T) {
	front, rec := llmGateway(t, "", fakellm.Options{OutputTokens: 5})
	body := `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`
	resp, err := http.Post(front.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	usage := false
	for sc.Scan() {
		usage = usage || strings.Contains(sc.Text(), `"usage":{`)
	}
	if !usage {
		t.Error("the client asked for the usage chunk and did not get it")
	}
	if x := rec.wait(t).Exchange; x.Usage.Output != 5 {
		t.Errorf("usage %+v", x.Usage)
	}
}

func TestNonLLMPathsOfAnLLMServiceAreProxiedPlainly(t *testing.T) {
	front, rec := llmGateway(t, "", fakellm.Options{})
	resp, err := http.Get(front.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get(RequestIDHeader) != "" {
		t.Errorf("status %d, request id %q", resp.StatusCode, resp.Header.Get(RequestIDHeader))
	}
	select {
	case <-rec.got:
		t.Error("a health check was recorded as an LLM exchange")
	case <-time.After(50 * time.Millisecond):
	}
}

func TestAShadowCopyOfAnLLMCallIsRewrittenForItsVersionAndRecordedApart(t *testing.T) {
	v1 := httptest.NewServer(fakellm.New(fakellm.Options{OutputTokens: 3}))
	v2 := httptest.NewServer(fakellm.New(fakellm.Options{OutputTokens: 7}))
	t.Cleanup(v1.Close)
	t.Cleanup(v2.Close)
	front, rec := serveLLM(t, `
services:
  - name: chat
    llm: {api: openai, evaluator: {url: "http://127.0.0.1:9/", percent: 10, maxBytes: 4096}}
    versions:
      - {name: v1, endpoints: ["`+v1.URL+`"], llm: {systemPrompt: PRIMARY-PROMPT}}
      - {name: v2, endpoints: ["`+v2.URL+`"], llm: {model: shadow-model}}
    mirror: {version: v2, percent: 100}
`)
	req, _ := http.NewRequest(http.MethodPost, front.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := map[bool]LLMRecord{}
	for range 2 {
		r := rec.wait(t)
		got[r.Mirror] = r
	}
	p, m := got[false], got[true]
	if p.Version != "v1" || p.Exchange.Usage.Output != 3 {
		t.Errorf("primary %+v", p)
	}
	if m.Version != "v2" || m.Exchange.Usage.Output != 7 || m.Exchange.ResponseModel != "shadow-model" || m.RequestID != p.RequestID {
		t.Errorf("mirror %+v (exchange %+v)", m, m.Exchange)
	}
	// The copy is of what the client sent, with the mirror version's rewrite only.
	if !strings.Contains(string(p.Input), "PRIMARY-PROMPT") || strings.Contains(string(m.Input), "PRIMARY-PROMPT") {
		t.Errorf("primary sent %q, mirror sent %q: the mirror must not carry the primary's rewrite", p.Input, m.Input)
	}
	// For the evaluator and the trace: the copy's own request and answer, and the client's trace.
	if !strings.Contains(string(m.Input), `"shadow-model"`) || !strings.Contains(string(m.Output), "shadow-model") ||
		m.TraceParent != p.TraceParent || m.TraceParent == "" {
		t.Errorf("mirror kept request %q, answer %q, trace %q (primary's %q)", m.Input, m.Output, m.TraceParent, p.TraceParent)
	}
}

func TestEveryLLMAPIIsReadThroughTheGateway(t *testing.T) {
	up := httptest.NewServer(fakellm.New(fakellm.Options{OutputTokens: 9, TTFT: 20 * time.Millisecond}))
	t.Cleanup(up.Close)
	front, rec := serveLLM(t, `
services:
  - name: chat
    llm: {api: auto, includeUsage: true}
    versions:
      - {name: v1, endpoints: ["`+up.URL+`"], llm: {systemPrompt: "be kind"}}
`)
	for _, tc := range []struct{ api, path, body string }{
		{"openai-chat", "/v1/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`},
		{"openai-responses", "/v1/responses", `{"model":"m","stream":true,"input":"hi"}`},
		{"anthropic", "/v1/messages", `{"model":"m","stream":true,"max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`},
		{"anthropic", "/v1/messages", `{"model":"m","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`},
	} {
		req, _ := http.NewRequest(http.MethodPost, front.URL+tc.path, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("anthropic-version", "2023-06-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if got := resp.Header.Get("X-Fakellm-System"); got != "be kind" {
			t.Errorf("%s %s: the system prompt rewrite did not arrive: %q", tc.api, tc.path, got)
		}
		x := rec.wait(t).Exchange
		if x.API != tc.api || !x.Usage.Known || x.Usage.Output != 9 || !x.Complete || (x.Stream && x.FirstToken < 20*time.Millisecond) {
			t.Errorf("%s: exchange %+v", tc.path, x)
		}
	}
}

// An LLM record carries the sticky key of the request's user, so that experiments can give each
// unit its time to first token and cost; a request without one has none.
func TestLLMRecordCarriesTheStickyKey(t *testing.T) {
	up := httptest.NewServer(fakellm.New(fakellm.Options{TTFT: time.Millisecond, OutputTokens: 3}))
	t.Cleanup(up.Close)
	front, rec := serveLLM(t, `
services:
  - name: chat
    llm: {api: openai}
    stickiness: {header: X-User}
    versions:
      - {name: v1, endpoints: ["`+up.URL+`"]}
`)
	for _, user := range []string{"alice", ""} {
		req, err := http.NewRequest(http.MethodPost, front.URL+"/v1/chat/completions",
			strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if user != "" {
			req.Header.Set("X-User", user)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if r := rec.wait(t); r.Key != user || r.Exchange.FirstToken <= 0 {
			t.Errorf("record of %q: key %q, first token %v", user, r.Key, r.Exchange.FirstToken)
		}
	}
}
