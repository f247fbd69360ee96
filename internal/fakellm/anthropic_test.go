package fakellm_test

import (
	"net/http"
	"strings"
	"testing"

	"aviary.dev/aviary/internal/fakellm"
)

type anthropicUsage struct {
	InputTokens              int `json:"input_tokens"`
	CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int `json:"cache_read_input_tokens"`
	OutputTokens             int `json:"output_tokens"`
}

type anthropicMessage struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Role       string `json:"role"`
	Model      string `json:"model"`
	Content    []struct{ Type, Text string }
	StopReason *string        `json:"stop_reason"`
	Usage      anthropicUsage `json:"usage"`
}

func messagesRequest(stream bool) map[string]any {
	return map[string]any{
		"model":      "claude-test",
		"max_tokens": 100,
		"system":     []any{map[string]any{"type": "text", "text": "Be concise. "}},
		"messages":   []any{map[string]any{"role": "user", "content": "Hi there"}},
		"stream":     stream,
	}
}

// Anthropic reports cached input apart: input_tokens + cache_read_input_tokens is the prompt.
var wantAnthropicUsage = anthropicUsage{InputTokens: 3, CacheReadInputTokens: 2, OutputTokens: 12}

func TestMessagesJSON(t *testing.T) {
	t.Parallel()
	srv := serve(t, usageOptions)
	m := decode[anthropicMessage](t, post(t, srv.URL+"/v1/messages", messagesRequest(false)), http.StatusOK)
	if !strings.HasPrefix(m.ID, "msg_") || m.Type != "message" || m.Role != "assistant" || m.Model != "claude-test" {
		t.Errorf("message %+v", m)
	}
	if len(m.Content) != 1 || m.Content[0].Type != "text" || len(strings.Fields(m.Content[0].Text)) != 5 {
		t.Errorf("content %+v, want one text block of 5 tokens", m.Content)
	}
	if m.StopReason == nil || *m.StopReason != "end_turn" {
		t.Errorf("stop_reason %v, want end_turn", m.StopReason)
	}
	if m.Usage != wantAnthropicUsage {
		t.Errorf("usage %+v, want %+v", m.Usage, wantAnthropicUsage)
	}
}

func TestMessagesStream(t *testing.T) {
	t.Parallel()
	o := usageOptions
	o.OutputTokens = 40
	srv := serve(t, o)
	evs, _ := stream(t, srv.URL+"/v1/messages", messagesRequest(true))

	var names []string
	for _, e := range evs {
		var d struct{ Type string }
		e.decode(t, &d)
		if d.Type != e.name {
			t.Errorf("event %q carries type %q", e.name, d.Type)
		}
		if e.name != "ping" {
			names = append(names, e.name)
		}
	}
	want := "message_start content_block_start " + strings.Repeat("content_block_delta ", 40) +
		"content_block_stop message_delta message_stop"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("events (pings left out)\n%s\nwant\n%s", got, want)
	}
	// A ping after the block starts, and more between deltas now and then.
	var pings int
	for _, e := range evs {
		if e.name == "ping" {
			pings++
		}
	}
	if evs[2].name != "ping" || pings < 2 {
		t.Errorf("%d pings, the third event %q; want a ping third and more later", pings, evs[2].name)
	}

	var start struct{ Message anthropicMessage }
	evs[0].decode(t, &start)
	wantStart := wantAnthropicUsage
	wantStart.OutputTokens = 1
	if m := start.Message; m.Usage != wantStart || m.Model != "claude-test" || m.StopReason != nil || len(m.Content) != 0 {
		t.Errorf("message_start %+v, want usage %+v, no content, null stop_reason", m, wantStart)
	}
	var delta struct {
		Delta struct {
			StopReason string `json:"stop_reason"`
		}
		Usage struct {
			OutputTokens int `json:"output_tokens"`
		}
	}
	evs[len(evs)-2].decode(t, &delta)
	if delta.Delta.StopReason != "end_turn" || delta.Usage.OutputTokens != 47 {
		t.Errorf("message_delta %+v, want end_turn and 47 output tokens (40 + 7 reasoning)", delta)
	}
	var text strings.Builder
	for _, e := range apis[2].contents(t, evs) {
		s, _ := apis[2].content(t, e)
		text.WriteString(s)
	}
	if !strings.HasPrefix(text.String(), "[q=0.80] ") {
		t.Errorf("text %q, want it to start with the quality marker", text.String())
	}
}

func TestMessagesMidStreamError(t *testing.T) {
	t.Parallel()
	srv := serve(t, fakellm.Options{OutputTokens: 20, MidStreamErrorRate: 1})
	evs, _ := stream(t, srv.URL+"/v1/messages", messagesRequest(true))
	last := evs[len(evs)-1]
	var e struct {
		Type  string
		Error apiError
	}
	last.decode(t, &e)
	if last.name != "error" || e.Type != "error" || e.Error.Type != "overloaded_error" {
		t.Errorf("last event %s %s, want an overloaded_error event", last.name, last.data)
	}
	if n := len(apis[2].contents(t, evs)); n < 1 || n >= 20 {
		t.Errorf("%d tokens before the error, want 1..19", n)
	}
	for _, e := range evs {
		if e.name == "message_stop" || e.name == "message_delta" {
			t.Errorf("a broken stream sent %s", e.name)
		}
	}
}

func TestMessagesMaxTokens(t *testing.T) {
	t.Parallel()
	srv := serve(t, fakellm.Options{OutputTokens: 10})
	req := messagesRequest(false)
	req["max_tokens"] = 2
	m := decode[anthropicMessage](t, post(t, srv.URL+"/v1/messages", req), http.StatusOK)
	if m.StopReason == nil || *m.StopReason != "max_tokens" || m.Usage.OutputTokens != 2 {
		t.Errorf("stop_reason %v, usage %+v; want max_tokens after 2 tokens", m.StopReason, m.Usage)
	}
}
