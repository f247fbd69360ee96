package llm

import (
	"strings"
	"time"
)

// Bounds on what a ResponseParser holds for one response.
const (
	maxEvent  = 1 << 20 // one SSE event; a larger one is skipped and counted
	maxBody   = 4 << 20 // a JSON body; a larger one is given up on
	maxGaps   = 4096    // inter-chunk gaps kept; the rest are counted in GapCount
	maxFinish = 64      // finish reasons kept (one per choice)
	maxText   = 256     // bytes of a kept string: model, finish reason, error
)

// Usage is the token usage of one exchange, normalised across APIs.
type Usage struct {
	// Input counts the prompt's tokens, cached ones included, for every API. OpenAI's
	// prompt_tokens and input_tokens already include them; Anthropic's input_tokens excludes
	// cache reads and cache writes, so both are added to it here.
	Input int64
	// Output counts generated tokens, reasoning tokens included. For an Anthropic stream cut
	// before its message_delta, it is the last running count the stream reported.
	Output int64
	// Cached counts input tokens read from a prompt cache (OpenAI's cached_tokens,
	// Anthropic's cache_read_input_tokens).
	Cached int64
	// CacheWrite counts input tokens written to a prompt cache, which Anthropic reports apart
	// (cache_creation_input_tokens) and charges more for; OpenAI does not report or charge them.
	CacheWrite int64
	// Reasoning counts output tokens spent on reasoning, where the API reports them (OpenAI).
	Reasoning int64
	// Known is false when the response carried no usage: a chat stream without
	// stream_options.include_usage, an oversized body, a stream cut before it sent any content.
	Known bool
	// Partial is true when the counts cover a stream only as far as it went: it was cut (by the
	// upstream or by the client) before its final usage. Output is then at least the number of
	// content events seen (each carries a token or more), or the running count the stream
	// reported if that is higher; Input is what the stream reported before the cut (Anthropic's
	// message_start), else 0. Such counts are lower bounds: good for totals, not for means.
	Partial bool
}

// Exchange is what a ResponseParser learned of one response. Durations are measured from the
// start given to NewResponseParser, with the parser's clock, at the Write that completed the
// event concerned.
type Exchange struct {
	API string
	// RequestModel is left for the caller to fill from ParseRequest: the parser sees only the
	// response.
	RequestModel string
	// VersionModel is the model the version's rewrite sent upstream in place of the client's;
	// "" when it sets none. Filled by the caller.
	VersionModel string
	// ResponseModel is the model the response names (the first one, for a stream).
	ResponseModel string
	// Stream is true when the response was a stream of server-sent events.
	Stream bool
	Usage  Usage
	// FinishReasons are the reasons generation stopped, as the API spells them, one per
	// choice: finish_reason (chat), stop_reason (Anthropic), or for the Responses API the
	// response status, with incomplete_details.reason in place of "incomplete".
	FinishReasons []string
	// FirstByte is the time to the first byte of the body; 0 when there was none.
	FirstByte time.Duration
	// FirstToken is the time to the first event that carries content: text, a tool call or
	// its arguments, reasoning. Not the role-only first chunk of a chat stream, not
	// message_start, content_block_start or ping. 0 for a JSON body or a stream without content.
	FirstToken time.Duration
	// Gaps are the times between consecutive content events, the first maxGaps (4096) of them;
	// GapCount counts them all.
	Gaps     []time.Duration
	GapCount int
	// ContentChunks counts events that carry content.
	ContentChunks int
	// StreamError describes an error the body reported: an Anthropic error event, a Responses
	// error event or response.failed, a chat chunk with "error", or the error object of a JSON
	// body. After a 200 it is an error the status code hides; the caller knows the status.
	StreamError string
	// Complete is true when a stream reached its normal end ([DONE], message_stop,
	// response.completed or response.incomplete), or a JSON body was a whole object. A stream
	// that is cut, or ends with response.failed, is not complete.
	Complete bool
	// OutputTokensPerSecond is Usage.Output divided by the time from the first token to the
	// last byte; 0 when either is unknown or the time is zero.
	OutputTokensPerSecond float64
	// Oversized counts events larger than 1 MiB that were skipped, or 1 for a JSON body
	// larger than 4 MiB that was not parsed.
	Oversized int
	// ClientAborted is true when the client went away before the answer ended; set by the
	// caller. What was streamed until then is counted (Usage.Partial); it is no error of the
	// upstream's.
	ClientAborted bool
	// Unread says why the body was not read at all (a content coding the caller could not
	// decode); set by the caller. Nothing else is known of such an exchange, and it is no error
	// of the upstream's.
	Unread string
}

