package fakellm_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"aviary.dev/aviary/internal/fakellm"
)

// fakeClock is a fakellm.Clock whose time moves only when the server sleeps, by as much as it
// sleeps, so that a test reads the pace the server keeps from the times it woke at. With a gate,
// every sleep first waits for the test to close it.
type fakeClock struct {
	mu         sync.Mutex
	start, now time.Time
	wakes      []time.Duration // when each sleep ended, from the start
	gate       chan struct{}
}

func newFakeClock(gated bool) *fakeClock {
	c := &fakeClock{start: time.Unix(1_700_000_000, 0)}
	c.now = c.start
	if gated {
		c.gate = make(chan struct{})
	}
	return c
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) bool {
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return false
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.wakes = append(c.wakes, c.now.Sub(c.start))
	return true
}

func (c *fakeClock) woke() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.wakes...)
}

func serve(t *testing.T, o fakellm.Options) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(fakellm.New(o))
	t.Cleanup(srv.Close)
	return srv
}

// post sends body as JSON and returns the response, closed when the test ends.
func post(t *testing.T, url string, body any) *http.Response {
	t.Helper()
	return postCtx(t, context.Background(), url, body)
}

func postCtx(t *testing.T, ctx context.Context, url string, body any) *http.Response {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatalf("marshal request: %v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// decode reads resp's JSON body into a T, failing the test on any other status than want.
func decode[T any](t *testing.T, resp *http.Response, want int) T {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if resp.StatusCode != want {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, want, body)
	}
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return v
}

func stats(t *testing.T, srv *httptest.Server) fakellm.Stats {
	t.Helper()
	resp, err := http.Get(srv.URL + "/__stats")
	if err != nil {
		t.Fatalf("GET /__stats: %v", err)
	}
	defer resp.Body.Close()
	return decode[fakellm.Stats](t, resp, http.StatusOK)
}

// event is one server-sent event and when it arrived, counted from the request.
type event struct {
	name, data string
	at         time.Duration
}

func (e event) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(e.data), v); err != nil {
		t.Fatalf("decode %s event %q: %v", e.name, e.data, err)
	}
}

// fields decodes an event's data as an object of raw fields.
func (e event) fields(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	e.decode(t, &m)
	return m
}

// readEvents reads a whole event stream, checking the SSE framing on the way.
func readEvents(t *testing.T, resp *http.Response, start time.Time) []event {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d, want 200; body %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q, want text/event-stream", ct)
	}
	var out []event
	var cur event
	r := bufio.NewReader(resp.Body)
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF && line == "" {
			if cur.data != "" || cur.name != "" {
				t.Fatalf("stream ended inside an event: %+v", cur)
			}
			return out
		}
		if err != nil {
			t.Fatalf("read stream: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			cur.at = time.Since(start)
			out = append(out, cur)
			cur = event{}
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if cur.data != "" {
				t.Fatalf("event with two data lines: %q", line)
			}
			cur.data = strings.TrimPrefix(line, "data: ")
		default:
			t.Fatalf("unexpected line in event stream: %q", line)
		}
	}
}

func stream(t *testing.T, url string, body map[string]any) ([]event, *http.Response) {
	t.Helper()
	start := time.Now()
	resp := post(t, url, body)
	return readEvents(t, resp, start), resp
}

// apiCase is what the tests that hold for every API need to know of one.
type apiCase struct {
	name, path string
	// body is a request asking for model; system, when set, is its system prompt.
	body func(model, system string, stream bool) map[string]any
	// content returns the text an event carries, if it carries content.
	content func(t *testing.T, e event) (string, bool)
}

var apis = []apiCase{
	{
		name: "chat", path: "/v1/chat/completions",
		body: func(model, system string, stream bool) map[string]any {
			msgs := []any{}
			if system != "" {
				msgs = append(msgs, map[string]any{"role": "system", "content": system})
			}
			msgs = append(msgs, map[string]any{"role": "user", "content": "Say something."})
			return map[string]any{"model": model, "messages": msgs, "stream": stream}
		},
		content: func(t *testing.T, e event) (string, bool) {
			var c chatChunk
			if e.data == "[DONE]" {
				return "", false
			}
			e.decode(t, &c)
			if len(c.Choices) == 0 || c.Choices[0].Delta.Content == nil || *c.Choices[0].Delta.Content == "" {
				return "", false
			}
			return *c.Choices[0].Delta.Content, true
		},
	},
	{
		name: "responses", path: "/v1/responses",
		body: func(model, system string, stream bool) map[string]any {
			b := map[string]any{"model": model, "input": "Say something.", "stream": stream}
			if system != "" {
				b["instructions"] = system
			}
			return b
		},
		content: func(t *testing.T, e event) (string, bool) {
			if e.name != "response.output_text.delta" {
				return "", false
			}
			var d struct{ Delta string }
			e.decode(t, &d)
			return d.Delta, true
		},
	},
	{
		name: "messages", path: "/v1/messages",
		body: func(model, system string, stream bool) map[string]any {
			b := map[string]any{
				"model": model, "max_tokens": 1024, "stream": stream,
				"messages": []any{map[string]any{"role": "user", "content": "Say something."}},
			}
			if system != "" {
				b["system"] = system
			}
			return b
		},
		content: func(t *testing.T, e event) (string, bool) {
			if e.name != "content_block_delta" {
				return "", false
			}
			var d struct{ Delta struct{ Type, Text string } }
			e.decode(t, &d)
			return d.Delta.Text, d.Delta.Type == "text_delta"
		},
	},
}

// contents returns the content events of a stream.
func (a apiCase) contents(t *testing.T, evs []event) []event {
	t.Helper()
	var out []event
	for _, e := range evs {
		if _, ok := a.content(t, e); ok {
			out = append(out, e)
		}
	}
	return out
}

// chatChunk is a chat.completion.chunk, or the error chunk of a broken stream.
type chatChunk struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *chatUsage `json:"usage"`
	Error *apiError  `json:"error"`
}

type chatUsage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

type apiError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}
