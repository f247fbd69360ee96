package fakellm

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// openAIError is the error body of both OpenAI APIs, also sent as a chunk in the middle of a Chat
// Completions stream.
func openAIError(status int, msg string) map[string]any {
	typ := "invalid_request_error"
	if status >= 500 {
		typ = "server_error"
	}
	return map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}}
}

func midStreamMessage(sent int) string {
	return fmt.Sprintf("fakellm: injected mid-stream error (MidStreamErrorRate) after %d tokens", sent)
}

type cachedTokens struct {
	CachedTokens int `json:"cached_tokens"`
}

type reasoningTokens struct {
	ReasoningTokens int `json:"reasoning_tokens"`
}

// chatAPI is OpenAI Chat Completions: POST /v1/chat/completions.
type chatAPI struct{}

type chatUsage struct {
	PromptTokens            int             `json:"prompt_tokens"`
	CompletionTokens        int             `json:"completion_tokens"`
	TotalTokens             int             `json:"total_tokens"`
	PromptTokensDetails     cachedTokens    `json:"prompt_tokens_details"`
	CompletionTokensDetails reasoningTokens `json:"completion_tokens_details"`
}

func chatUsageOf(u usage) *chatUsage {
	return &chatUsage{
		PromptTokens:            u.input,
		CompletionTokens:        u.output,
		TotalTokens:             u.input + u.output,
		PromptTokensDetails:     cachedTokens{u.cached},
		CompletionTokensDetails: reasoningTokens{u.reasoning},
	}
}

func chatFinish(p *plan) string {
	switch {
	case p.truncated:
		return "length"
	case p.tool != "":
		return "tool_calls"
	}
	return "stop"
}

// chatMessage is a whole answer: text, or a call of the tool.
func chatMessage(p *plan) map[string]any {
	if p.tool == "" {
		return map[string]any{"role": "assistant", "content": p.text(), "refusal": nil}
	}
	return map[string]any{"role": "assistant", "content": nil, "refusal": nil, "tool_calls": []any{map[string]any{
		"id": p.callID(), "type": "function", "function": map[string]any{"name": p.tool, "arguments": p.arguments()}}}}
}

func (chatAPI) parse(body []byte) (request, error) { return parseChat(body) }

func (chatAPI) writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, openAIError(status, msg))
}

func (chatAPI) writeJSON(w http.ResponseWriter, p *plan) {
	writeJSON(w, http.StatusOK, map[string]any{
		"id":      "chatcmpl-" + p.id,
		"object":  "chat.completion",
		"created": p.created.Unix(),
		"model":   p.model,
		"choices": chatChoices(p),
		"usage":   chatUsageOf(p.usage),
	})
}

func chatChoices(p *plan) []any {
	out := make([]any, p.choices)
	for k := range out {
		out[k] = map[string]any{"index": k, "message": chatMessage(p), "logprobs": nil, "finish_reason": chatFinish(p)}
	}
	return out
}

// chatChunk is one chat.completion.chunk event. Usage is omitted unless the client asked for
// stream usage; then it is null on every chunk but the last, as the API documents.
type chatChunk struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   any          `json:"usage,omitempty"`
}

type chatChoice struct {
	Index        int       `json:"index"`
	Delta        chatDelta `json:"delta"`
	Logprobs     any       `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

type chatDelta struct {
	Role      string         `json:"role,omitempty"`
	Content   *string        `json:"content,omitempty"`
	ToolCalls []chatToolCall `json:"tool_calls,omitempty"`
}

type chatToolCall struct {
	Index    int          `json:"index"`
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"`
	Function chatFunction `json:"function"`
}

type chatFunction struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

var jsonNull = json.RawMessage("null")

func chatChunkOf(p *plan, choices ...chatChoice) chatChunk {
	c := chatChunk{ID: "chatcmpl-" + p.id, Object: "chat.completion.chunk", Created: p.created.Unix(), Model: p.model, Choices: choices}
	if p.includeUsage {
		c.Usage = jsonNull
	}
	return c
}

// open sends each choice's role chunk; a tool call's names the tool.
func (chatAPI) open(e *events, p *plan) {
	for k := range p.choices {
		d := chatDelta{Role: "assistant"}
		if p.tool == "" {
			empty := ""
			d.Content = &empty
		} else {
			d.ToolCalls = []chatToolCall{{ID: p.callID(), Type: "function", Function: chatFunction{Name: p.tool}}}
		}
		e.send("", chatChunkOf(p, chatChoice{Index: k, Delta: d}))
	}
}

// delta sends token i of every choice, a chunk each, as the API does for n > 1.
func (chatAPI) delta(e *events, p *plan, i int) {
	piece := p.piece(i)
	for k := range p.choices {
		d := chatDelta{Content: &piece}
		if p.tool != "" {
			d = chatDelta{ToolCalls: []chatToolCall{{Function: chatFunction{Arguments: piece}}}}
		}
		e.send("", chatChunkOf(p, chatChoice{Index: k, Delta: d}))
	}
}

func (chatAPI) finish(e *events, p *plan) {
	reason := chatFinish(p)
	for k := range p.choices {
		e.send("", chatChunkOf(p, chatChoice{Index: k, FinishReason: &reason}))
	}
	if p.includeUsage {
		c := chatChunkOf(p)
		c.Choices, c.Usage = []chatChoice{}, chatUsageOf(p.usage)
		e.send("", c)
	}
	e.write("", []byte("[DONE]"))
}

