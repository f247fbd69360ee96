package llm

import (
	"bytes"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// A transcript is a response body written by hand from the documented wire formats:
// testdata/<api>/<name>.sse for a stream, .json for a JSON body. Its golden file,
// <name>.golden.json, is the Exchange the parser reports when the body arrives one event per
// Write, the first at start+100ms and each next one 10ms later.
type transcript struct {
	api, name string // name is "<api>/<file>"
	path      string
	body      []byte
}

func (tr transcript) stream() bool { return strings.HasSuffix(tr.path, ".sse") }

func (tr transcript) contentType() string {
	if tr.stream() {
		return "text/event-stream; charset=utf-8"
	}
	return "application/json"
}

func transcripts(t testing.TB) []transcript {
	t.Helper()
	var all []transcript
	for _, api := range []string{OpenAIChat, OpenAIResponses, Anthropic} {
		paths, err := filepath.Glob(filepath.Join("testdata", api, "*"))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			if strings.HasSuffix(p, ".golden.json") || !strings.HasSuffix(p, ".sse") && !strings.HasSuffix(p, ".json") {
				continue
			}
			body, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, transcript{api: api, name: api + "/" + filepath.Base(p), path: p, body: body})
		}
	}
	if len(all) == 0 {
		t.Fatal("no transcripts in testdata")
	}
	return all
}

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// pieces splits a body the way a server flushes it: a stream one event per piece (after each
// blank line, whatever the line endings), a JSON body in two halves.
func pieces(body []byte, stream bool) [][]byte {
	if !stream {
		return [][]byte{body[:len(body)/2], body[len(body)/2:]}
	}
	var out [][]byte
	for len(body) > 0 {
		i := len(body)
		for _, sep := range []string{"\r\n\r\n", "\n\n", "\r\r"} {
			if j := bytes.Index(body, []byte(sep)); j >= 0 && j+len(sep) < i {
				i = j + len(sep)
			}
		}
		out = append(out, body[:i])
		body = body[i:]
	}
	return out
}

// parseTimed feeds the pieces with the clock at t0+100ms for the first and 10ms more for each next.
func parseTimed(api, contentType string, ps [][]byte) Exchange {
	now := t0
	p := NewResponseParser(api, contentType, t0, func() time.Time { return now })
	for i, b := range ps {
		now = t0.Add(100*time.Millisecond + time.Duration(i)*10*time.Millisecond)
		if n, err := p.Write(b); n != len(b) || err != nil {
			panic("Write must accept everything")
		}
	}
	return p.Finish()
}

// parseFrozen feeds the pieces with a clock that never moves.
func parseFrozen(api, contentType string, ps [][]byte) Exchange {
	p := NewResponseParser(api, contentType, t0, func() time.Time { return t0 })
	for _, b := range ps {
		p.Write(b)
	}
	return p.Finish()
}

// timeless drops what depends on the clock, to compare parses fed in different pieces.
func timeless(e Exchange) Exchange {
	e.FirstByte, e.FirstToken, e.Gaps, e.OutputTokensPerSecond = 0, 0, nil, 0
	return e
}

func bytewise(b []byte) [][]byte {
	out := make([][]byte, len(b))
	for i := range b {
		out[i] = b[i : i+1]
	}
	return out
}

func randomSplit(b []byte, r *rand.Rand) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := 1 + r.IntN(min(len(b), 1+r.IntN(64)))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

