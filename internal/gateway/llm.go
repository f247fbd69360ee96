package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/llm"
)

// LLM traffic. For a service with an llm setting the gateway reads each LLM call as it passes: the
// request body (bounded) to learn the model and to apply the version's rewrite, and the response as a
// tee beside the bytes it forwards, chunk by chunk, never delaying one. What it learns goes to the
// LLMSink when the response ends.

// RequestIDHeader carries the id of an LLM exchange back to the client, for feedback.
const RequestIDHeader = "X-Aviary-Request-Id"

// LLMRecord is one LLM exchange as the gateway saw it.
type LLMRecord = llm.Record

// LLMSink receives exchanges; Served must not block.
type LLMSink interface {
	Served(LLMRecord)
}

// llmService is a service's llm setting, compiled.
type llmService struct {
	kind         string
	includeUsage bool
	maxRequest   int64
	capture      int // bytes of request and response kept for the evaluator; 0 without one
}

func newLLMService(l *config.LLM) *llmService {
	if l == nil {
		return nil
	}
	s := &llmService{kind: l.API, includeUsage: l.IncludeUsage, maxRequest: l.MaxRequestBytes}
	if l.Evaluator != nil {
		s.capture = l.Evaluator.MaxBytes + 1
	}
	return s
}

// llmVersion is a version's llm setting, compiled.
type llmVersion struct {
	rewrite            llm.Rewrite
	refuseOversized    bool // answer 413 to a request too large to rewrite
	forwarded, refused prometheus.Counter
}

// llmVersionState outlives snapshots: what the status shows, and when the last warning was logged.
type llmVersionState struct {
	oversized atomic.Int64 // requests too large to rewrite
	loggedAt  atomic.Int64 // Unix nanoseconds of the last warning about them
}

func newLLMVersion(vl *config.VersionLLM, oversized *prometheus.CounterVec, service, version string) llmVersion {
	v := llmVersion{forwarded: oversized.WithLabelValues(service, version, string(config.OversizedForward)),
		refused: oversized.WithLabelValues(service, version, string(config.OversizedRefuse))}
	if vl != nil {
		v.rewrite = llm.Rewrite{Model: vl.Model, SystemPrompt: vl.SystemPrompt, Prepend: vl.SystemPromptMode == "prepend", Params: vl.Params}
		v.refuseOversized = vl.Oversized == config.OversizedRefuse
	}
	return v
}

// oversizedWarnEvery bounds the warnings about requests too large to rewrite: one a minute per
// version, with the count so far.
const oversizedWarnEvery = time.Minute

// oversized takes a request too large to read whole to a version with a rewrite: counted, warned
// about once a minute, and refused (413) when the version says so. It reports whether it refused.
func (g *Gateway) oversized(ex *exchange, limit int64) bool {
	v, st := ex.v, &ex.v.state.llm
	if v.llm.rewrite.Empty() {
		return false // nothing to skip
	}
	n := st.oversized.Add(1)
	now := time.Now().UnixNano()
	if last := st.loggedAt.Load(); now-last >= int64(oversizedWarnEvery) && st.loggedAt.CompareAndSwap(last, now) {
		g.log.Warn("LLM requests over maxRequestBytes cannot get the version's rewrite", "service", ex.svc.name, "version", v.name,
			"maxRequestBytes", limit, "refused", v.llm.refuseOversized, "total", n)
	}
	if !v.llm.refuseOversized {
		v.llm.forwarded.Inc()
		return false
	}
	v.llm.refused.Inc()
	// The rest of the body stays unread: the connection cannot carry another request.
	ex.Header().Set("Connection", "close")
	http.Error(ex, fmt.Sprintf("aviary: the request body is over %d bytes (llm.maxRequestBytes of service %q), too large to rewrite "+
		"for version %q, which refuses such requests (llm.oversized: refuse); send a smaller request", limit, ex.svc.name, v.name),
		http.StatusRequestEntityTooLarge)
	return true
}

// llmExchange is what the gateway keeps of one LLM call while it is proxied.
type llmExchange struct {
	api   string
	req   llm.Request
	id    string
	strip bool // Aviary asked for stream usage: the client must not see the extra chunk
	// versionModel is the model the version's rewrite put in the request; "" when none
	versionModel string
	input        []byte
	start        time.Time
	// the client's trace context headers
	traceParent, traceState string
}