// A wireFormat reads one API's events and bodies into the parser.
type wireFormat struct {
	event  func(p *ResponseParser, name, data []byte) // one complete SSE event with data
	body   func(p *ResponseParser, body []byte) bool  // a whole JSON body; reports whether it was a whole object
	finish func(p *ResponseParser)                    // optional: turn what was read into p.usage
}

// formats is the registry of wire formats by API name; an unknown API gets none (timings only).
var formats = map[string]wireFormat{
	OpenAIChat:      chatFormat,
	OpenAIResponses: responsesFormat,
	Anthropic:       anthropicFormat,
}

const (
	modeUndecided = iota
	modeStream
	modeBody
)

// ResponseParser reads a response body as it streams by, as a tee beside the bytes the
// gateway forwards. Write never fails and never blocks; Finish returns what it learned.
// A ResponseParser is not safe for concurrent use: call Finish after the last Write returns.
type ResponseParser struct {
	format   wireFormat
	start    time.Time
	now      func() time.Time
	ctStream bool // the content type says event stream (used only for an empty body)
	maxBody  int

	mode  int
	sse   sseDecoder
	body  []byte
	large bool // the JSON body passed maxBody and was dropped

	t                     time.Time // when the current Write arrived
	wrote, token          bool
	firstByte, lastByte   time.Time
	firstToken, lastToken time.Time

	ex    Exchange
	usage Usage
	anth  anthropicUsage
	done  bool

	shape shape // the last content event, for the fast path (shape.go)
}

// NewResponseParser returns a parser for a response of the given API (one of the constants of
// this package; any other reads no content and reports timings only). now is the clock (nil
// means time.Now); start is when the request went upstream.
//
// Whether the body is a stream or a JSON body is read from the body itself: a JSON body
// starts with '{', an event stream never does. The content type is consulted only for an
// empty body; this way a stream sent as text/plain, or a JSON error sent as
// text/event-stream, is still understood.
func NewResponseParser(api string, contentType string, start time.Time, now func() time.Time) *ResponseParser {
	return newResponseParser(api, contentType, start, now, maxEvent, maxBody)
}

func newResponseParser(api, contentType string, start time.Time, now func() time.Time, eventLimit, bodyLimit int) *ResponseParser {
	if now == nil {
		now = time.Now
	}
	p := &ResponseParser{
		format:   formats[api],
		start:    start,
		now:      now,
		ctStream: isEventStream(contentType),
		maxBody:  bodyLimit,
		ex:       Exchange{API: api},
	}
	p.sse.limit = eventLimit
	p.sse.emit = p.event
	return p
}

func isEventStream(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "text/event-stream")
}

// Write reads b. It always returns len(b), nil.
func (p *ResponseParser) Write(b []byte) (int, error) {
	n := len(b)
	if p.done || n == 0 {
		return n, nil
	}
	p.t = p.now()
	if !p.wrote {
		p.wrote, p.firstByte = true, p.t
	}
	p.lastByte = p.t
	if p.mode == modeUndecided {
		// Leading white space means nothing to either form; it is dropped, not kept.
		i := skipSpace(b, 0)
		switch {
		case i == len(b):
			return n, nil
		case b[i] == '{':
			p.mode = modeBody
		default:
			p.mode = modeStream
		}
		b = b[i:]
	}
	if p.mode == modeStream {
		p.sse.write(b)
	} else {
		p.appendBody(b)
	}
	return n, nil
}

func (p *ResponseParser) appendBody(b []byte) {
	if p.large {
		return
	}
	if len(p.body)+len(b) > p.maxBody {
		p.large, p.body = true, nil
		return
	}
	p.body = append(p.body, b...)
}

