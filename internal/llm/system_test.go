package llm

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// The reference: what a model is told as a system prompt, read from a request in any shape its API
// allows, as the texts in the order the model reads them, empty ones left out. It is written apart
// from the rewrite (on decoded values, not raw messages) so that the two check each other.
func systemView(api string, req map[string]any) string {
	var texts []string
	add := func(content any) {
		switch c := content.(type) {
		case string:
			texts = append(texts, c)
		case []any:
			for _, p := range c {
				if p, ok := p.(map[string]any); ok {
					if s, ok := p["text"].(string); ok {
						texts = append(texts, s)
					}
				}
			}
		}
	}
	switch api {
	case OpenAIChat:
		for _, m := range asList(req["messages"]) {
			if isSystem(m) {
				add(m["content"])
			}
		}
	case OpenAIResponses:
		add(req["instructions"])
		for _, it := range asList(req["input"]) {
			if isSystem(it) {
				add(it["content"])
			}
		}
	case Anthropic:
		add(req["system"])
	}
	var kept []string
	for _, s := range texts {
		if s != "" {
			kept = append(kept, s)
		}
	}
	return strings.Join(kept, "\n\n")
}

// rest is the request without its system prompt: the other messages or items in order, and the
// other fields.
func rest(api string, req map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range req {
		out[k] = v
	}
	delete(out, "system")
	delete(out, "instructions")
	for _, key := range []string{"messages", "input"} {
		if v, present := req[key]; present && reflect.TypeOf(v) != reflect.TypeOf([]any{}) {
			continue // Responses' input as a string
		}
		var others []any
		for _, m := range asList(req[key]) {
			if !isSystem(m) {
				others = append(others, m)
			}
		}
		out[key] = others
	}
	return out
}

func asList(v any) []map[string]any {
	list, _ := v.([]any)
	var out []map[string]any
	for _, x := range list {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func isSystem(m map[string]any) bool { return m["role"] == "system" || m["role"] == "developer" }

// Generators of every shape each API allows.
func genText(t *rapid.T, label string) string {
	return rapid.SampledFrom([]string{"", "be brief", "line one\nline two", "é ✓", `say "hi"`}).Draw(t, label)
}

func genContent(t *rapid.T, partType, label string) any {
	if rapid.Bool().Draw(t, label+" is a string") {
		return genText(t, label)
	}
	n := rapid.IntRange(0, 3).Draw(t, label+" parts")
	parts := make([]any, n)
	for i := range parts {
		parts[i] = map[string]any{"type": partType, "text": genText(t, label)}
	}
	return parts
}

func genMessages(t *rapid.T, partType, label string) []any {
	n := rapid.IntRange(0, 5).Draw(t, label+" count")
	msgs := make([]any, n)
	for i := range msgs {
		role := rapid.SampledFrom([]string{"system", "developer", "user", "assistant"}).Draw(t, label+" role")
		msgs[i] = map[string]any{"role": role, "content": genContent(t, partType, label)}
	}
	return msgs
}

func genRequest(t *rapid.T, api string) map[string]any {
	req := map[string]any{"model": "m", "temperature": 0.5}
	switch api {
	case OpenAIChat:
		if rapid.IntRange(0, 9).Draw(t, "has messages") > 0 {
			req["messages"] = genMessages(t, "text", "message")
		}
	case OpenAIResponses:
		switch rapid.IntRange(0, 2).Draw(t, "instructions shape") {
		case 1:
			req["instructions"] = genText(t, "instructions")
		case 2:
			req["instructions"] = nil
		}
		if rapid.Bool().Draw(t, "input is a string") {
			req["input"] = genText(t, "input")
		} else {
			req["input"] = genMessages(t, "input_text", "item")
		}
	case Anthropic:
		req["messages"] = []any{map[string]any{"role": "user", "content": "hi"}}
		switch rapid.IntRange(0, 2).Draw(t, "system shape") {
		case 1:
			req["system"] = genText(t, "system")
		case 2:
			req["system"] = genContent(t, "text", "system")
		}
	}
	return req
}

// The rewrite leaves exactly the version's prompt (replace), or the version's prompt before all of
// the client's (prepend), as what the model is told, in every shape; nothing else of the request
// changes.
func TestTheSystemPromptRewriteMatchesTheReference(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		api := rapid.SampledFrom([]string{OpenAIChat, OpenAIResponses, Anthropic}).Draw(t, "api")
		req := genRequest(t, api)
		rw := Rewrite{SystemPrompt: rapid.SampledFrom([]string{"NEW", "new\nprompt"}).Draw(t, "prompt"),
			Prepend: rapid.Bool().Draw(t, "prepend")}
		in, _ := json.Marshal(req)
		outBody, err := rw.Apply(api, in)
		if err != nil {
			t.Fatalf("%s %s: %v", api, in, err)
		}
		var before, after map[string]any
		_ = json.Unmarshal(in, &before)
		if err := json.Unmarshal(outBody, &after); err != nil {
			t.Fatalf("the rewrite wrote %s: %v", outBody, err)
		}
		want := rw.SystemPrompt
		if old := systemView(api, before); rw.Prepend && old != "" {
			want += "\n\n" + old
		}
		if got := systemView(api, after); got != want {
			t.Fatalf("%s prepend=%v\n in: %s\nout: %s\nthe model is told %q, want %q", api, rw.Prepend, in, outBody, got, want)
		}
		if b, a := rest(api, before), rest(api, after); !reflect.DeepEqual(b, a) {
			t.Fatalf("%s: the rest of the request changed\n in: %s\nout: %s", api, in, outBody)
		}
	})
}

// Replace keeps the place and the role of the client's first system message.
func TestReplaceKeepsTheFirstSystemMessagesPlaceAndRole(t *testing.T) {
	in := `{"messages":[{"role":"user","content":"a"},{"role":"developer","content":[{"type":"text","text":"x"}]},{"role":"system","content":"y"},{"role":"user","content":"b"}]}`
	out, err := Rewrite{SystemPrompt: "NEW"}.Apply(OpenAIChat, []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Messages []struct{ Role, Content string }
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	roles := []string{}
	for _, m := range got.Messages {
		roles = append(roles, m.Role+":"+m.Content)
	}
	if want := []string{"user:a", "developer:NEW", "user:b"}; !reflect.DeepEqual(roles, want) {
		t.Errorf("messages %v, want %v", roles, want)
	}
}