func TestGolden(t *testing.T) {
	for _, tr := range transcripts(t) {
		t.Run(tr.name, func(t *testing.T) {
			got := parseTimed(tr.api, tr.contentType(), pieces(tr.body, tr.stream()))
			golden := strings.TrimSuffix(tr.path, filepath.Ext(tr.path)) + ".golden.json"
			if *update {
				js, err := json.MarshalIndent(got, "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, append(js, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			js, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			var want Exchange
			if err := json.Unmarshal(js, &want); err != nil {
				t.Fatalf("golden file %s: %v", golden, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("exchange differs from %s\n got: %+v\nwant: %+v", golden, got, want)
			}
			checkSplits(t, tr.api, tr.contentType(), tr.body, want)
			t.Run("sniffed", func(t *testing.T) {
				// No content type: the body itself says stream or JSON.
				if got := parseTimed(tr.api, "", pieces(tr.body, tr.stream())); !reflect.DeepEqual(got, want) {
					t.Errorf("without a content type\n got: %+v\nwant: %+v", got, want)
				}
			})
			if !tr.stream() {
				return
			}
			for _, eol := range []string{"\r\n", "\r"} {
				t.Run(strings.NewReplacer("\r", "CR", "\n", "LF").Replace(eol), func(t *testing.T) {
					body := bytes.ReplaceAll(tr.body, []byte("\n"), []byte(eol))
					if got := parseTimed(tr.api, tr.contentType(), pieces(body, true)); !reflect.DeepEqual(got, want) {
						t.Errorf("with %q line ends\n got: %+v\nwant: %+v", eol, got, want)
					}
					checkSplits(t, tr.api, tr.contentType(), body, want)
				})
			}
		})
	}
}

// checkSplits parses body fed one byte at a time and in random pieces, and compares with want.
func checkSplits(t *testing.T, api, contentType string, body []byte, want Exchange) {
	t.Helper()
	if got := parseFrozen(api, contentType, bytewise(body)); !reflect.DeepEqual(timeless(got), timeless(want)) {
		t.Errorf("fed one byte at a time\n got: %+v\nwant: %+v", timeless(got), timeless(want))
	}
	r := rand.New(rand.NewPCG(uint64(len(body)), 1))
	for range 50 {
		ps := randomSplit(body, r)
		if got := parseFrozen(api, contentType, ps); !reflect.DeepEqual(timeless(got), timeless(want)) {
			t.Fatalf("fed in %d random pieces\n got: %+v\nwant: %+v", len(ps), timeless(got), timeless(want))
		}
	}
}

// TestTranscripts states what each transcript must yield, independently of the golden files, so
// that a golden file rewritten with -update cannot quietly accept a wrong answer.
func TestTranscripts(t *testing.T) {
	ms := time.Millisecond
	type want struct {
		model      string
		usage      Usage
		finish     []string
		chunks     int
		firstToken time.Duration // event i arrives at 100ms + 10ms*i
		complete   bool
		err        string
	}
	tests := map[string]want{
		"openai-chat/stream.sse": {model: "gpt-4o-2024-08-06", finish: []string{"stop"}, chunks: 8,
			firstToken: 110 * ms, complete: true},
		"openai-chat/stream_usage.sse": {model: "o4-mini-2025-04-16", finish: []string{"stop"}, chunks: 9, firstToken: 110 * ms,
			usage: Usage{Input: 1117, Output: 238, Cached: 1024, Reasoning: 192, Known: true}, complete: true},
		"openai-chat/stream_tools.sse": {model: "gpt-4.1-mini-2025-04-14", finish: []string{"tool_calls"}, chunks: 10,
			firstToken: 100 * ms, complete: true},
		"openai-chat/stream_cut.sse": {model: "gpt-4o-2024-08-06", chunks: 4, firstToken: 110 * ms,
			usage: Usage{Output: 4, Known: true, Partial: true}},
		"openai-chat/stream_error.sse": {model: "gpt-4o-2024-08-06", chunks: 3, firstToken: 110 * ms,
			usage: Usage{Output: 3, Known: true, Partial: true},
			err:   "server_error: The server had an error while processing your request. Sorry about that!"},
		"openai-chat/stream_multiline.sse": {model: "deepseek/deepseek-r1", finish: []string{"stop"}, chunks: 3, firstToken: 130 * ms,
			usage: Usage{Input: 9, Output: 31, Reasoning: 27, Known: true}, complete: true},
		// Shapes that a fast path per chunk must not misread: empty content, content that quotes
		// the field names, escapes, a finish reason or usage on a content chunk, several choices,
		// tool calls beside empty content, repeated keys, spaces, other key orders, an error
		// member or an "error" event name on a content-shaped chunk, non-string content, a cut
		// chunk and trailing garbage (read as far as they go).
		"openai-chat/stream_shapes.sse": {model: "gpt-4o-mini-2024-07-18", finish: []string{"length", "stop"}, chunks: 18,
			firstToken: 110 * ms, usage: Usage{Input: 3, Output: 4, Known: true}, complete: true, err: "boom: late error"},
		"openai-chat/chat.json": {model: "gpt-4o-2024-08-06", finish: []string{"stop"},
			usage: Usage{Input: 1117, Output: 46, Known: true}, complete: true},
		"openai-chat/chat_nousage.json": {model: "llama-3.1-8b-instruct", finish: []string{"stop", "length"}, complete: true},

		"openai-responses/stream.sse": {model: "gpt-4.1-2025-04-14", finish: []string{"completed"}, chunks: 10, firstToken: 140 * ms,
			usage: Usage{Input: 37, Output: 11, Known: true}, complete: true},
		"openai-responses/stream_reasoning.sse": {model: "o4-mini-2025-04-16", finish: []string{"completed"}, chunks: 10,
			firstToken: 140 * ms, usage: Usage{Input: 2206, Output: 150, Cached: 1920, Reasoning: 128, Known: true}, complete: true},
		"openai-responses/stream_incomplete.sse": {model: "gpt-4.1-2025-04-14", finish: []string{"max_output_tokens"}, chunks: 8,
			firstToken: 120 * ms, usage: Usage{Input: 12, Output: 16, Known: true}, complete: true},
		"openai-responses/stream_failed.sse": {model: "gpt-4.1-2025-04-14", finish: []string{"failed"}, chunks: 3, firstToken: 110 * ms,
			usage: Usage{Output: 3, Known: true, Partial: true},
			err:   "server_error: The model produced invalid content. Consider modifying your prompt if you are seeing this error persistently."},
		"openai-responses/stream_cut.sse": {model: "gpt-4.1-2025-04-14", chunks: 2, firstToken: 110 * ms,
			usage: Usage{Output: 2, Known: true, Partial: true}},
		"openai-responses/stream_error.sse": {model: "gpt-4.1-2025-04-14", chunks: 1, firstToken: 110 * ms,
			usage: Usage{Output: 1, Known: true, Partial: true},
			err:   "rate_limit_exceeded: Rate limit reached for gpt-4.1 in organization org-abc on tokens per min (TPM)."},
		"openai-responses/stream_shapes.sse": {model: "gpt-5-2025-08-07", finish: []string{"completed"}, chunks: 13,
			firstToken: 110 * ms, usage: Usage{Input: 20, Output: 11, Known: true}, complete: true, err: "error"},
		"openai-responses/response.json": {model: "gpt-4o-2024-08-06", finish: []string{"completed"},
			usage: Usage{Input: 328, Output: 52, Cached: 128, Known: true}, complete: true},

		"anthropic/stream.sse": {model: "claude-sonnet-4-5-20250929", finish: []string{"end_turn"}, chunks: 7, firstToken: 130 * ms,
			usage: Usage{Input: 25, Output: 22, Known: true}, complete: true},
		"anthropic/stream_tools_thinking.sse": {model: "claude-opus-4-1-20250805", finish: []string{"tool_use"}, chunks: 9,
			firstToken: 120 * ms, usage: Usage{Input: 472 + 310 + 2048, Output: 211, Cached: 2048, CacheWrite: 310, Known: true}, complete: true},
		"anthropic/stream_error.sse": {model: "claude-sonnet-4-5-20250929", chunks: 2, firstToken: 120 * ms,
			usage: Usage{Input: 1880, Output: 2, Known: true, Partial: true}, err: "overloaded_error: Overloaded"},
		"anthropic/stream_cut.sse": {model: "claude-haiku-4-5-20251001", chunks: 2, firstToken: 120 * ms,
			usage: Usage{Input: 14, Output: 2, Known: true, Partial: true}},
		"anthropic/stream_shapes.sse": {model: "claude-sonnet-4-5-20250929", finish: []string{"end_turn"}, chunks: 12,
			firstToken: 120 * ms, usage: Usage{Input: 10, Output: 40, Known: true}, complete: true},
		"anthropic/message.json": {model: "claude-sonnet-4-5-20250929", finish: []string{"end_turn"},
			usage: Usage{Input: 12 + 1500 + 200, Output: 120, Cached: 200, CacheWrite: 1500, Known: true}, complete: true},
		"anthropic/error.json": {err: "overloaded_error: Overloaded", complete: true},
	}
	seen := 0
	for _, tr := range transcripts(t) {
		w, ok := tests[tr.name]
		if !ok {
			t.Errorf("%s: no expectations; add them here", tr.name)
			continue
		}
		seen++
		e := parseTimed(tr.api, tr.contentType(), pieces(tr.body, tr.stream()))
		check := func(field string, got, want any) {
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %s = %v, want %v", tr.name, field, got, want)
			}
		}
		check("API", e.API, tr.api)
		check("Stream", e.Stream, tr.stream())
		check("ResponseModel", e.ResponseModel, w.model)
		check("Usage", e.Usage, w.usage)
		check("FinishReasons", e.FinishReasons, w.finish)
		check("ContentChunks", e.ContentChunks, w.chunks)
		check("FirstByte", e.FirstByte, 100*ms)
		check("FirstToken", e.FirstToken, w.firstToken)
		check("Complete", e.Complete, w.complete)
		check("StreamError", e.StreamError, w.err)
		check("GapCount", e.GapCount, max(w.chunks-1, 0))
		check("Oversized", e.Oversized, 0)
		if e.ContentChunks > 1 && len(e.Gaps) != e.GapCount {
			t.Errorf("%s: %d gaps kept of %d", tr.name, len(e.Gaps), e.GapCount)
		}
	}
	if seen != len(tests) {
		t.Errorf("%d expectations, %d transcripts: a transcript is missing", len(tests), seen)
	}
}

// TestShapesAgreeWithFullWalk parses every transcript, with each kind of line end, and the
// benchmark streams with the fast path (shape.go) and without it: the results must be equal.
func TestShapesAgreeWithFullWalk(t *testing.T) {
	type body struct {
		api, name string
		b         []byte
	}
	var bodies []body
	for _, tr := range transcripts(t) {
		for _, eol := range []string{"\n", "\r\n", "\r"} {
			bodies = append(bodies, body{tr.api, tr.name + " " + strconv.Quote(eol), bytes.ReplaceAll(tr.body, []byte("\n"), []byte(eol))})
		}
	}
	for _, s := range benchStreams {
		bodies = append(bodies, body{s.api, "bench " + s.api, bytes.Join(s.evs, nil)})
	}
	for _, bd := range bodies {
		parse := func(fast bool) Exchange {
			now := t0
			p := NewResponseParser(bd.api, "", t0, func() time.Time { return now })
			p.shape.off = !fast
			for i, b := range pieces(bd.b, true) {
				now = t0.Add(time.Duration(i) * time.Millisecond)
				p.Write(b)
			}
			return p.Finish()
		}
		if fast, slow := parse(true), parse(false); !reflect.DeepEqual(fast, slow) {
			t.Errorf("%s:\nfast path: %+v\nfull walk: %+v", bd.name, fast, slow)
		}
	}
}