func (p *ResponseParser) event(name, data []byte) {
	if p.format.event != nil {
		p.format.event(p, name, data)
	}
}

// Finish ends the response and returns what was learned. Later calls return the same result;
// later Writes are ignored.
func (p *ResponseParser) Finish() Exchange {
	if p.done {
		return p.ex
	}
	p.done = true
	switch p.mode {
	case modeStream:
		p.ex.Stream = true
		p.sse.finish()
		p.ex.Oversized = p.sse.oversized
	case modeBody:
		switch {
		case p.large:
			p.ex.Oversized = 1
		case p.format.body != nil:
			p.ex.Complete = p.format.body(p, p.body)
		}
		p.body = nil
	default:
		p.ex.Stream = p.ctStream
	}
	if p.format.finish != nil {
		p.format.finish(p)
	}
	p.partialUsage()
	p.ex.Usage = p.usage
	if p.wrote {
		p.ex.FirstByte = p.firstByte.Sub(p.start)
	}
	if p.token {
		p.ex.FirstToken = p.firstToken.Sub(p.start)
		if d := p.lastByte.Sub(p.firstToken); d > 0 && p.usage.Known && p.usage.Output > 0 {
			p.ex.OutputTokensPerSecond = float64(p.usage.Output) / d.Seconds()
		}
	}
	return p.ex
}

// partialUsage counts a stream cut before its end as far as it went, so that what was streamed
// is not lost from the totals: at least one token per content event.
func (p *ResponseParser) partialUsage() {
	if !p.ex.Stream || p.ex.Complete || p.ex.ContentChunks == 0 {
		return
	}
	p.usage.Partial = true
	p.usage.Known = true
	p.usage.Output = max(p.usage.Output, int64(p.ex.ContentChunks))
}

// content records an event that carries content.
func (p *ResponseParser) content() {
	p.ex.ContentChunks++
	if !p.token {
		p.token, p.firstToken, p.lastToken = true, p.t, p.t
		return
	}
	p.ex.GapCount++
	if len(p.ex.Gaps) < maxGaps {
		if p.ex.Gaps == nil {
			p.ex.Gaps = make([]time.Duration, 0, 64)
		}
		p.ex.Gaps = append(p.ex.Gaps, p.t.Sub(p.lastToken))
	}
	p.lastToken = p.t
}

// setModel keeps the first model the response names.
func (p *ResponseParser) setModel(v []byte) {
	if p.ex.ResponseModel != "" {
		return
	}
	if raw, ok := isString(v); ok && len(raw) > 0 {
		p.ex.ResponseModel = text(v, maxText)
	}
}

func (p *ResponseParser) addFinish(v []byte) {
	if len(p.ex.FinishReasons) >= maxFinish {
		return
	}
	if s := text(v, maxText); s != "" {
		p.ex.FinishReasons = append(p.ex.FinishReasons, s)
	}
}

// setError keeps the first error the body reports.
func (p *ResponseParser) setError(v []byte) {
	if p.ex.StreamError == "" {
		p.ex.StreamError = errorText(v, 0)
	}
}

// errorText describes an error value: a string, or an object with a code or type and a
// message, possibly wrapped in an "error" member ({"type":"error","error":{...}}).
func errorText(v []byte, depth int) string {
	if _, ok := isString(v); ok {
		if s := text(v, maxText); s != "" {
			return s
		}
		return "error"
	}
	var code, typ, msg string
	o := objectOf(v)
	for k, v, ok := o.next(); ok; k, v, ok = o.next() {
		switch string(k) {
		case "error":
			if isObject(v) && depth < 2 {
				return errorText(v, depth+1)
			}
		case "code":
			code = text(v, maxText)
		case "type":
			typ = text(v, maxText)
		case "message":
			msg = text(v, maxText)
		}
	}
	kind := code
	if kind == "" && typ != "error" {
		kind = typ
	}
	switch {
	case kind != "" && msg != "":
		return clip(kind+": "+msg, maxText)
	case msg != "":
		return msg
	case kind != "":
		return kind
	}
	return "error"
}
