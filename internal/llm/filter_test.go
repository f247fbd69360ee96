package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

// The filter's specification, written plainly over a whole input. refEvents splits the input
// into events; an event ends with the character that ends its blank line (term), and also owns
// the '\n' after that character when it is a '\r' (end). A usage-only event no longer than limit
// (counted to term) is dropped. refOutput says what the client must have received once the
// first n bytes have arrived: the kept events whose blank line has arrived, as far as they
// have, then the incomplete last event if it is already longer than limit (it is being
// written through).
type refEvent struct {
	start, term, end int
	keep             bool
}

func refEvents(input []byte, limit int) (evs []refEvent, rest int) {
	start := 0
	lineHasText := false
	for i := 0; i < len(input); i++ {
		c := input[i]
		if c != '\r' && c != '\n' {
			lineHasText = true
			continue
		}
		if c == '\n' && i > 0 && input[i-1] == '\r' {
			continue // the second half of a "\r\n"
		}
		if lineHasText {
			lineHasText = false
			continue
		}
		ev := refEvent{start: start, term: i + 1, end: i + 1}
		if c == '\r' && ev.end < len(input) && input[ev.end] == '\n' {
			ev.end++
		}
		ev.keep = ev.term-start > limit || !refUsageOnly(input[start:ev.end])
		evs = append(evs, ev)
		start, i = ev.end, ev.end-1
	}
	return evs, start
}

func refOutput(input []byte, evs []refEvent, rest, n, limit int) []byte {
	var out []byte
	start := rest
	for _, ev := range evs {
		if ev.term > n {
			start = ev.start
			break
		}
		if ev.keep {
			out = append(out, input[ev.start:min(ev.end, n)]...)
		}
	}
	if n-start > limit {
		out = append(out, input[start:n]...)
	}
	return out
}

func refUsageOnly(ev []byte) bool {
	var data []string
	for _, line := range strings.FieldsFunc(string(ev), func(r rune) bool { return r == '\r' || r == '\n' }) {
		field, value, _ := strings.Cut(line, ":")
		if field == "data" {
			data = append(data, strings.TrimPrefix(value, " "))
		}
	}
	if data == nil {
		return false
	}
	var chunk map[string]json.RawMessage
	if err := json.Unmarshal([]byte(strings.Join(data, "\n")), &chunk); err != nil {
		return false
	}
	var choices []json.RawMessage
	c, ok := chunk["choices"]
	if ok && json.Unmarshal(c, &choices) != nil {
		return false
	}
	var object string
	json.Unmarshal(chunk["object"], &object)
	if !ok && object != "chat.completion.chunk" {
		return false // no choices at all: only a chunk that says it is one
	}
	u := chunk["usage"]
	return len(choices) == 0 && len(u) > 0 && u[0] == '{'
}

// recorder is the client's side; it can be told to fail.
type recorder struct {
	bytes.Buffer
	writes int
	fail   error
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.fail != nil {
		return 0, r.fail
	}
	r.writes++
	return r.Buffer.Write(b)
}

// filterInPieces writes the pieces through a filter and checks, after each Write, that the
// client has received exactly what the specification says by then; it returns the output.
func filterInPieces(t *testing.T, ps [][]byte, limit int) []byte {
	t.Helper()
	input := bytes.Join(ps, nil)
	evs, rest := refEvents(input, limit)
	var rec recorder
	f := NewUsageChunkFilter(&rec)
	f.limit = limit
	n := 0
	for _, b := range ps {
		if w, err := f.Write(b); w != len(b) || err != nil {
			t.Fatalf("Write = %d, %v", w, err)
		}
		n += len(b)
		if want := refOutput(input, evs, rest, n, limit); !bytes.Equal(rec.Bytes(), want) {
			t.Fatalf("after %d bytes the client has\n%q\nwant\n%q", n, rec.Bytes(), want)
		}
	}
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	// At the end, what was held goes out too: the client has every byte not dropped.
	want := refOutput(input, evs, rest, len(input), limit)
	if len(input)-rest <= limit {
		want = append(want, input[rest:]...)
	}
	if !bytes.Equal(rec.Bytes(), want) {
		t.Fatalf("after Flush the client has\n%q\nwant\n%q", rec.Bytes(), want)
	}
	return rec.Bytes()
}

func TestUsageChunkFilterTranscripts(t *testing.T) {
	usage := []byte(`data: {"id":"chatcmpl-C1xQ7a9Yk2f0Rm3bVdL8sN4tPzEuW","object":"chat.completion.chunk","created":1754029301,` +
		`"model":"o4-mini-2025-04-16","service_tier":"default","system_fingerprint":null,"choices":[],"usage":{`)
	for _, tr := range transcripts(t) {
		if !tr.stream() {
			continue
		}
		for _, eol := range []string{"\n", "\r\n", "\r"} {
			body := bytes.ReplaceAll(tr.body, []byte("\n"), []byte(eol))
			// The expected output is the transcript without the one usage chunk, if it has one.
			want := body
			if i := bytes.Index(body, usage); i >= 0 {
				end := bytes.Index(body[i:], []byte(eol+eol))
				want = append(append([]byte(nil), body[:i]...), body[i+end+2*len(eol):]...)
			}
			r := rand.New(rand.NewPCG(7, uint64(len(body))))
			for _, ps := range [][][]byte{{body}, pieces(body, true), bytewise(body), randomSplit(body, r)} {
				if got := filterInPieces(t, ps, maxHold); !bytes.Equal(got, want) {
					t.Errorf("%s with %q line ends in %d pieces: the client got\n%s\nwant\n%s", tr.name, eol, len(ps), got, want)
				}
			}
		}
	}
}

