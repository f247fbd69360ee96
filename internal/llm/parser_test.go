package llm

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

func chatChunk(content string) string {
	return `data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"` +
		content + `"},"finish_reason":null}]}` + "\n\n"
}

func TestOversizedEventIsSkippedAndCounted(t *testing.T) {
	huge := strings.Repeat("x", maxEvent)
	body := []byte(chatChunk("a") + chatChunk(huge) + chatChunk("b") +
		": " + huge + "\n\n" + // a comment line too long to keep
		chatChunk("c") + "data: [DONE]\n\n")
	want := Exchange{API: OpenAIChat, ResponseModel: "m", Stream: true, GapCount: 2, ContentChunks: 3, Complete: true, Oversized: 2}
	r := rand.New(rand.NewPCG(1, 2))
	for name, ps := range map[string][][]byte{
		"whole":  {body},
		"events": pieces(body, true),
		"bytes":  bytewise(body),
		"random": randomSplit(body, r),
	} {
		if got := timeless(parseFrozen(OpenAIChat, "text/event-stream", ps)); !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got: %+v\nwant: %+v", name, got, want)
		}
	}
}

func TestOversizedEventNeverBuffered(t *testing.T) {
	p := NewResponseParser(OpenAIChat, "text/event-stream", t0, nil)
	p.Write([]byte("data: {\"choices\":[{\"delta\":{\"content\":\""))
	chunk := bytes.Repeat([]byte("y"), 64<<10)
	for range 64 { // 4 MiB into one event that never ends
		p.Write(chunk)
	}
	if n := cap(p.sse.line) + cap(p.sse.data); n > maxEvent+64<<10 {
		t.Errorf("holding %d bytes for one event; the bound is %d", n, maxEvent)
	}
	if e := p.Finish(); e.Oversized != 1 || e.ContentChunks != 0 {
		t.Errorf("got %+v, want one oversized event and no content", e)
	}
}

func TestOversizedBody(t *testing.T) {
	body := []byte(`{"model":"gpt-4o","choices":[{"message":{"content":"` + strings.Repeat("z", maxBody) +
		`"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2}}`)
	e := parseFrozen(OpenAIChat, "application/json", [][]byte{body[:100], body[100:]})
	want := Exchange{API: OpenAIChat, Oversized: 1}
	if !reflect.DeepEqual(timeless(e), want) {
		t.Errorf("got %+v, want %+v", e, want)
	}
}

func TestGapsAreBounded(t *testing.T) {
	var b strings.Builder
	for i := range maxGaps + 1000 {
		b.WriteString(chatChunk(fmt.Sprint(i)))
	}
	now := t0
	p := NewResponseParser(OpenAIChat, "text/event-stream", t0, func() time.Time { return now })
	for _, ev := range pieces([]byte(b.String()), true) {
		now = now.Add(time.Millisecond)
		p.Write(ev)
	}
	e := p.Finish()
	if len(e.Gaps) != maxGaps || e.GapCount != maxGaps+999 || e.ContentChunks != maxGaps+1000 {
		t.Errorf("kept %d gaps, counted %d, %d chunks", len(e.Gaps), e.GapCount, e.ContentChunks)
	}
	if e.Gaps[0] != time.Millisecond {
		t.Errorf("gap %v, want 1ms", e.Gaps[0])
	}
}

