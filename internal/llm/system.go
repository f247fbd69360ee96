package llm

import (
	"encoding/json"
	"fmt"
)

// The system prompt of a request, in every shape the APIs allow:
//
//   - Chat Completions: any number of messages with role system or developer, anywhere in
//     messages, each with content as a string or as a list of parts ({"type":"text","text":…}).
//   - Responses: the top-level instructions string, and items of input with role system or
//     developer (content a string or input_text parts) when input is a list.
//   - Anthropic Messages: the top-level system, a string or a list of text blocks.
//
// Replace leaves the version's prompt as the only one the model sees: the first system message
// (chat) takes it, keeping its role and place, and the others are dropped; Responses' instructions
// take it and the system items of input are dropped; Anthropic's system becomes it. Prepend puts
// the prompt before everything the client gave as a system prompt and keeps all of it: before the
// first system message's content (a string joined with a blank line, or a text part put first),
// before the instructions, or before the system string or blocks. Without a client system prompt
// either mode adds the version's prompt alone.

// isSystemRole reports whether a message or item gives instructions: role system or developer.
func isSystemRole(m map[string]json.RawMessage) bool {
	var role string
	_ = json.Unmarshal(m["role"], &role)
	return role == "system" || role == "developer"
}

// joined is the prompt before the client's, or the prompt alone.
func (rw Rewrite) joined(existing string) string {
	if rw.Prepend && existing != "" {
		return rw.SystemPrompt + "\n\n" + existing
	}
	return rw.SystemPrompt
}

// prependTo puts the prompt before content: a string, a list of parts (a text part of partType is
// put first), or nothing.
func (rw Rewrite) prependTo(content json.RawMessage, partType string) (json.RawMessage, error) {
	var text string
	if len(content) == 0 || string(content) == "null" {
		return json.Marshal(rw.SystemPrompt)
	}
	if json.Unmarshal(content, &text) == nil {
		return json.Marshal(rw.joined(text))
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(content, &parts); err != nil {
		return nil, fmt.Errorf("the system prompt is neither text nor a list of parts: %w", err)
	}
	first, err := json.Marshal(map[string]string{"type": partType, "text": rw.SystemPrompt})
	if err != nil {
		return nil, err
	}
	return json.Marshal(append([]json.RawMessage{first}, parts...))
}

// objects reads a list of JSON objects.
func objects(raw json.RawMessage, what string) ([]map[string]json.RawMessage, error) {
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("rewrite the system prompt: %s is not a list of objects: %w", what, err)
	}
	return list, nil
}

// chatSystem rewrites the system and developer messages of a chat request, or adds one first.
func (rw Rewrite) chatSystem(req map[string]json.RawMessage) error {
	var msgs []map[string]json.RawMessage
	if raw, ok := req["messages"]; ok {
		var err error
		if msgs, err = objects(raw, "messages"); err != nil {
			return err
		}
	}
	out := make([]map[string]json.RawMessage, 0, len(msgs)+1)
	seen := false
	for _, m := range msgs {
		switch {
		case !isSystemRole(m):
			out = append(out, m)
		case !seen && rw.Prepend:
			c, err := rw.prependTo(m["content"], "text")
			if err != nil {
				return fmt.Errorf("rewrite the system prompt: %w", err)
			}
			m["content"] = c
			out = append(out, m)
		case !seen: // replace: the first one takes the prompt, keeping its role and place
			c, _ := json.Marshal(rw.SystemPrompt)
			out = append(out, map[string]json.RawMessage{"role": m["role"], "content": c})
		case rw.Prepend:
			out = append(out, m)
		}
		seen = seen || isSystemRole(m)
	}
	if !seen {
		c, _ := json.Marshal(rw.SystemPrompt)
		out = append([]map[string]json.RawMessage{{"role": json.RawMessage(`"system"`), "content": c}}, out...)
	}
	b, err := json.Marshal(out)
	req["messages"] = b
	return err
}

// responsesSystem rewrites a Responses request's instructions, and on replace drops the system
// and developer items of its input.
func (rw Rewrite) responsesSystem(req map[string]json.RawMessage) error {
	var existing string
	if raw, ok := req["instructions"]; ok {
		_ = json.Unmarshal(raw, &existing) // null, or not a string: replaced
	}
	req["instructions"], _ = json.Marshal(rw.joined(existing))
	raw, ok := req["input"]
	if rw.Prepend || !ok || len(raw) == 0 || raw[0] != '[' {
		return nil // prepend keeps the client's items; a string input has none
	}
	items, err := objects(raw, "input")
	if err != nil {
		return err
	}
	kept := items[:0]
	for _, it := range items {
		if !isSystemRole(it) {
			kept = append(kept, it)
		}
	}
	req["input"], err = json.Marshal(kept)
	return err
}

// anthropicSystem rewrites `system`, a string or a list of content blocks.
func (rw Rewrite) anthropicSystem(req map[string]json.RawMessage) error {
	if !rw.Prepend {
		req["system"], _ = json.Marshal(rw.SystemPrompt)
		return nil
	}
	c, err := rw.prependTo(req["system"], "text")
	if err != nil {
		return fmt.Errorf("rewrite the system prompt: %w", err)
	}
	req["system"] = c
	return nil
}
