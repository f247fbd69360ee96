// Package fakellm is the fake LLM server behind Aviary's LLM tests and demo. It speaks enough of
// the OpenAI Chat Completions, OpenAI Responses and Anthropic Messages APIs, as JSON and as
// server-sent events, for a gateway to measure what LLM users feel — time to first token, the
// pace of tokens, token counts, errors in the middle of a stream after a 200 — and for an
// evaluator to score answers. Every one of those properties is an Option, so a test can play a
// slow, costly, flaky or poor model version against a good one.
//
// Endpoints (see New):
//
//	POST /v1/chat/completions  OpenAI Chat Completions, JSON or stream
//	POST /v1/responses         OpenAI Responses, JSON or stream
//	POST /v1/messages          Anthropic Messages, JSON or stream
//	POST /v1/evaluate          a stand-in evaluator that scores answers this server wrote
//	GET  /healthz              200 "OK"
//	GET  /__stats              Stats as JSON
//	POST /__reset              zeroes Stats (and so restarts the error sequences)
//
// It must never need the network or a real model, and it must stay reproducible: the same
// Options and the same sequence of requests give the same answers, errors and timings.
package fakellm

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"time"
)

// Options describe the model version the server plays. The zero value is a fast, error-free
// server whose answers are of quality 0; see the fields for the defaults applied to zero values.
type Options struct {
	// Name says who answers: sent in the X-Aviary-Upstream header (like aviary-upstream's) and
	// reported by /__stats.
	Name string
	// Model is the model reported in responses; "" echoes the requested model (every API here
	// requires one).
	Model string
	// TTFT is the time from the request to the first content chunk. The role-only chunk (OpenAI)
	// and message_start (Anthropic) are sent at once, as real servers do.
	TTFT time.Duration
	// TokenEvery is the pace between output tokens: token i is sent at TTFT + i*TokenEvery after
	// the request arrived. A JSON (non-stream) answer is sent when the last token would have been.
	TokenEvery time.Duration
	// OutputTokens is how many visible tokens an answer has (default 50); each stream chunk carries
	// one (a word and a space). A smaller max_tokens in the request cuts the answer short.
	OutputTokens int
	// InputTokensPerChar turns the prompt's characters into input tokens (default 0.25).
	InputTokensPerChar float64
	// CachedInputTokens are reported as read from the prompt cache (input tokens are raised to at
	// least this many).
	CachedInputTokens int
	// ReasoningTokens are reported as reasoning tokens and counted into the output tokens, as the
	// real APIs do; they are never sent as text.
	ReasoningTokens int
	// ErrorRate is the share (0..1) of requests answered 500 before any streaming.
	ErrorRate float64
	// MidStreamErrorRate is the share (0..1) of streams that, after a 200 and some tokens, end
	// with the API's error event instead of finishing.
	MidStreamErrorRate float64
	// Quality (0..1) is the quality knob: every answer starts with a "[q=0.83]" token carrying it,
	// and /v1/evaluate reads it back, so a version with a lower knob gets lower evaluation scores.
	Quality float64
	// Seed makes the words, ids, error positions and evaluation noise reproducible.
	Seed uint64
	// Stamp puts the time the first content chunk of a stream is written into its text, as
	// "t=<Unix nanoseconds>" after the quality marker, so that a client on the same machine can
	// tell how long the chunk took to reach it (bench/firsttoken).
	Stamp bool
	// Compress is a content coding (gzip, deflate, br or zstd) that every LLM answer is sent in,
	// JSON and stream alike, whatever the request's Accept-Encoding says, as some servers do; ""
	// sends plain answers.
	Compress string
	// Clock paces the answers; nil is the real time.
	Clock Clock
}

// StampPrefix starts the stamp in a stream's first content chunk (see Options.Stamp).
const StampPrefix = "t="

// Defaults for zero-valued Options.
const (
	DefaultOutputTokens       = 50
	DefaultInputTokensPerChar = 0.25
)

