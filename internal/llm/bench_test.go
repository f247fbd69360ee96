package llm

import (
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"
)

// Typical 200-chunk streams of each API, one event per Write as an upstream flushes them.

func chatStreamEvents(n int) [][]byte {
	const head = `"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741570283,` +
		`"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_4691090a87"`
	evs := [][]byte{[]byte(`data: {` + head + `,"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n")}
	for i := range n - 4 {
		evs = append(evs, fmt.Appendf(nil, `data: {`+head+`,"choices":[{"index":0,"delta":{"content":" word%d"},"logprobs":null,"finish_reason":null}],"usage":null}`+"\n\n", i))
	}
	return append(evs,
		[]byte(`data: {`+head+`,"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}`+"\n\n"),
		[]byte(`data: {`+head+`,"choices":[],"usage":{"prompt_tokens":1117,"completion_tokens":196,"total_tokens":1313,"prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}`+"\n\n"),
		[]byte("data: [DONE]\n\n"))
}

func anthropicStreamEvents(n int) [][]byte {
	evs := [][]byte{
		[]byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5-20250929\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n"),
		[]byte("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"),
	}
	for i := range n - 5 {
		evs = append(evs, fmt.Appendf(nil, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" word%d\"}}\n\n", i))
	}
	return append(evs,
		[]byte("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"),
		[]byte("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":196}}\n\n"),
		[]byte("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"))
}

func responsesStreamEvents(n int) [][]byte {
	const resp = `"id":"resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b","object":"response","created_at":1741476542,"model":"gpt-4.1-2025-04-14","output":[],"tools":[],"metadata":{}`
	evs := [][]byte{[]byte("event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{" + resp + ",\"status\":\"in_progress\",\"usage\":null}}\n\n")}
	for i := range n - 2 {
		evs = append(evs, fmt.Appendf(nil, "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":%d,\"item_id\":\"msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b\",\"output_index\":0,\"content_index\":0,\"delta\":\" word%d\",\"logprobs\":[]}\n\n", i+1, i))
	}
	return append(evs, []byte("event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":199,\"response\":{"+resp+",\"status\":\"completed\",\"usage\":{\"input_tokens\":37,\"input_tokens_details\":{\"cached_tokens\":0},\"output_tokens\":198,\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":235}}}\n\n"))
}

type benchStream struct {
	api  string
	evs  [][]byte
	want int // content chunks
}

var benchStreams = []benchStream{
	{OpenAIChat, chatStreamEvents(200), 196},
	{OpenAIResponses, responsesStreamEvents(200), 198},
	{Anthropic, anthropicStreamEvents(200), 195},
}

// BenchmarkParserChunk is the tee's cost per streamed chunk: one Write of one typical content
// event into a parser that lives for the whole stream, with the real clock.
func BenchmarkParserChunk(b *testing.B) {
	benchChunks(b, func(s benchStream) *ResponseParser {
		return NewResponseParser(s.api, "text/event-stream", time.Now(), nil)
	})
}

// benchChunks writes one content event per iteration into a parser made by parser for each
// stream, primed with the stream's first two events, and checks that each was counted.
func benchChunks(b *testing.B, parser func(benchStream) *ResponseParser) {
	for _, s := range benchStreams {
		b.Run(s.api, func(b *testing.B) {
			content := s.evs[2 : len(s.evs)-3]
			p := parser(s)
			for _, ev := range s.evs[:2] {
				p.Write(ev)
			}
			primed := p.ex.ContentChunks
			b.SetBytes(int64(len(content[0])))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p.Write(content[i%len(content)])
				i++
			}
			if e := p.Finish(); e.ContentChunks != primed+i {
				b.Fatalf("%d content chunks, want %d", e.ContentChunks, primed+i)
			}
		})
	}
}

// BenchmarkParserChunkFixedClock is BenchmarkParserChunk with a clock that costs nothing: the
// parser's own cost per chunk, without the one clock reading per Write (~50 ns on a VM).
func BenchmarkParserChunkFixedClock(b *testing.B) {
	benchChunks(b, func(s benchStream) *ResponseParser {
		start := time.Now()
		return NewResponseParser(s.api, "text/event-stream", start, func() time.Time { return start })
	})
}

// BenchmarkParserStream is the tee's cost per request: a parser, a 200-chunk stream, Finish.
func BenchmarkParserStream(b *testing.B) {
	for _, s := range benchStreams {
		b.Run(s.api, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p := NewResponseParser(s.api, "text/event-stream", time.Now(), nil)
				for _, ev := range s.evs {
					p.Write(ev)
				}
				if e := p.Finish(); e.ContentChunks != s.want || !e.Complete {
					b.Fatalf("%+v", e)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(s.evs)), "ns/chunk")
		})
	}
}

// BenchmarkEncodingJSONChunk is the road not taken: decoding each chat chunk with encoding/json
// into the few fields needed. It is here to keep the choice of a hand-written scanner honest.
func BenchmarkEncodingJSONChunk(b *testing.B) {
	type chunk struct {
		Model   string `json:"model"`
		Choices []struct {
			Delta struct {
				Role      string            `json:"role"`
				Content   *string           `json:"content"`
				ToolCalls []json.RawMessage `json:"tool_calls"`
			} `json:"delta"`
			FinishReason *string `json:"finish_reason"`
		} `json:"choices"`
		Usage *struct {
			PromptTokens     int64 `json:"prompt_tokens"`
			CompletionTokens int64 `json:"completion_tokens"`
		} `json:"usage"`
	}
	ev := chatStreamEvents(10)[2]
	data := ev[len("data: ") : len(ev)-2]
	b.SetBytes(int64(len(ev)))
	b.ReportAllocs()
	for b.Loop() {
		var c chunk
		if err := json.Unmarshal(data, &c); err != nil || len(c.Choices) != 1 {
			b.Fatal(err)
		}
	}
}

// BenchmarkUsageChunkFilter is the client side's cost per chunk when Aviary asked for usage.
func BenchmarkUsageChunkFilter(b *testing.B) {
	evs := chatStreamEvents(200)
	content := evs[1 : len(evs)-3]
	f := NewUsageChunkFilter(io.Discard)
	b.SetBytes(int64(len(content[0])))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		f.Write(content[i%len(content)])
		i++
	}
}
