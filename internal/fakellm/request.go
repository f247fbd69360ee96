package fakellm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// request is what the server needs from an LLM request, whatever its API.
type request struct {
	model        string
	system       *string // nil: the request has no system prompt
	temperature  *float64
	maxTokens    int // 0: not limited by the request
	stream       bool
	includeUsage bool   // OpenAI Chat: stream_options.include_usage
	promptChars  int    // characters of text in the prompt, system prompt included
	choices      int    // OpenAI Chat: n, how many answers (1 when absent)
	tool         string // the tool the answer calls: the first function tool offered, unless tool_choice is none
}

// maxBodyBytes bounds a request body; prompts in tests are far smaller.
const maxBodyBytes = 16 << 20

// message is a chat message of either API. Content is a string or an array of parts.
type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// isSystem reports whether a message carries a system prompt. OpenAI's newer models take it in a
// "developer" message.
func (m message) isSystem() bool { return m.Role == "system" || m.Role == "developer" }

func parseChat(body []byte) (request, error) {
	var b struct {
		Model         string    `json:"model"`
		Messages      []message `json:"messages"`
		Stream        bool      `json:"stream"`
		StreamOptions *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
		Temperature         *float64 `json:"temperature"`
		MaxTokens           *int     `json:"max_tokens"`
		MaxCompletionTokens *int     `json:"max_completion_tokens"`
		N                   *int     `json:"n"`
		Tools               []struct {
			Type     string `json:"type"`
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		} `json:"tools"`
		ToolChoice json.RawMessage `json:"tool_choice"`
	}
	if err := decode(body, &b); err != nil {
		return request{}, err
	}
	if len(b.Messages) == 0 {
		return request{}, errors.New("messages: required, and must not be empty")
	}
	r := request{model: b.Model, temperature: b.Temperature, stream: b.Stream, choices: 1}
	if b.N != nil {
		if *b.N < 1 || *b.N > maxChoices {
			return request{}, fmt.Errorf("n: %d must be 1..%d", *b.N, maxChoices)
		}
		r.choices = *b.N
	}
	for _, t := range b.Tools {
		if t.Type == "function" && t.Function.Name != "" && r.tool == "" && !noTool(b.ToolChoice) {
			r.tool = t.Function.Name
		}
	}
	r.includeUsage = b.StreamOptions != nil && b.StreamOptions.IncludeUsage
	r.system, r.promptChars = fromMessages(b.Messages)
	// max_completion_tokens replaced max_tokens; a request carrying both means the newer one.
	var err error
	if b.MaxCompletionTokens != nil {
		r.maxTokens, err = limit("max_completion_tokens", b.MaxCompletionTokens)
	} else {
		r.maxTokens, err = limit("max_tokens", b.MaxTokens)
	}
	if err != nil {
		return request{}, err
	}
	return r, r.check()
}

func parseResponses(body []byte) (request, error) {
	var b struct {
		Model           string          `json:"model"`
		Input           json.RawMessage `json:"input"`
		Instructions    *string         `json:"instructions"`
		Stream          bool            `json:"stream"`
		Temperature     *float64        `json:"temperature"`
		MaxOutputTokens *int            `json:"max_output_tokens"`
		Tools           []struct {
			Type string `json:"type"`
			Name string `json:"name"`
		} `json:"tools"`
		ToolChoice json.RawMessage `json:"tool_choice"`
	}
	if err := decode(body, &b); err != nil {
		return request{}, err
	}
	r := request{model: b.Model, temperature: b.Temperature, stream: b.Stream, choices: 1}
	for _, t := range b.Tools {
		if t.Type == "function" && t.Name != "" && r.tool == "" && !noTool(b.ToolChoice) {
			r.tool = t.Name
		}
	}
	var err error
	if r.maxTokens, err = limit("max_output_tokens", b.MaxOutputTokens); err != nil {
		return request{}, err
	}
	// Input is a string (one user message) or an array of input items.
	var text string
	var items []message
	switch {
	case json.Unmarshal(b.Input, &text) == nil:
		r.promptChars = utf8.RuneCountInString(text)
	case json.Unmarshal(b.Input, &items) == nil && len(items) > 0:
		r.system, r.promptChars = fromMessages(items)
	default:
		return request{}, errors.New("input: required, a string or a non-empty array of input items")
	}
	if b.Instructions != nil {
		r.system = b.Instructions
		r.promptChars += utf8.RuneCountInString(*b.Instructions)
	}
	return r, r.check()
}

