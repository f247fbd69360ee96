package llm

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// APIs, as returned by [Detect].
const (
	OpenAIChat      = "openai-chat"      // POST /v1/chat/completions
	OpenAIResponses = "openai-responses" // POST /v1/responses
	Anthropic       = "anthropic"        // POST /v1/messages
)

// Detect picks the API a request speaks from the service's configured kind ("openai",
// "anthropic" or "auto") and the request path, and returns "" when the request is not an
// LLM call (a model listing, a token count, an unknown kind).
//
// Paths are matched by suffix, so that a gateway prefix such as /openai/v1/chat/completions
// works. Under "auto", a path ending in /messages is Anthropic's unless it belongs to
// OpenAI's Assistants threads (/threads/{id}/messages) and the request carries no
// anthropic-version header.
func Detect(kind, path string, h http.Header) string {
	path = strings.TrimSuffix(path, "/")
	openai := ""
	switch {
	case strings.HasSuffix(path, "/chat/completions"):
		openai = OpenAIChat
	case strings.HasSuffix(path, "/responses"):
		openai = OpenAIResponses
	}
	anthropic := strings.HasSuffix(path, "/messages")
	switch kind {
	case "openai":
		return openai
	case "anthropic":
		if anthropic {
			return Anthropic
		}
	case "auto":
		if openai != "" {
			return openai
		}
		if anthropic && (h.Get("anthropic-version") != "" || !strings.Contains(path, "/threads/")) {
			return Anthropic
		}
	}
	return ""
}

// Request is what the gateway needs to know of an LLM request body.
type Request struct {
	API          string
	Model        string // the model asked for; "" when the body names none
	Stream       bool   // "stream": true
	IncludeUsage bool   // chat only: stream_options.include_usage is true
}

var errNotObject = errors.New("not a JSON object")

// ParseRequest reads the model and stream options of a request body. The caller bounds the
// body; a body cut by that bound fails to parse like any malformed one. Only the top level of
// the body is walked, so a long conversation costs a scan, not a decode.
func ParseRequest(api string, body []byte) (Request, error) {
	r := Request{API: api}
	switch api {
	case OpenAIChat, OpenAIResponses, Anthropic:
	default:
		return r, fmt.Errorf("parse request: unknown API %q (want %s, %s or %s)", api, OpenAIChat, OpenAIResponses, Anthropic)
	}
	o := objectOf(body)
	for k, v, ok := o.next(); ok; k, v, ok = o.next() {
		switch string(k) {
		case "model":
			r.Model = text(v, maxText)
		case "stream":
			r.Stream = string(v) == "true"
		case "stream_options":
			if api == OpenAIChat {
				r.IncludeUsage = includeUsage(v)
			}
		}
	}
	if !o.closed() {
		return Request{API: api}, fmt.Errorf("parse %s request body: %w", api, errNotObject)
	}
	return r, nil
}

func includeUsage(opts []byte) bool {
	set := false
	o := objectOf(opts)
	for k, v, ok := o.next(); ok; k, v, ok = o.next() {
		if string(k) == "include_usage" {
			set = string(v) == "true"
		}
	}
	return set
}

// AddIncludeUsage sets stream_options.include_usage to true on a streaming chat request
// that lacks it, so that the stream ends with a usage chunk. It returns the new body and
// true, or the body unchanged and false when the request does not stream, already asks for
// usage, or is not a well-formed JSON object. The rest of the body is kept byte for byte:
// the option is spliced in, not re-encoded. The caller must fix Content-Length and should
// strip the usage chunk from the client's copy with a [UsageChunkFilter].
func AddIncludeUsage(body []byte) ([]byte, bool) {
	o := objectOf(body)
	stream := false
	var opts []byte // the last stream_options value: duplicate keys resolve to the last one
	optsAt := -1
	for k, v, ok := o.next(); ok; k, v, ok = o.next() {
		switch string(k) {
		case "stream":
			stream = string(v) == "true"
		case "stream_options":
			opts, optsAt = v, o.i-len(v)
		}
	}
	if !o.closed() || !stream {
		return body, false
	}
	const want = `{"include_usage":true}`
	switch {
	case optsAt < 0:
		// Insert before the closing brace; the object is not empty because it holds "stream".
		end := o.end - 1
		return splice(body, end, end, `,"stream_options":`+want), true
	case !isObject(opts):
		return splice(body, optsAt, optsAt+len(opts), want), true
	}
	in := objectOf(opts)
	valAt, valLen := -1, 0
	for k, v, ok := in.next(); ok; k, v, ok = in.next() {
		if string(k) == "include_usage" {
			valAt, valLen = optsAt+in.i-len(v), len(v)
		}
	}
	if in.end == 0 { // malformed stream_options
		return body, false
	}
	switch {
	case valAt >= 0 && string(body[valAt:valAt+valLen]) == "true":
		return body, false
	case valAt >= 0:
		return splice(body, valAt, valAt+valLen, "true"), true
	case in.n == 0:
		return splice(body, optsAt, optsAt+len(opts), want), true
	default:
		at := optsAt + 1 // just after the '{' of stream_options
		return splice(body, at, at, `"include_usage":true,`), true
	}
}

// splice returns a new slice: b with b[i:j] replaced by s.
func splice(b []byte, i, j int, s string) []byte {
	out := make([]byte, 0, len(b)-(j-i)+len(s))
	out = append(out, b[:i]...)
	out = append(out, s...)
	return append(out, b[j:]...)
}