// prepareLLM reads an LLM request's body, rewrites it for the chosen version, and puts it back on
// out. A body larger than the limit is forwarded untouched (its response is still read), unless
// the version refuses it: then the client has its answer, and refused is true. orig is the body as
// the client sent it when a copy read whole was put back, else nil.
func (g *Gateway) prepareLLM(ex *exchange, r, out *http.Request) (orig []byte, refused bool) {
	l := ex.svc.llm
	if l == nil || r.Method != http.MethodPost {
		return nil, false
	}
	api := llm.Detect(l.kind, r.URL.Path, r.Header)
	if api == "" {
		return nil, false
	}
	lx := &llmExchange{api: api, id: r.Header.Get("X-Request-Id"), start: time.Now(),
		traceParent: r.Header.Get("Traceparent"), traceState: strings.Join(r.Header.Values("Tracestate"), ",")}
	if lx.id == "" {
		lx.id = newRequestID()
	}
	ex.llm = lx
	out.Header = out.Header.Clone() // out shares the client's request's header map
	askIdentity(out.Header)
	if r.Body == nil || r.Body == http.NoBody {
		return nil, false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, l.maxRequest+1))
	if err == nil && int64(len(body)) > l.maxRequest && g.oversized(ex, l.maxRequest) {
		return nil, true
	}
	if err != nil || int64(len(body)) > l.maxRequest {
		lx.input = body[:min(len(body), l.capture)] // cut, and the evaluator is told so
		out.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
		return nil, false
	}
	orig = body // the rewrites below return new slices
	lx.req, _ = llm.ParseRequest(api, body)
	if rw := ex.v.llm.rewrite; !rw.Empty() {
		if nb, err := rw.Apply(api, body); err == nil {
			body, lx.versionModel = nb, rw.Model
		} else {
			g.log.Debug("LLM request not rewritten", "service", ex.svc.name, "version", ex.v.name, "err", err)
		}
	}
	if l.includeUsage && api == llm.OpenAIChat && lx.req.Stream && !lx.req.IncludeUsage {
		body, lx.strip = llm.AddIncludeUsage(body)
	}
	lx.input = body[:min(len(body), l.capture)]
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	out.TransferEncoding = nil
	out.Header.Del("Content-Length")
	return orig, false
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// teeLLM wraps a response body so that the parser reads what the client gets, as it passes.
func (g *Gateway) teeLLM(ex *exchange, resp *http.Response) {
	lx := ex.llm
	resp.Header.Set(RequestIDHeader, lx.id)
	unread := decodeBody(resp)
	b := &llmBody{rc: resp.Body, g: g, lx: lx, status: resp.StatusCode, output: textCapture{n: ex.svc.llm.capture},
		svc: ex.svc.name, version: ex.v.name, key: ex.key, flags: ex.flags, nflags: ex.nflags, unread: unread, ctx: resp.Request.Context(),
		p: llm.NewResponseParser(lx.api, resp.Header.Get("Content-Type"), lx.start, time.Now)}
	if unread != "" {
		g.log.Debug("LLM answer not read: its content coding is unknown", "service", ex.svc.name, "version", ex.v.name, "coding", unread)
	} else if lx.strip {
		b.filter = llm.NewUsageChunkFilter(&b.pending)
	}
	resp.Body = b
}

// llmBody is a response body read by the proxy: every byte it returns was first given to the
// parser (and to the usage-chunk filter when Aviary asked for usage the client did not).
type llmBody struct {
	rc      io.ReadCloser
	g       *Gateway
	lx      *llmExchange
	p       *llm.ResponseParser
	filter  *llm.UsageChunkFilter
	pending bytes.Buffer // filtered bytes not yet returned
	output  textCapture  // the first bytes of the answer, for the evaluator
	status  int
	svc     string
	version string
	key     string                           // the user's sticky key when placed by weight
	flags   [maxRequestFlags]llm.FlagVariant // the user's variants of the service's measured flags
	nflags  int
	unread  string // a content coding that cannot be decoded: the body passes unread
	ctx     context.Context
	readErr error // the first error reading the upstream's body; io.EOF at its end
	eof     bool
	closed  bool
}

func (b *llmBody) Read(p []byte) (int, error) {
	if b.filter == nil {
		n, err := b.read(p)
		b.see(p[:n])
		return n, err
	}
	// Filtered: return what the filter let through; read on while it holds an incomplete event.
	for b.pending.Len() == 0 && !b.eof {
		n, err := b.read(p)
		b.see(p[:n])
		_, _ = b.filter.Write(p[:n])
		if err != nil {
			_ = b.filter.Flush()
			b.eof = true
			if err != io.EOF {
				n, _ := b.pending.Read(p)
				return n, err
			}
		}
	}
	if b.pending.Len() > 0 {
		return b.pending.Read(p)
	}
	return 0, io.EOF
}

func (b *llmBody) read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && b.readErr == nil {
		b.readErr = err
	}
	return n, err
}

// clientAborted tells a client that went away from an upstream that broke off. The proxy reads
// the body until its end or an error, and stops early only when writing to the client failed; a
// read that failed because the client's request was canceled is the client's doing too.
func (b *llmBody) clientAborted(x llm.Exchange) bool {
	if x.Complete {
		return false
	}
	return b.readErr == nil || (b.readErr != io.EOF && b.ctx.Err() != nil)
}

func (b *llmBody) see(chunk []byte) {
	if len(chunk) == 0 || b.unread != "" {
		return
	}
	_, _ = b.p.Write(chunk)
	_, _ = b.output.Write(chunk)
}

// textCapture keeps the first n bytes written to it; it never fails.
type textCapture struct {
	b []byte
	n int
}

func (c *textCapture) Write(p []byte) (int, error) {
	if room := c.n - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// Close ends the exchange: the proxy closes the body when the response is done or cut.
func (b *llmBody) Close() error {
	err := b.rc.Close()
	if b.closed {
		return err
	}
	b.closed = true
	x := b.p.Finish()
	if b.unread != "" {
		x = llm.Exchange{API: b.lx.api, Unread: "content coding " + b.unread}
	}
	x.RequestModel, x.VersionModel = b.lx.req.Model, b.lx.versionModel
	x.Stream = x.Stream || b.lx.req.Stream
	x.ClientAborted = b.clientAborted(x)
	if b.g.llmSink != nil {
		b.g.llmSink.Served(LLMRecord{Service: b.svc, Version: b.version, RequestID: b.lx.id, Status: b.status,
			Start: b.lx.start, Duration: time.Since(b.lx.start), Exchange: x, Input: b.lx.input, Output: b.output.b,
			TraceParent: b.lx.traceParent, TraceState: b.lx.traceState, Flags: b.flags[:b.nflags], Key: b.key})
	}
	return err
}