func parseMessages(body []byte) (request, error) {
	var b struct {
		Model       string          `json:"model"`
		System      json.RawMessage `json:"system"`
		Messages    []message       `json:"messages"`
		Stream      bool            `json:"stream"`
		Temperature *float64        `json:"temperature"`
		MaxTokens   *int            `json:"max_tokens"`
		Tools       []struct {
			Name string `json:"name"`
		} `json:"tools"`
		ToolChoice *struct {
			Type string `json:"type"`
		} `json:"tool_choice"`
	}
	if err := decode(body, &b); err != nil {
		return request{}, err
	}
	if len(b.Messages) == 0 {
		return request{}, errors.New("messages: required, and must not be empty")
	}
	// The Messages API requires max_tokens; so does this fake, so that a rewrite that drops it
	// fails here as it would in production.
	if b.MaxTokens == nil {
		return request{}, errors.New("max_tokens: required by the Messages API")
	}
	r := request{model: b.Model, temperature: b.Temperature, stream: b.Stream, choices: 1}
	if len(b.Tools) > 0 && b.Tools[0].Name != "" && (b.ToolChoice == nil || b.ToolChoice.Type != "none") {
		r.tool = b.Tools[0].Name
	}
	var err error
	if r.maxTokens, err = limit("max_tokens", b.MaxTokens); err != nil {
		return request{}, err
	}
	_, r.promptChars = fromMessages(b.Messages)
	if len(b.System) > 0 && string(b.System) != "null" {
		sys := textOf(b.System)
		r.system = &sys
		r.promptChars += utf8.RuneCountInString(sys)
	}
	return r, r.check()
}

// maxChoices bounds n: the fake plans every answer before it writes one.
const maxChoices = 16

// noTool reports whether an OpenAI tool_choice forbids calling a tool.
func noTool(choice json.RawMessage) bool {
	var s string
	return json.Unmarshal(choice, &s) == nil && s == "none"
}

func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("request body is not the JSON this API takes: %w", err)
	}
	return nil
}

// check reports what every API rejects.
func (r request) check() error {
	if r.model == "" {
		return errors.New("model: required")
	}
	return nil
}

// limit returns an output token limit field's value, 0 when absent.
func limit(field string, v *int) (int, error) {
	switch {
	case v == nil:
		return 0, nil
	case *v < 1:
		return 0, fmt.Errorf("%s: %d must be >= 1", field, *v)
	}
	return *v, nil
}

// fromMessages returns the first system message's text and the characters of all messages.
func fromMessages(msgs []message) (system *string, chars int) {
	for _, m := range msgs {
		t := textOf(m.Content)
		chars += utf8.RuneCountInString(t)
		if system == nil && m.isSystem() {
			system = &t
		}
	}
	return system, chars
}

// textOf returns the text of a content field: a string, or the text parts of an array of parts
// (OpenAI {"type":"text","text":...}, Responses "input_text", Anthropic text blocks, and blocks
// nesting more content, such as tool results). Other parts (images, audio) count as no text.
func textOf(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Text    string          `json:"text"`
		Content json.RawMessage `json:"content"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return ""
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
		if len(p.Content) > 0 {
			b.WriteString(textOf(p.Content))
		}
	}
	return b.String()
}

// echo tells the client what the server received, so a test can see that the gateway rewrote the
// request: X-Fakellm-Model, X-Fakellm-System, X-Fakellm-Temperature and X-Fakellm-Max-Tokens,
// each present only when the request carried the field.
func echo(h http.Header, r request) {
	h.Set("X-Fakellm-Model", r.model)
	if r.system != nil {
		h.Set("X-Fakellm-System", headerSafe(*r.system))
	}
	if r.temperature != nil {
		h.Set("X-Fakellm-Temperature", strconv.FormatFloat(*r.temperature, 'g', -1, 64))
	}
	if r.maxTokens > 0 {
		h.Set("X-Fakellm-Max-Tokens", strconv.Itoa(r.maxTokens))
	}
}

// headerSafe percent-encodes the bytes a header value cannot carry (controls such as newlines,
// and bytes outside ASCII) and '%' itself, so url.PathUnescape gives back the exact prompt while a
// plain ASCII prompt reads as it is.
func headerSafe(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
