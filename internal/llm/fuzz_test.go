package llm

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"
)

// The seed corpora under testdata/fuzz hold the transcripts, with large and small limits.

// FuzzResponseParser feeds arbitrary bytes to a parser of each API, whole, in random pieces and
// one byte at a time. It must not panic, and it must learn the same regardless of the pieces.
// limit scales the event and body bounds down, so that the oversized paths are fuzzed too.
func FuzzResponseParser(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, api uint8, seed uint64, limit uint16) {
		name := []string{OpenAIChat, OpenAIResponses, Anthropic}[api%3]
		contentType := []string{"text/event-stream", "application/json", ""}[api/3%3]
		eventLimit := 64 + int(limit)*16
		parseWith := func(ps [][]byte, fast bool) Exchange {
			p := newResponseParser(name, contentType, t0, func() time.Time { return t0 }, eventLimit, 4*eventLimit)
			p.shape.off = !fast
			for _, b := range ps {
				if n, err := p.Write(b); n != len(b) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			return timeless(p.Finish())
		}
		parse := func(ps [][]byte) Exchange { return parseWith(ps, true) }
		whole := parse([][]byte{data})
		checkExchange(t, whole)
		// The fast path (shape.go) must learn exactly what the full walk of every event learns.
		if slow := parseWith([][]byte{data}, false); !reflect.DeepEqual(slow, whole) {
			t.Fatalf("with the fast path:\n got: %+v\nfull walk: %+v", whole, slow)
		}
		r := rand.New(rand.NewPCG(seed, uint64(len(data))))
		if got := parse(randomSplit(data, r)); !reflect.DeepEqual(got, whole) {
			t.Fatalf("in random pieces:\n got: %+v\nwhole: %+v", got, whole)
		}
		if len(data) <= 4096 {
			if got := parse(bytewise(data)); !reflect.DeepEqual(got, whole) {
				t.Fatalf("one byte at a time:\n got: %+v\nwhole: %+v", got, whole)
			}
		}
	})
}

func checkExchange(t *testing.T, e Exchange) {
	t.Helper()
	u := e.Usage
	if u.Input < 0 || u.Output < 0 || u.Cached < 0 || u.Reasoning < 0 {
		t.Fatalf("negative usage %+v", u)
	}
	if !u.Known && u != (Usage{}) {
		t.Fatalf("usage %+v without Known", u)
	}
	if e.GapCount != max(e.ContentChunks-1, 0) {
		t.Fatalf("%d gaps for %d content chunks", e.GapCount, e.ContentChunks)
	}
	if len(e.FinishReasons) > maxFinish {
		t.Fatalf("%d finish reasons kept", len(e.FinishReasons))
	}
	for _, s := range append([]string{e.ResponseModel, e.StreamError}, e.FinishReasons...) {
		if len(s) > maxText || !utf8.ValidString(s) {
			t.Fatalf("kept string %q: longer than %d bytes or not UTF-8", s, maxText)
		}
	}
}

// FuzzUsageChunkFilter writes arbitrary bytes through a filter in random pieces. The client must
// receive the input minus exactly the usage-only chunks, and each complete event within the
// Write that completes it (see refFilter, which filterInPieces checks after every Write).
func FuzzUsageChunkFilter(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, seed uint64, limit uint16) {
		if len(data) > 64<<10 {
			t.Skip("the reference filter is checked after every Write; keep inputs small")
		}
		r := rand.New(rand.NewPCG(seed, uint64(len(data))))
		filterInPieces(t, randomSplit(data, r), 16+int(limit))
	})
}