// fail sends an error chunk and ends the stream without [DONE], as OpenAI does when a stream
// breaks after its 200.
func (chatAPI) fail(e *events, _ *plan, sent int) {
	e.send("", openAIError(http.StatusInternalServerError, midStreamMessage(sent)))
}

// responsesAPI is OpenAI Responses: POST /v1/responses.
type responsesAPI struct{}

type responsesUsage struct {
	InputTokens         int             `json:"input_tokens"`
	InputTokensDetails  cachedTokens    `json:"input_tokens_details"`
	OutputTokens        int             `json:"output_tokens"`
	OutputTokensDetails reasoningTokens `json:"output_tokens_details"`
	TotalTokens         int             `json:"total_tokens"`
}

func responsesUsageOf(u usage) *responsesUsage {
	return &responsesUsage{
		InputTokens:         u.input,
		InputTokensDetails:  cachedTokens{u.cached},
		OutputTokens:        u.output,
		OutputTokensDetails: reasoningTokens{u.reasoning},
		TotalTokens:         u.input + u.output,
	}
}

func (responsesAPI) parse(body []byte) (request, error) { return parseResponses(body) }

func (responsesAPI) writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, openAIError(status, msg))
}

func (a responsesAPI) writeJSON(w http.ResponseWriter, p *plan) {
	writeJSON(w, http.StatusOK, a.final(p))
}

// final is the finished response: completed, or incomplete when max_output_tokens cut it short.
func (responsesAPI) final(p *plan) map[string]any {
	status := "completed"
	if p.truncated {
		status = "incomplete"
	}
	r := responseObject(p, status, []any{outputItem(p, p.text(), status)})
	r["usage"] = responsesUsageOf(p.usage)
	if p.truncated {
		r["incomplete_details"] = map[string]any{"reason": "max_output_tokens"}
	}
	return r
}

func responseObject(p *plan, status string, output []any) map[string]any {
	return map[string]any{
		"id":                 "resp_" + p.id,
		"object":             "response",
		"created_at":         p.created.Unix(),
		"status":             status,
		"model":              p.model,
		"output":             output,
		"error":              nil,
		"incomplete_details": nil,
		"usage":              nil,
	}
}

func outputMessage(p *plan, text, status string) map[string]any {
	content := []any{}
	if status != "in_progress" {
		content = append(content, outputText(text))
	}
	return map[string]any{"type": "message", "id": "msg_" + p.id, "status": status, "role": "assistant", "content": content}
}

// outputItem is the answer's one output item: a message, or a call of the tool.
func outputItem(p *plan, text, status string) map[string]any {
	if p.tool == "" {
		return outputMessage(p, text, status)
	}
	args := ""
	if status != "in_progress" {
		args = argsOpen + text + argsClose
	}
	return map[string]any{"type": "function_call", "id": "fc_" + p.id, "call_id": p.callID(), "name": p.tool,
		"arguments": args, "status": status}
}

func outputText(text string) map[string]any {
	return map[string]any{"type": "output_text", "text": text, "annotations": []any{}}
}

// send writes one Responses event: its type as the SSE event name and in the data, with the next
// sequence_number.
func (responsesAPI) send(e *events, typ string, fields map[string]any) {
	fields["type"] = typ
	fields["sequence_number"] = e.seq
	e.seq++
	e.send(typ, fields)
}

// part locates the one text part every answer has.
func part(p *plan, fields map[string]any) map[string]any {
	fields["item_id"] = "msg_" + p.id
	fields["output_index"] = 0
	fields["content_index"] = 0
	return fields
}

func (a responsesAPI) open(e *events, p *plan) {
	a.send(e, "response.created", map[string]any{"response": responseObject(p, "in_progress", []any{})})
	a.send(e, "response.in_progress", map[string]any{"response": responseObject(p, "in_progress", []any{})})
	a.send(e, "response.output_item.added", map[string]any{"output_index": 0, "item": outputItem(p, "", "in_progress")})
	if p.tool == "" {
		a.send(e, "response.content_part.added", part(p, map[string]any{"part": outputText("")}))
	}
}

func (a responsesAPI) delta(e *events, p *plan, i int) {
	if p.tool != "" {
		a.send(e, "response.function_call_arguments.delta", map[string]any{"item_id": "fc_" + p.id, "output_index": 0, "delta": p.piece(i)})
		return
	}
	a.send(e, "response.output_text.delta", part(p, map[string]any{"delta": p.tokens[i], "logprobs": []any{}}))
}

func (a responsesAPI) finish(e *events, p *plan) {
	text := p.text()
	if p.tool != "" {
		a.send(e, "response.function_call_arguments.done", map[string]any{"item_id": "fc_" + p.id, "output_index": 0, "arguments": p.arguments()})
	} else {
		a.send(e, "response.output_text.done", part(p, map[string]any{"text": text, "logprobs": []any{}}))
		a.send(e, "response.content_part.done", part(p, map[string]any{"part": outputText(text)}))
	}
	final := a.final(p)
	a.send(e, "response.output_item.done", map[string]any{"output_index": 0, "item": final["output"].([]any)[0]})
	typ := "response.completed"
	if p.truncated {
		typ = "response.incomplete"
	}
	a.send(e, typ, map[string]any{"response": final})
}

// fail ends the stream with response.failed, carrying the text and usage so far.
func (a responsesAPI) fail(e *events, p *plan, sent int) {
	r := responseObject(p, "failed", []any{outputItem(p, p.sent(sent), "incomplete")})
	r["error"] = map[string]any{"code": "server_error", "message": midStreamMessage(sent)}
	r["usage"] = responsesUsageOf(p.sentUsage(sent))
	a.send(e, "response.failed", map[string]any{"response": r})
}
