package fakellm_test

import (
	"net/http"
	"strings"
	"testing"

	"aviary.dev/aviary/internal/fakellm"
)

// The prompt below is 12 characters of system prompt and 8 of user text: 5 input tokens at the
// default 0.25 tokens per character.
var usageOptions = fakellm.Options{OutputTokens: 5, CachedInputTokens: 2, ReasoningTokens: 7, Quality: 0.8}

func chatRequest(stream bool) map[string]any {
	return map[string]any{
		"model": "gpt-test",
		"messages": []any{
			map[string]any{"role": "system", "content": "Be concise. "},
			map[string]any{"role": "user", "content": []any{map[string]any{"type": "text", "text": "Hi there"}}},
		},
		"stream": stream,
	}
}

func TestChatJSON(t *testing.T) {
	t.Parallel()
	srv := serve(t, usageOptions)
	body := decode[chatCompletion](t, post(t, srv.URL+"/v1/chat/completions", chatRequest(false)), http.StatusOK)
	if !strings.HasPrefix(body.ID, "chatcmpl-") || body.Object != "chat.completion" || body.Model != "gpt-test" {
		t.Errorf("id %q, object %q, model %q; want chatcmpl-…, chat.completion, gpt-test", body.ID, body.Object, body.Model)
	}
	if len(body.Choices) != 1 {
		t.Fatalf("%d choices, want 1", len(body.Choices))
	}
	c := body.Choices[0]
	if c.Message.Role != "assistant" || c.FinishReason != "stop" {
		t.Errorf("role %q, finish_reason %q; want assistant, stop", c.Message.Role, c.FinishReason)
	}
	if words := strings.Fields(c.Message.Content); len(words) != 5 || words[0] != "[q=0.80]" {
		t.Errorf("content %q: want 5 words, the first [q=0.80]", c.Message.Content)
	}
	want := chatUsage{PromptTokens: 5, CompletionTokens: 12, TotalTokens: 17}
	want.PromptTokensDetails.CachedTokens = 2
	want.CompletionTokensDetails.ReasoningTokens = 7
	if body.Usage != want {
		t.Errorf("usage %+v, want %+v", body.Usage, want)
	}
}

type chatCompletion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage chatUsage `json:"usage"`
}

func TestChatStream(t *testing.T) {
	t.Parallel()
	for _, includeUsage := range []bool{false, true} {
		srv := serve(t, usageOptions)
		req := chatRequest(true)
		if includeUsage {
			req["stream_options"] = map[string]any{"include_usage": true}
		}
		evs, _ := stream(t, srv.URL+"/v1/chat/completions", req)

		// role chunk, 5 tokens, finish chunk, [usage chunk], [DONE]
		wantEvents := 8 + map[bool]int{false: 0, true: 1}[includeUsage]
		if len(evs) != wantEvents {
			t.Fatalf("include_usage %v: %d events, want %d: %+v", includeUsage, len(evs), wantEvents, evs)
		}
		if last := evs[len(evs)-1]; last.data != "[DONE]" || last.name != "" {
			t.Errorf("last event %+v, want data: [DONE]", last)
		}
		chunks := make([]chatChunk, len(evs)-1)
		for i := range chunks {
			evs[i].decode(t, &chunks[i])
			if chunks[i].Object != "chat.completion.chunk" || chunks[i].Model != "gpt-test" || chunks[i].ID != chunks[0].ID {
				t.Errorf("chunk %d: object %q model %q id %q", i, chunks[i].Object, chunks[i].Model, chunks[i].ID)
			}
			// With include_usage every chunk carries "usage", null on all but the usage chunk;
			// without it no chunk does.
			_, hasUsage := evs[i].fields(t)["usage"]
			if hasUsage != includeUsage {
				t.Errorf("include_usage %v: chunk %d has usage field: %v", includeUsage, i, hasUsage)
			}
		}
		role := chunks[0].Choices[0]
		if role.Delta.Role != "assistant" || role.Delta.Content == nil || *role.Delta.Content != "" {
			t.Errorf("first chunk %+v, want role assistant and empty content", role.Delta)
		}
		var text strings.Builder
		for i, c := range chunks[1:6] {
			d := c.Choices[0]
			if d.Delta.Content == nil || d.FinishReason != nil || d.Delta.Role != "" || c.Usage != nil {
				t.Fatalf("token chunk %d: %+v", i, c)
			}
			text.WriteString(*d.Delta.Content)
		}
		if w := strings.Fields(text.String()); len(w) != 5 || w[0] != "[q=0.80]" {
			t.Errorf("streamed text %q: want 5 words, the first [q=0.80]", text.String())
		}
		if f := chunks[6].Choices[0]; f.FinishReason == nil || *f.FinishReason != "stop" || f.Delta.Content != nil {
			t.Errorf("finish chunk %+v, want finish_reason stop and an empty delta", f)
		}
		if includeUsage {
			u := chunks[7]
			if u.Choices == nil || len(u.Choices) != 0 || u.Usage == nil || u.Usage.TotalTokens != 17 ||
				u.Usage.PromptTokensDetails.CachedTokens != 2 || u.Usage.CompletionTokensDetails.ReasoningTokens != 7 {
				t.Errorf("usage chunk %+v, want empty choices and usage of 17 tokens", u)
			}
		}
	}
}

