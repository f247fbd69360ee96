package llm

import (
	"encoding/json"
	"testing"
)

func TestRewrite(t *testing.T) {
	for _, tc := range []struct {
		name, api, in string
		rw            Rewrite
		check         func(t *testing.T, out map[string]any)
	}{
		{"chat: model, params, system replaced", OpenAIChat,
			`{"model":"a","messages":[{"role":"system","content":"old"},{"role":"user","content":"hi"}],"stream":true}`,
			Rewrite{Model: "b", SystemPrompt: "new", Params: map[string]any{"temperature": 0.2}},
			func(t *testing.T, out map[string]any) {
				msgs := out["messages"].([]any)
				if out["model"] != "b" || out["temperature"] != 0.2 || out["stream"] != true ||
					msgs[0].(map[string]any)["content"] != "new" || len(msgs) != 2 {
					t.Errorf("%v", out)
				}
			}},
		{"chat: system added first when absent", OpenAIChat,
			`{"model":"a","messages":[{"role":"user","content":"hi"}]}`, Rewrite{SystemPrompt: "be brief"},
			func(t *testing.T, out map[string]any) {
				msgs := out["messages"].([]any)
				if len(msgs) != 2 || msgs[0].(map[string]any)["role"] != "system" || msgs[0].(map[string]any)["content"] != "be brief" {
					t.Errorf("%v", msgs)
				}
			}},
		{"chat: prepend", OpenAIChat,
			`{"messages":[{"role":"developer","content":"old"}]}`, Rewrite{SystemPrompt: "new", Prepend: true},
			func(t *testing.T, out map[string]any) {
				if c := out["messages"].([]any)[0].(map[string]any)["content"]; c != "new\n\nold" {
					t.Errorf("%q", c)
				}
			}},
		{"responses: instructions", OpenAIResponses, `{"model":"a","input":"hi","instructions":"old"}`,
			Rewrite{SystemPrompt: "new", Prepend: true},
			func(t *testing.T, out map[string]any) {
				if out["instructions"] != "new\n\nold" || out["input"] != "hi" {
					t.Errorf("%v", out)
				}
			}},
		{"anthropic: system string", Anthropic, `{"model":"a","system":"old","messages":[],"max_tokens":5}`,
			Rewrite{SystemPrompt: "new"},
			func(t *testing.T, out map[string]any) {
				if out["system"] != "new" || out["max_tokens"] != 5.0 {
					t.Errorf("%v", out)
				}
			}},
		{"anthropic: system blocks, prepend", Anthropic, `{"system":[{"type":"text","text":"old"}]}`,
			Rewrite{SystemPrompt: "new", Prepend: true},
			func(t *testing.T, out map[string]any) {
				blocks := out["system"].([]any)
				if len(blocks) != 2 || blocks[0].(map[string]any)["text"] != "new" || blocks[1].(map[string]any)["text"] != "old" {
					t.Errorf("%v", blocks)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.rw.Apply(tc.api, []byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			var out map[string]any
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatal(err)
			}
			tc.check(t, out)
		})
	}
	if _, err := (Rewrite{Model: "x"}).Apply(OpenAIChat, []byte(`[1,2]`)); err == nil {
		t.Error("a body that is not an object must be refused")
	}
}

// A version's parameters go under each API's own name, win over the client's, and replace the
// client's other spelling of the same parameter.
func TestParamsAreMappedPerAPI(t *testing.T) {
	rw := Rewrite{Params: map[string]any{"max_tokens": 512, "temperature": 0.2, "stop": []string{"END"}}}
	for _, tc := range []struct{ api, in, want string }{
		{OpenAIChat, `{"model":"m","max_tokens":9,"max_completion_tokens":10,"temperature":1}`,
			`{"max_completion_tokens":512,"model":"m","stop":["END"],"temperature":0.2}`},
		{OpenAIResponses, `{"model":"m","max_output_tokens":10}`,
			`{"max_output_tokens":512,"model":"m","temperature":0.2}`},
		{Anthropic, `{"model":"m","max_tokens":10,"stop_sequences":["x"]}`,
			`{"max_tokens":512,"model":"m","stop_sequences":["END"],"temperature":0.2}`},
	} {
		out, err := rw.Apply(tc.api, []byte(tc.in))
		if err != nil || string(out) != tc.want {
			t.Errorf("%s: %s (%v), want %s", tc.api, out, err, tc.want)
		}
	}
}
