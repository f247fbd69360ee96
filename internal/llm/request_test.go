package llm

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
)

func TestDetect(t *testing.T) {
	anthropicHeader := http.Header{"Anthropic-Version": {"2023-06-01"}}
	tests := []struct {
		kind, path string
		h          http.Header
		want       string
	}{
		{"openai", "/v1/chat/completions", nil, OpenAIChat},
		{"openai", "/v1/chat/completions/", nil, OpenAIChat},
		{"openai", "/openai/deployments/gpt/chat/completions", nil, OpenAIChat},
		{"openai", "/v1/responses", nil, OpenAIResponses},
		{"openai", "/v1/responses/resp_123", nil, ""}, // retrieving a stored response
		{"openai", "/v1/models", nil, ""},
		{"openai", "/v1/messages", anthropicHeader, ""}, // the kind limits the family
		{"anthropic", "/v1/messages", anthropicHeader, Anthropic},
		{"anthropic", "/v1/messages", nil, Anthropic},
		{"anthropic", "/v1/messages/count_tokens", anthropicHeader, ""},
		{"anthropic", "/v1/chat/completions", nil, ""},
		{"auto", "/v1/chat/completions", nil, OpenAIChat},
		{"auto", "/v1/responses", nil, OpenAIResponses},
		{"auto", "/v1/messages", nil, Anthropic},
		{"auto", "/v1/threads/thread_abc/messages", nil, ""}, // OpenAI Assistants
		{"auto", "/v1/threads/thread_abc/messages", anthropicHeader, Anthropic},
		{"auto", "/healthz", anthropicHeader, ""},
		{"", "/v1/chat/completions", nil, ""},
		{"gemini", "/v1/chat/completions", nil, ""}, // an unknown kind is no LLM, not a guess
	}
	for _, tt := range tests {
		if got := Detect(tt.kind, tt.path, tt.h); got != tt.want {
			t.Errorf("Detect(%q, %q, %v) = %q, want %q", tt.kind, tt.path, tt.h, got, tt.want)
		}
	}
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		api, body string
		want      Request
		err       bool
	}{
		{OpenAIChat, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi \"model\": x"}]}`,
			Request{API: OpenAIChat, Model: "gpt-4o"}, false},
		{OpenAIChat, `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[]}`,
			Request{API: OpenAIChat, Model: "gpt-4o", Stream: true, IncludeUsage: true}, false},
		{OpenAIChat, ` {"stream": true, "stream_options": {"include_usage": false}} `,
			Request{API: OpenAIChat, Stream: true}, false},
		{OpenAIResponses, `{"model":"o4-mini","input":"hi","stream":true,"stream_options":{"include_usage":true}}`,
			Request{API: OpenAIResponses, Model: "o4-mini", Stream: true}, false},
		{Anthropic, `{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":false,"messages":[{"role":"user","content":"Hello"}]}`,
			Request{API: Anthropic, Model: "claude-sonnet-4-5"}, false},
		{Anthropic, `{"model":"claude-sonnet-4-5","messages":[`, Request{API: Anthropic}, true},
		{Anthropic, ``, Request{API: Anthropic}, true},
		{Anthropic, `[1]`, Request{API: Anthropic}, true},
		{"gemini", `{"model":"x"}`, Request{API: "gemini"}, true},
	}
	for _, tt := range tests {
		got, err := ParseRequest(tt.api, []byte(tt.body))
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseRequest(%s, %s) = %+v, %v; want %+v, error %v", tt.api, tt.body, got, err, tt.want, tt.err)
		}
	}
}

func TestAddIncludeUsage(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"model":"gpt-4o","stream":true}`, `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}`},
		{"{\"stream\":true\n}", "{\"stream\":true\n,\"stream_options\":{\"include_usage\":true}}"},
		{`{"stream":true,"stream_options":null}`, `{"stream":true,"stream_options":{"include_usage":true}}`},
		{`{"stream":true,"stream_options":{}}`, `{"stream":true,"stream_options":{"include_usage":true}}`},
		{`{"stream":true,"stream_options":{ }}`, `{"stream":true,"stream_options":{"include_usage":true}}`},
		{`{"stream_options":{"include_usage":false},"stream":true}`, `{"stream_options":{"include_usage":true},"stream":true}`},
		{`{"stream":true,"stream_options":{"include_obfuscation":false}}`,
			`{"stream":true,"stream_options":{"include_usage":true,"include_obfuscation":false}}`},
		// Unchanged:
		{`{"stream":true,"stream_options":{"include_usage":true}}`, ""},
		{`{"model":"gpt-4o"}`, ""},
		{`{"stream":false}`, ""},
		{`{"stream":"true"}`, ""},
		{`{"stream":true`, ""},
		{`{"stream":true,"stream_options":{"include_usage":tr}`, ""},
		{`not json`, ""},
	}
	for _, tt := range tests {
		got, changed := AddIncludeUsage([]byte(tt.in))
		if tt.want == "" {
			if changed || string(got) != tt.in {
				t.Errorf("AddIncludeUsage(%s) = %s, %v; want it unchanged", tt.in, got, changed)
			}
			continue
		}
		if !changed || string(got) != tt.want {
			t.Errorf("AddIncludeUsage(%s) = %s, %v; want %s", tt.in, got, changed, tt.want)
		}
	}
}

func FuzzAddIncludeUsage(f *testing.F) {
	for _, s := range []string{
		`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
		`{"stream":true,"stream_options":{"include_usage":false}}`,
		`{"stream":true,"stream_options":{"x":1}}`,
		`{"stream":true,"stream_options":null,"temperature":0.2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in := string(body)
		out, changed := AddIncludeUsage(body)
		if string(body) != in {
			t.Fatal("the input was modified")
		}
		if !changed {
			if string(out) != in {
				t.Fatal("unchanged but different")
			}
			return
		}
		// Something changed, so the input was a streaming request: the output is valid JSON with
		// include_usage true, and every other member is as it was.
		var before, after map[string]any
		if err := json.Unmarshal(body, &before); err != nil {
			return // the lenient scan accepted what encoding/json does not; nothing to compare
		}
		if err := json.Unmarshal(out, &after); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, out)
		}
		opts, _ := after["stream_options"].(map[string]any)
		if opts["include_usage"] != true || after["stream"] != true {
			t.Fatalf("include_usage not set: %s", out)
		}
		old, _ := before["stream_options"].(map[string]any)
		for k, v := range old {
			if k != "include_usage" && !reflect.DeepEqual(opts[k], v) {
				t.Fatalf("stream_options.%s changed: %s", k, out)
			}
		}
		delete(before, "stream_options")
		delete(after, "stream_options")
		if !reflect.DeepEqual(before, after) {
			t.Fatalf("other members changed:\n in: %s\nout: %s", body, out)
		}
	})
}