func TestChatMidStreamError(t *testing.T) {
	t.Parallel()
	srv := serve(t, fakellm.Options{OutputTokens: 20, MidStreamErrorRate: 1})
	req := chatRequest(true)
	req["stream_options"] = map[string]any{"include_usage": true}
	evs, _ := stream(t, srv.URL+"/v1/chat/completions", req)
	var last chatChunk
	evs[len(evs)-1].decode(t, &last)
	if last.Error == nil || last.Error.Type != "server_error" || last.Error.Message == "" {
		t.Fatalf("last event %q, want an error chunk", evs[len(evs)-1].data)
	}
	tokens := len(apis[0].contents(t, evs))
	if tokens < 1 || tokens >= 20 {
		t.Errorf("%d tokens before the error, want 1..19", tokens)
	}
	for _, e := range evs {
		if e.data == "[DONE]" {
			t.Errorf("a broken stream sent [DONE]")
		}
	}
	if got := stats(t, srv); got.MidStreamErrors != 1 || got.Streams != 1 || got.Errors != 0 {
		t.Errorf("stats %+v, want 1 stream, 1 mid-stream error", got.Counts)
	}
}

// maxTokens cuts the answer short, with the API's finish reason for it.
func TestChatMaxTokens(t *testing.T) {
	t.Parallel()
	srv := serve(t, fakellm.Options{OutputTokens: 10})
	req := chatRequest(false)
	req["max_completion_tokens"] = 3
	body := decode[chatCompletion](t, post(t, srv.URL+"/v1/chat/completions", req), http.StatusOK)
	if c := body.Choices[0]; len(strings.Fields(c.Message.Content)) != 3 || c.FinishReason != "length" || body.Usage.CompletionTokens != 3 {
		t.Errorf("choice %+v, usage %+v: want 3 tokens, finish_reason length", c, body.Usage)
	}
}