// Validate reports every option that is out of range, each with its field name.
func (o Options) Validate() error {
	var errs []error
	negative := func(field string, v float64) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s: %v is negative; must be >= 0", field, v))
		}
	}
	share := func(field string, v float64) {
		if v < 0 || v > 1 || math.IsNaN(v) {
			errs = append(errs, fmt.Errorf("%s: %v is not a share; must be 0..1 (0.05 is 5%%)", field, v))
		}
	}
	negative("TTFT", float64(o.TTFT))
	negative("TokenEvery", float64(o.TokenEvery))
	negative("OutputTokens", float64(o.OutputTokens))
	negative("CachedInputTokens", float64(o.CachedInputTokens))
	negative("ReasoningTokens", float64(o.ReasoningTokens))
	if o.InputTokensPerChar < 0 || math.IsNaN(o.InputTokensPerChar) {
		errs = append(errs, fmt.Errorf("InputTokensPerChar: %v must be >= 0", o.InputTokensPerChar))
	}
	share("ErrorRate", o.ErrorRate)
	share("MidStreamErrorRate", o.MidStreamErrorRate)
	share("Quality", o.Quality)
	if !validCoding(o.Compress) {
		errs = append(errs, fmt.Errorf("%s: %q is not a coding; must be one of %v, or empty", "Compress", o.Compress, Codings))
	}
	return errors.Join(errs...)
}

func (o Options) withDefaults() Options {
	if o.OutputTokens == 0 {
		o.OutputTokens = DefaultOutputTokens
	}
	if o.InputTokensPerChar == 0 {
		o.InputTokensPerChar = DefaultInputTokensPerChar
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	return o
}

// server is the handler New returns. Options are fixed at construction; only the counters change.
type server struct {
	o     Options
	mux   *http.ServeMux
	stats *stats
	// Phases shift where in the even error sequences the errors fall, so two servers with
	// different seeds do not fail the same requests.
	errPhase, midPhase float64
	nameHdr            []string
}

// New returns the fake LLM server's handler. It panics if o is invalid (see Validate): Options
// come from test code or from flags the command has already validated.
func New(o Options) http.Handler {
	if err := o.Validate(); err != nil {
		panic(fmt.Sprintf("fakellm.New: invalid options: %v", err))
	}
	o = o.withDefaults()
	rng := rand.New(rand.NewPCG(o.Seed, 0x9e3779b97f4a7c15))
	s := &server{
		o:        o,
		mux:      http.NewServeMux(),
		stats:    newStats(o.Name),
		errPhase: rng.Float64(),
		midPhase: rng.Float64(),
	}
	if o.Name != "" {
		s.nameHdr = []string{o.Name}
	}
	s.mux.Handle("POST "+pathChat, s.llm(pathChat, chatAPI{}))
	s.mux.Handle("POST "+pathResponses, s.llm(pathResponses, responsesAPI{}))
	s.mux.Handle("POST "+pathMessages, s.llm(pathMessages, messagesAPI{}))
	s.mux.HandleFunc("POST /v1/evaluate", s.serveEvaluate)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("OK\n"))
	})
	s.mux.HandleFunc("GET /__stats", s.stats.serve)
	s.mux.HandleFunc("POST /__reset", func(w http.ResponseWriter, _ *http.Request) {
		s.stats.reset()
		w.WriteHeader(http.StatusNoContent)
	})
	return s
}

const (
	pathChat      = "/v1/chat/completions"
	pathResponses = "/v1/responses"
	pathMessages  = "/v1/messages"
)

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.nameHdr != nil {
		w.Header()["X-Aviary-Upstream"] = s.nameHdr
	}
	s.mux.ServeHTTP(w, r)
}

// evenly reports whether the n-th event (1-based) of a sequence is among the rate share picked.
// Any run of m consecutive events holds floor(m*rate) or ceil(m*rate) picks — spread out, never
// in bursts — so a test sending 100 requests at rate 0.1 sees exactly 10 errors.
func evenly(n int64, rate, phase float64) bool {
	switch {
	case rate <= 0:
		return false
	case rate >= 1:
		return true
	}
	return math.Floor(float64(n)*rate+phase) > math.Floor(float64(n-1)*rate+phase)
}
