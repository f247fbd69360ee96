package llm

import (
	"encoding/json"
	"fmt"
)

// Rewrite is what a version changes in the requests sent to it: a model, a system prompt (replaced
// or put before the client's), and parameters such as temperature or max_tokens, by the names
// params.go knows, each mapped to the field of the API at hand.
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
	// The version's parameters win over the client's, under the API's own name for each, and
	// replace the client's other spellings of the same parameter. The config refuses a parameter
	// that an API of the service lacks; were one left, it would not be sent.
	for k, v := range rw.Params {
		field, others := paramField(api, k)
		if field == "" {
			continue
		}
		for _, o := range others {
			delete(req, o)
		}
		if err := set(field, v); err != nil {
			return nil, err
		}
	}
	if rw.SystemPrompt != "" {
		var err error
		switch api {
		case OpenAIChat:
			err = rw.chatSystem(req)
		case OpenAIResponses:
			err = rw.responsesSystem(req)
		case Anthropic:
			err = rw.anthropicSystem(req)
		}
		if err != nil {
			return nil, err
		}
	}
	return json.Marshal(req)
}