type responsesUsage struct {
	InputTokens        int `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int `json:"total_tokens"`
}

type response struct {
	ID     string `json:"id"`
	Object string `json:"object"`
	Status string `json:"status"`
	Model  string `json:"model"`
	Output []struct {
		Type, ID, Status, Role string
		Content                []struct{ Type, Text string }
	} `json:"output"`
	Usage             *responsesUsage `json:"usage"`
	Error             *struct{ Code, Message string }
	IncompleteDetails *struct{ Reason string } `json:"incomplete_details"`
}

func responsesRequest(stream bool) map[string]any {
	return map[string]any{
		"model":        "gpt-test",
		"instructions": "Be concise. ",
		"input": []any{map[string]any{"role": "user", "content": []any{
			map[string]any{"type": "input_text", "text": "Hi there"},
		}}},
		"stream": stream,
	}
}

func TestResponsesJSON(t *testing.T) {
	t.Parallel()
	srv := serve(t, usageOptions)
	r := decode[response](t, post(t, srv.URL+"/v1/responses", responsesRequest(false)), http.StatusOK)
	if !strings.HasPrefix(r.ID, "resp_") || r.Object != "response" || r.Status != "completed" || r.Model != "gpt-test" {
		t.Errorf("response %+v", r)
	}
	if len(r.Output) != 1 || r.Output[0].Type != "message" || r.Output[0].Role != "assistant" || len(r.Output[0].Content) != 1 {
		t.Fatalf("output %+v, want one assistant message", r.Output)
	}
	if c := r.Output[0].Content[0]; c.Type != "output_text" || len(strings.Fields(c.Text)) != 5 {
		t.Errorf("content %+v, want output_text of 5 tokens", c)
	}
	if u := r.Usage; u == nil || u.InputTokens != 5 || u.InputTokensDetails.CachedTokens != 2 || u.OutputTokens != 12 ||
		u.OutputTokensDetails.ReasoningTokens != 7 || u.TotalTokens != 17 {
		t.Errorf("usage %+v, want 5 in (2 cached), 12 out (7 reasoning)", u)
	}
}

func TestResponsesStream(t *testing.T) {
	t.Parallel()
	srv := serve(t, usageOptions)
	evs, _ := stream(t, srv.URL+"/v1/responses", responsesRequest(true))
	var names []string
	for i, e := range evs {
		f := e.fields(t)
		var typ string
		var seq int
		event{data: string(f["type"])}.decode(t, &typ)
		event{data: string(f["sequence_number"])}.decode(t, &seq)
		if typ != e.name || seq != i {
			t.Errorf("event %d %q: type %q, sequence_number %d", i, e.name, typ, seq)
		}
		names = append(names, e.name)
	}
	want := "response.created response.in_progress response.output_item.added response.content_part.added " +
		strings.Repeat("response.output_text.delta ", 5) +
		"response.output_text.done response.content_part.done response.output_item.done response.completed"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("events\n%s\nwant\n%s", got, want)
	}
	var done struct{ Response response }
	evs[len(evs)-1].decode(t, &done)
	if r := done.Response; r.Status != "completed" || r.Usage == nil || r.Usage.TotalTokens != 17 || len(r.Output) != 1 {
		t.Errorf("completed response %+v", r)
	}
}

func TestResponsesFailedAndIncomplete(t *testing.T) {
	t.Parallel()
	srv := serve(t, fakellm.Options{OutputTokens: 10, MidStreamErrorRate: 1})
	evs, _ := stream(t, srv.URL+"/v1/responses", responsesRequest(true))
	last := evs[len(evs)-1]
	var failed struct{ Response response }
	last.decode(t, &failed)
	sent := len(apis[1].contents(t, evs))
	if r := failed.Response; last.name != "response.failed" || r.Status != "failed" || r.Error == nil ||
		r.Error.Code != "server_error" || r.Usage == nil || r.Usage.OutputTokens != sent {
		t.Errorf("last event %s %+v, want response.failed with usage of the %d tokens sent", last.name, r, sent)
	}

	srv = serve(t, fakellm.Options{OutputTokens: 10})
	req := responsesRequest(true)
	req["max_output_tokens"] = 4
	evs, _ = stream(t, srv.URL+"/v1/responses", req)
	var inc struct{ Response response }
	evs[len(evs)-1].decode(t, &inc)
	if r := inc.Response; evs[len(evs)-1].name != "response.incomplete" || r.Status != "incomplete" ||
		r.IncompleteDetails == nil || r.IncompleteDetails.Reason != "max_output_tokens" || r.Usage.OutputTokens != 4 {
		t.Errorf("last event %s %+v, want response.incomplete after 4 tokens", evs[len(evs)-1].name, r)
	}
}