func TestParserEdges(t *testing.T) {
	stream := []byte("\uFEFF" + chatChunk("hi") + "data: [DONE]\n")
	tests := []struct {
		name, api, contentType string
		body                   []byte
		want                   Exchange
	}{
		{"empty stream", OpenAIChat, "text/event-stream", nil, Exchange{API: OpenAIChat, Stream: true}},
		{"empty body", Anthropic, "application/json", nil, Exchange{API: Anthropic}},
		{"white space only", Anthropic, "", []byte("\n\n  \n"), Exchange{API: Anthropic}},
		// A BOM, and a last event without its blank line: still read.
		{"bom and unterminated [DONE]", OpenAIChat, "text/event-stream", stream,
			Exchange{API: OpenAIChat, ResponseModel: "m", Stream: true, ContentChunks: 1, Complete: true}},
		// An event cut inside its line is not read, as the SSE rules say.
		{"cut [DONE]", OpenAIChat, "text/event-stream", []byte(chatChunk("hi") + "data: [DONE]"),
			Exchange{API: OpenAIChat, ResponseModel: "m", Stream: true, ContentChunks: 1, Usage: Usage{Output: 1, Known: true, Partial: true}}},
		{"unknown api", "gemini", "text/event-stream", stream, Exchange{API: "gemini", Stream: true}},
		{"not json", OpenAIChat, "", []byte("data: hello\n\ndata: {oops\n\n"), Exchange{API: OpenAIChat, Stream: true}},
		{"stream sent as application/json", Anthropic, "application/json",
			[]byte("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"), Exchange{API: Anthropic, Stream: true, Complete: true}},
		{"type only in the event line", Anthropic, "text/event-stream",
			[]byte("event: message_stop\ndata: {}\n\n"), Exchange{API: Anthropic, Stream: true, Complete: true}},
		{"event name too long to keep", Anthropic, "text/event-stream",
			[]byte("event: " + strings.Repeat("m", 40) + "\ndata: {}\n\n"), Exchange{API: Anthropic, Stream: true}},
		{"truncated json body", OpenAIResponses, "application/json", []byte(`{"model":"gpt-4o","status":"completed","usage":{"input_tokens":3`),
			Exchange{API: OpenAIResponses, ResponseModel: "gpt-4o", FinishReasons: []string{"completed"}}}, // what was read before the cut
		{"error body", OpenAIChat, "application/json",
			[]byte(`{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`),
			Exchange{API: OpenAIChat, StreamError: "invalid_api_key: Incorrect API key provided.", Complete: true}},
		{"escaped model and long error", OpenAIChat, "application/json",
			[]byte(`{"model":"gpt\u002d4o","error":"` + strings.Repeat("é", 200) + `"}`),
			Exchange{API: OpenAIChat, ResponseModel: "gpt-4o", StreamError: strings.Repeat("é", maxText/2), Complete: true}},
		{"usage counts that are not integers", OpenAIChat, "application/json",
			[]byte(`{"usage":{"prompt_tokens":"12","completion_tokens":3.0,"prompt_tokens_details":null}}`),
			Exchange{API: OpenAIChat, Usage: Usage{Output: 3, Known: true}, Complete: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, ps := range [][][]byte{{tt.body}, bytewise(tt.body)} {
				if got := timeless(parseFrozen(tt.api, tt.contentType, ps)); !reflect.DeepEqual(got, tt.want) {
					t.Errorf("in %d pieces\n got: %+v\nwant: %+v", len(ps), got, tt.want)
				}
			}
		})
	}
}

func TestFinishIsFinal(t *testing.T) {
	p := NewResponseParser(OpenAIChat, "text/event-stream", t0, nil)
	p.Write([]byte(chatChunk("a")))
	first := p.Finish()
	if n, err := p.Write([]byte(chatChunk("b"))); n == 0 || err != nil {
		t.Errorf("Write after Finish = %d, %v; want it accepted and ignored", n, err)
	}
	if again := p.Finish(); !reflect.DeepEqual(first, again) || again.ContentChunks != 1 {
		t.Errorf("second Finish = %+v, want %+v", again, first)
	}
}

func TestOutputTokensPerSecond(t *testing.T) {
	now := t0
	p := NewResponseParser(Anthropic, "text/event-stream", t0, func() time.Time { return now })
	step := func(d time.Duration, ev string) {
		now = now.Add(d)
		p.Write([]byte(ev))
	}
	step(300*time.Millisecond, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n")
	step(200*time.Millisecond, "data: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n")
	step(2*time.Second, "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":100}}\n\n")
	step(0, "data: {\"type\":\"message_stop\"}\n\n")
	e := p.Finish()
	if e.FirstByte != 300*time.Millisecond || e.FirstToken != 500*time.Millisecond || e.OutputTokensPerSecond != 50 {
		t.Errorf("first byte %v, first token %v, %v tokens/s; want 300ms, 500ms, 50", e.FirstByte, e.FirstToken, e.OutputTokensPerSecond)
	}
}

func TestDefaultClock(t *testing.T) {
	start := time.Now()
	p := NewResponseParser(OpenAIChat, "", start, nil)
	p.Write([]byte(chatChunk("a")))
	if e := p.Finish(); e.FirstToken <= 0 || e.FirstToken > time.Minute {
		t.Errorf("first token %v after start with the real clock", e.FirstToken)
	}
}