func TestUsageChunkFilterStripsOnlyTheUsageChunk(t *testing.T) {
	tests := []struct {
		name, in string
		strip    bool
	}{
		{"usage chunk", `data: {"choices":[],"usage":{"prompt_tokens":1}}`, true},
		{"choices null (vLLM)", `data: {"choices":null,"usage":{"prompt_tokens":1}}`, true},
		{"choices absent in a chat chunk", `data: {"object":"chat.completion.chunk","usage":{"prompt_tokens":1}}`, true},
		{"choices absent otherwise", `data: {"type":"message_delta","usage":{"output_tokens":1}}`, false},
		{"data over two lines", "data: {\"choices\":[],\ndata: \"usage\":{}}", true},
		{"escaped key", `data: {"choices":[],"us\u0061ge":{}}`, true},
		{"with an event line and a comment", "event: chunk\n: hi\ndata: {\"choices\":[],\"usage\":{}}", true},
		{"content with usage", `data: {"choices":[{"delta":{"content":"x"}}],"usage":{"prompt_tokens":1}}`, false},
		{"usage null", `data: {"choices":[],"usage":null}`, false},
		{"choices not an array", `data: {"choices":{},"usage":{}}`, false},
		{"invalid JSON", `data: {"choices":[],"usage":{"a":tru}}`, false},
		{"not data", `: {"choices":[],"usage":{}}`, false},
		{"done", `data: [DONE]`, false},
	}
	for _, tt := range tests {
		in := "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n" + tt.in + "\n\ndata: [DONE]\n\n"
		want := in
		if tt.strip {
			want = strings.Replace(in, tt.in+"\n\n", "", 1)
		}
		for _, ps := range [][][]byte{{[]byte(in)}, bytewise([]byte(in))} {
			if got := filterInPieces(t, ps, maxHold); string(got) != want {
				t.Errorf("%s: got %q, want %q", tt.name, got, want)
			}
		}
	}
}

func TestUsageChunkFilterWritesEventsAtOnce(t *testing.T) {
	var rec recorder
	f := NewUsageChunkFilter(&rec)
	// Three events and the start of a fourth in one Write: one write to the client, at once.
	f.Write([]byte("data: a\n\ndata: b\n\ndata: c\n\ndata: d"))
	if rec.String() != "data: a\n\ndata: b\n\ndata: c\n\n" || rec.writes != 1 {
		t.Errorf("client got %q in %d writes", rec.String(), rec.writes)
	}
	// The held event ends on "\r"; it goes out at once, and the "\n" that follows later too.
	f.Write([]byte("\r\r"))
	f.Write([]byte("\n"))
	if rec.String() != "data: a\n\ndata: b\n\ndata: c\n\ndata: d\r\r\n" {
		t.Errorf("client got %q", rec.String())
	}
}

func TestUsageChunkFilterHoldsLittle(t *testing.T) {
	var rec recorder
	f := NewUsageChunkFilter(&rec)
	big := "data: {\"choices\":[],\"usage\":{\"pad\":\"" + strings.Repeat("x", 2*maxHold) + "\"}}\n\n"
	for i := 0; i < len(big); i += 1000 {
		f.Write([]byte(big[i:min(i+1000, len(big))]))
		if len(f.held) > maxHold {
			t.Fatalf("holding %d bytes", len(f.held))
		}
	}
	if rec.String() != big {
		t.Error("an event larger than the hold limit must pass through whole")
	}
}

func TestUsageChunkFilterWriteError(t *testing.T) {
	broken := errors.New("client went away")
	rec := &recorder{fail: broken}
	f := NewUsageChunkFilter(rec)
	if _, err := f.Write([]byte("data: a\n\n")); !errors.Is(err, broken) {
		t.Fatalf("Write error = %v, want %v", err, broken)
	}
	rec.fail = nil
	if _, err := f.Write([]byte("data: b\n\n")); !errors.Is(err, broken) {
		t.Errorf("a later Write = %v, want the first error again", err)
	}
	if err := f.Flush(); !errors.Is(err, broken) {
		t.Errorf("Flush = %v, want the first error", err)
	}
	if rec.Len() != 0 {
		t.Errorf("wrote %q after an error", rec.String())
	}
}

func TestUsageChunkFilterOnRealStream(t *testing.T) {
	body, err := os.ReadFile("testdata/openai-chat/stream_usage.sse")
	if err != nil {
		t.Fatal(err)
	}
	var rec recorder
	f := NewUsageChunkFilter(&rec)
	p := NewResponseParser(OpenAIChat, "text/event-stream", t0, nil)
	for _, ev := range pieces(body, true) {
		p.Write(ev)
		f.Write(ev)
	}
	f.Flush()
	if e := p.Finish(); !e.Usage.Known || e.Usage.Output != 238 {
		t.Errorf("the parser must still see the usage: %+v", e.Usage)
	}
	client := NewResponseParser(OpenAIChat, "text/event-stream", t0, nil)
	client.Write(rec.Bytes())
	if e := client.Finish(); e.Usage.Known || !e.Complete || e.ContentChunks != 9 {
		t.Errorf("the client must see everything but the usage: %+v", e)
	}
}
