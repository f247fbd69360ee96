package fakellm_test

import (
	"encoding/json"
	"strings"
	"testing"

	"aviary.dev/aviary/internal/fakellm"
)

// withTool offers a tool named lookup in each API's shape.
func withTool(api string, body map[string]any) map[string]any {
	switch api {
	case "chat":
		body["tools"] = []any{map[string]any{"type": "function", "function": map[string]any{"name": "lookup", "parameters": map[string]any{"type": "object"}}}}
	case "responses":
		body["tools"] = []any{map[string]any{"type": "function", "name": "lookup", "parameters": map[string]any{"type": "object"}}}
	case "messages":
		body["tools"] = []any{map[string]any{"name": "lookup", "input_schema": map[string]any{"type": "object"}}}
	}
	return body
}

// toolCall reads a tool call from a stream's events: the tool's name, the arguments put together
// from their pieces, and the finish reason.
func toolCall(t *testing.T, api string, evs []event) (name, args, finish string) {
	t.Helper()
	var b strings.Builder
	for _, e := range evs {
		if e.data == "[DONE]" {
			continue
		}
		var m struct {
			Choices []struct {
				Delta struct {
					ToolCalls []struct {
						Function struct{ Name, Arguments string }
					} `json:"tool_calls"`
				}
				FinishReason *string `json:"finish_reason"`
			}
			Item         struct{ Name string }
			Delta        json.RawMessage
			ContentBlock struct{ Name string } `json:"content_block"`
			Response     struct{ Status string }
		}
		e.decode(t, &m)
		switch {
		case api == "chat" && len(m.Choices) > 0:
			for _, c := range m.Choices[0].Delta.ToolCalls {
				name += c.Function.Name
				b.WriteString(c.Function.Arguments)
			}
			if f := m.Choices[0].FinishReason; f != nil {
				finish = *f
			}
		case e.name == "response.output_item.added":
			name = m.Item.Name
		case e.name == "response.function_call_arguments.delta":
			var s string
			_ = json.Unmarshal(m.Delta, &s)
			b.WriteString(s)
		case e.name == "response.completed":
			finish = m.Response.Status
		case e.name == "content_block_start":
			name = m.ContentBlock.Name
		case e.name == "content_block_delta":
			var d struct {
				PartialJSON string `json:"partial_json"`
			}
			_ = json.Unmarshal(m.Delta, &d)
			b.WriteString(d.PartialJSON)
		case e.name == "message_delta":
			var d struct {
				StopReason string `json:"stop_reason"`
			}
			_ = json.Unmarshal(m.Delta, &d)
			finish = d.StopReason
		}
	}
	return name, b.String(), finish
}

// An offered tool is called: its arguments stream piece by piece (one token each) and make a
// JSON object; the answer ends as each API ends a tool call.
func TestAToolIsCalled(t *testing.T) {
	t.Parallel()
	srv := serve(t, fakellm.Options{OutputTokens: 5, Quality: 0.7})
	wantFinish := map[string]string{"chat": "tool_calls", "responses": "completed", "messages": "tool_use"}
	for _, a := range apis {
		evs, _ := stream(t, srv.URL+a.path, withTool(a.name, a.body("m", "", true)))
		name, args, finish := toolCall(t, a.name, evs)
		var v struct{ Text string }
		if err := json.Unmarshal([]byte(args), &v); err != nil || !strings.HasPrefix(v.Text, "[q=0.70] ") || len(strings.Fields(v.Text)) != 5 {
			t.Errorf("%s: arguments %q (%v), want a JSON object whose text is the 5 tokens", a.name, args, err)
		}
		if name != "lookup" || finish != wantFinish[a.name] {
			t.Errorf("%s: called %q, finished %q; want lookup, %s", a.name, name, finish, wantFinish[a.name])
		}
		if a.contents(t, evs) != nil {
			t.Errorf("%s: a tool call streamed text too", a.name)
		}
	}
}

// A JSON answer carries the whole call; tool_choice none asks for text.
func TestAToolCallAsJSONAndToolChoiceNone(t *testing.T) {
	t.Parallel()
	srv := serve(t, fakellm.Options{OutputTokens: 3})
	body := withTool("chat", apis[0].body("m", "", false))
	got := decode[map[string]any](t, post(t, srv.URL+"/v1/chat/completions", body), 200)
	msg := got["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)
	call := msg["tool_calls"].([]any)[0].(map[string]any)["function"].(map[string]any)
	if call["name"] != "lookup" || !json.Valid([]byte(call["arguments"].(string))) || msg["content"] != nil {
		t.Errorf("message %v, want a call of lookup with JSON arguments", msg)
	}
	body["tool_choice"] = "none"
	got = decode[map[string]any](t, post(t, srv.URL+"/v1/chat/completions", body), 200)
	if msg := got["choices"].([]any)[0].(map[string]any)["message"].(map[string]any); msg["tool_calls"] != nil || msg["content"] == "" {
		t.Errorf("tool_choice none: message %v, want text", msg)
	}
	for _, a := range apis[1:] {
		got := decode[map[string]any](t, post(t, srv.URL+a.path, withTool(a.name, a.body("m", "", false))), 200)
		b, _ := json.Marshal(got)
		if !strings.Contains(string(b), `"lookup"`) {
			t.Errorf("%s: %s, want a call of lookup", a.name, b)
		}
	}
}

// n asks chat for several answers: each choice gets every token, and each counts in the usage.
func TestChatHonoursN(t *testing.T) {
	t.Parallel()
	srv := serve(t, fakellm.Options{OutputTokens: 4})
	body := apis[0].body("m", "", false)
	body["n"] = 3
	got := decode[struct {
		Choices []struct{ Index int }
		Usage   chatUsage
	}](t, post(t, srv.URL+"/v1/chat/completions", body), 200)
	if len(got.Choices) != 3 || got.Choices[2].Index != 2 || got.Usage.CompletionTokens != 12 {
		t.Errorf("%+v, want 3 choices and 12 completion tokens", got)
	}
	body["stream"], body["stream_options"] = true, map[string]any{"include_usage": true}
	evs, _ := stream(t, srv.URL+"/v1/chat/completions", body)
	perChoice := map[int]int{}
	usage := 0
	for _, e := range evs {
		if e.data == "[DONE]" {
			continue
		}
		var c chatChunk
		e.decode(t, &c)
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil && *ch.Delta.Content != "" {
				perChoice[ch.Index]++
			}
		}
		if c.Usage != nil {
			usage = c.Usage.CompletionTokens
		}
	}
	if len(perChoice) != 3 || perChoice[0] != 4 || perChoice[2] != 4 || usage != 12 {
		t.Errorf("tokens per choice %v, usage %d; want 4 for each of 3, 12 in all", perChoice, usage)
	}
	body["n"] = 0
	if resp := post(t, srv.URL+"/v1/chat/completions", body); resp.StatusCode != 400 {
		t.Errorf("n: 0 answered %d, want 400", resp.StatusCode)
	}
}
