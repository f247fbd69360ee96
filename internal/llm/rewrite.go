package llm

import (
	"encoding/json"
	"fmt"
)

// Rewrite is what a version changes in the requests sent to it: a model, a system prompt (replaced
// or put before the client's), and parameters such as temperature or max_tokens.
type Rewrite struct {
	Model        string
	SystemPrompt string
	Prepend      bool // put SystemPrompt before the client's instead of replacing it
	Params       map[string]any
}

// Empty reports whether the rewrite changes nothing.
func (rw Rewrite) Empty() bool { return rw.Model == "" && rw.SystemPrompt == "" && len(rw.Params) == 0 }

// Apply rewrites a request body of api. It runs once per request on a body that was read anyway
// (bounded by the caller), so encoding/json is fine here; fields it does not touch keep their
// raw values (their order may change).
func (rw Rewrite) Apply(api string, body []byte) ([]byte, error) {
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("rewrite an %s request: the body is not a JSON object: %w", api, err)
	}
	set := func(key string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("rewrite %s: %w", key, err)
		}
		req[key] = b
		return nil
	}
	if rw.Model != "" {
		if err := set("model", rw.Model); err != nil {
			return nil, err
		}
	}
	for k, v := range rw.Params {
		if err := set(k, v); err != nil {
			return nil, err
		}
	}
	if rw.SystemPrompt != "" {
		var err error
		switch api {
		case OpenAIChat:
			err = rw.chatSystem(req)
		case OpenAIResponses:
			err = rw.stringField(req, "instructions")
		case Anthropic:
			err = rw.anthropicSystem(req)
		}
		if err != nil {
			return nil, err
		}
	}
	return json.Marshal(req)
}

// joined is the prompt before the client's, or the prompt alone.
func (rw Rewrite) joined(existing string) string {
	if rw.Prepend && existing != "" {
		return rw.SystemPrompt + "\n\n" + existing
	}
	return rw.SystemPrompt
}

// stringField rewrites a top-level string field (Responses' instructions).
func (rw Rewrite) stringField(req map[string]json.RawMessage, key string) error {
	var existing string
	if raw, ok := req[key]; ok {
		_ = json.Unmarshal(raw, &existing) // not a string: replaced
	}
	b, _ := json.Marshal(rw.joined(existing))
	req[key] = b
	return nil
}

// chatSystem rewrites the first system (or developer) message, or adds one first.
func (rw Rewrite) chatSystem(req map[string]json.RawMessage) error {
	var msgs []map[string]json.RawMessage
	if raw, ok := req["messages"]; ok {
		if err := json.Unmarshal(raw, &msgs); err != nil {
			return fmt.Errorf("rewrite the system prompt: messages is not a list of objects: %w", err)
		}
	}
	for _, m := range msgs {
		var role string
		_ = json.Unmarshal(m["role"], &role)
		if role != "system" && role != "developer" {
			continue
		}
		var existing string
		_ = json.Unmarshal(m["content"], &existing) // content parts: replaced by text
		m["content"], _ = json.Marshal(rw.joined(existing))
		b, err := json.Marshal(msgs)
		req["messages"] = b
		return err
	}
	sys := map[string]json.RawMessage{"role": json.RawMessage(`"system"`)}
	sys["content"], _ = json.Marshal(rw.SystemPrompt)
	b, err := json.Marshal(append([]map[string]json.RawMessage{sys}, msgs...))
	req["messages"] = b
	return err
}

// anthropicSystem rewrites `system`, a string or a list of content blocks.
func (rw Rewrite) anthropicSystem(req map[string]json.RawMessage) error {
	raw, ok := req["system"]
	var existing string
	if ok && json.Unmarshal(raw, &existing) != nil {
		var blocks []json.RawMessage
		if err := json.Unmarshal(raw, &blocks); err != nil {
			return fmt.Errorf("rewrite the system prompt: system is neither text nor a list of blocks: %w", err)
		}
		if !rw.Prepend {
			blocks = nil
		}
		first, _ := json.Marshal(map[string]string{"type": "text", "text": rw.SystemPrompt})
		b, err := json.Marshal(append([]json.RawMessage{first}, blocks...))
		req["system"] = b
		return err
	}
	b, _ := json.Marshal(rw.joined(existing))
	req["system"] = b
	return nil
}
