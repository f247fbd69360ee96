package fakellm

import (
	"net/http"
)

// messagesAPI is Anthropic Messages: POST /v1/messages.
type messagesAPI struct{}

// pingEvery is how many content deltas pass between the pings a stream carries after its
// start, so a reader meets pings between content as it would from the real API.
const pingEvery = 16

func (messagesAPI) parse(body []byte) (request, error) { return parseMessages(body) }

func (messagesAPI) writeError(w http.ResponseWriter, status int, msg string) {
	typ := "invalid_request_error"
	if status >= 500 {
		typ = "api_error"
	}
	writeJSON(w, status, anthropicError(typ, msg))
}

func anthropicError(typ, msg string) map[string]any {
	return map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}}
}

// anthropicUsage reports input tokens without the cached ones: the Messages API counts
// cache reads apart, unlike OpenAI's prompt_tokens.
func anthropicUsage(u usage) map[string]any {
	return map[string]any{
		"input_tokens":                u.input - u.cached,
		"cache_creation_input_tokens": 0,
		"cache_read_input_tokens":     u.cached,
		"output_tokens":               u.output,
	}
}

func stopReason(p *plan) string {
	switch {
	case p.truncated:
		return "max_tokens"
	case p.tool != "":
		return "tool_use"
	}
	return "end_turn"
}

// block is the answer's one content block: text, or a use of the tool (input empty while it
// streams, as the API starts it).
func block(p *plan, whole bool) map[string]any {
	if p.tool == "" {
		text := ""
		if whole {
			text = p.text()
		}
		return textBlock(text)
	}
	input := map[string]any{}
	if whole {
		input["text"] = p.text()
	}
	return map[string]any{"type": "tool_use", "id": "toolu_" + p.id, "name": p.tool, "input": input}
}

func (messagesAPI) writeJSON(w http.ResponseWriter, p *plan) {
	m := anthropicMessage(p, []any{block(p, true)}, anthropicUsage(p.usage))
	m["stop_reason"] = stopReason(p)
	writeJSON(w, http.StatusOK, m)
}

func anthropicMessage(p *plan, content []any, usage map[string]any) map[string]any {
	return map[string]any{
		"id":            "msg_" + p.id,
		"type":          "message",
		"role":          "assistant",
		"model":         p.model,
		"content":       content,
		"stop_reason":   nil,
		"stop_sequence": nil,
		"usage":         usage,
	}
}

func textBlock(text string) map[string]any { return map[string]any{"type": "text", "text": text} }

// send writes one event with its type as the SSE event name and in the data.
func (messagesAPI) send(e *events, typ string, fields map[string]any) {
	fields["type"] = typ
	e.send(typ, fields)
}

func (a messagesAPI) open(e *events, p *plan) {
	// message_start carries the input usage and one output token so far, as the API's does.
	u := anthropicUsage(p.usage)
	u["output_tokens"] = 1
	a.send(e, "message_start", map[string]any{"message": anthropicMessage(p, []any{}, u)})
	a.send(e, "content_block_start", map[string]any{"index": 0, "content_block": block(p, false)})
	a.send(e, "ping", map[string]any{})
}

func (a messagesAPI) delta(e *events, p *plan, i int) {
	if i > 0 && i%pingEvery == 0 {
		a.send(e, "ping", map[string]any{})
	}
	delta := map[string]any{"type": "text_delta", "text": p.tokens[i]}
	if p.tool != "" {
		delta = map[string]any{"type": "input_json_delta", "partial_json": p.piece(i)}
	}
	a.send(e, "content_block_delta", map[string]any{"index": 0, "delta": delta})
}

func (a messagesAPI) finish(e *events, p *plan) {
	a.send(e, "content_block_stop", map[string]any{"index": 0})
	a.send(e, "message_delta", map[string]any{
		"delta": map[string]any{"stop_reason": stopReason(p), "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": p.usage.output},
	})
	a.send(e, "message_stop", map[string]any{})
}

// fail sends the error event Anthropic sends when it is overloaded in the middle of a stream.
func (a messagesAPI) fail(e *events, _ *plan, sent int) {
	e.send("error", anthropicError("overloaded_error", "Overloaded: "+midStreamMessage(sent)))
}
