package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"aviary.dev/aviary/internal/llm"
	"aviary.dev/aviary/internal/metrics"
)

// mirrorPlan copies a share of a service's requests to a version whose responses are discarded.
type mirrorPlan struct {
	v        *version
	share    uint32 // in buckets (basis points)
	maxBody  int64
	next     *atomic.Uint32 // the service's mirror sequence, kept across snapshots
	mismatch prometheus.Counter
}

// take says whether the next request is mirrored: the same even sequence as the split, so the share is
// exact over every 10,000 requests.
func (m *mirrorPlan) take() bool {
	return (m.next.Add(1)*weyl)%buckets < m.share
}

// Reasons a request chosen for mirroring was not mirrored; each is counted.
const (
	skipTooLarge   = "too_large"     // body over maxBodyBytes
	skipIncomplete = "body_not_read" // the primary did not read the whole body
	skipBusy       = "busy"          // maxMirrorsInFlight reached
	skipNoEndpoint = "no_endpoint"   // the mirror version has no healthy endpoint
	skipUpgrade    = "upgrade"       // WebSocket and other upgrades are never mirrored
)

var mirrorSkipReasons = []string{skipTooLarge, skipIncomplete, skipBusy, skipNoEndpoint, skipUpgrade}

func (v *version) skipMirror(reason string) {
	for i, r := range mirrorSkipReasons {
		if r == reason {
			v.mirrorSkipped[i].Inc()
		}
	}
}

// mirrorCopy is the request body kept for a mirror, filled as the primary request reads its body, so
// the mirror never delays the primary.
type mirrorCopy struct {
	buf      bytes.Buffer
	limit    int64
	over     bool
	complete bool // the body was read to its end
	hasBody  bool
}

func (c *mirrorCopy) write(p []byte) {
	if c.over {
		return
	}
	if int64(c.buf.Len()+len(p)) > c.limit {
		c.over = true
		c.buf = bytes.Buffer{}
		return
	}
	c.buf.Write(p)
}

// mirrorCopyFor decides, before the primary is sent, whether its body can be kept for the mirror.
func (g *Gateway) mirrorCopyFor(ex *exchange, r *http.Request) *mirrorCopy {
	m := ex.svc.mirror
	if r.Header.Get("Upgrade") != "" {
		m.v.skipMirror(skipUpgrade)
		return nil
	}
	if r.ContentLength > m.maxBody {
		m.v.skipMirror(skipTooLarge)
		return nil
	}
	return &mirrorCopy{limit: m.maxBody, hasBody: r.Body != nil && r.Body != http.NoBody}
}

// dispatchMirror sends the copy once the primary is done, in its own goroutine; it never waits.
func (g *Gateway) dispatchMirror(ex *exchange, r *http.Request, c *mirrorCopy, primaryCode int) {
	m := ex.svc.mirror
	switch {
	case c.over:
		m.v.skipMirror(skipTooLarge)
		return
	case c.hasBody && !c.complete:
		m.v.skipMirror(skipIncomplete)
		return
	}
	ep, trial := m.v.state.picker.pick(m.v.endpoints, g.now().UnixNano(), nil)
	if ep != nil {
		ep.untake(trial) // a mirror's answer does not feed passive health: no trial for it
	}
	if ep == nil {
		m.v.skipMirror(skipNoEndpoint)
		return
	}
	select {
	case g.mirrors <- struct{}{}:
	default:
		m.v.skipMirror(skipBusy)
		return
	}
	req := &http.Request{
		Method:        r.Method,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        r.Header.Clone(),
		Host:          r.Host,
		ContentLength: int64(c.buf.Len()),
	}
	u := *r.URL
	req.URL = &u
	setTarget(req, ep, r.URL)
	removeHopHeaders(req.Header)
	req.Header.Set("X-Aviary-Mirror", "1")
	body := c.buf.Bytes()
	mr := &mirrorRequest{g: g, v: m.v, ep: ep, req: req, primaryCode: primaryCode, mismatch: m.mismatch}
	if ex.llm != nil { // the copy is an LLM call too: the mirror version's rewrite, measured apart
		mr.llm, mr.service, mr.output.n = ex.llm, ex.svc.name, ex.svc.llm.capture
		askIdentity(req.Header)
		if rw := m.v.llm.rewrite; !rw.Empty() && len(body) > 0 {
			if nb, err := rw.Apply(ex.llm.api, body); err == nil {
				body, mr.versionModel = nb, rw.Model
			}
		}
		// Stream usage for the copy too, so its tokens and cost are known; no client sees its answer.
		if l := ex.svc.llm; l.includeUsage && ex.llm.api == llm.OpenAIChat && ex.llm.req.Stream && !ex.llm.req.IncludeUsage {
			body, _ = llm.AddIncludeUsage(body)
		}
		req.ContentLength = int64(len(body))
		mr.input = body[:min(len(body), mr.output.n)]
	}
	if len(body) > 0 {
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	go mr.run()
}

// mirrorRequest is one mirrored request in flight; a named type for readable stack traces.
type mirrorRequest struct {
	g            *Gateway
	v            *version
	ep           *endpoint
	req          *http.Request
	primaryCode  int
	mismatch     prometheus.Counter
	llm          *llmExchange // set for an LLM call: the copy's answer is read and recorded as a mirror's
	service      string
	versionModel string      // the model the mirror version's rewrite put in the copy; "" when none
	input        []byte      // the copy's request, as rewritten for its version, kept for the evaluator
	output       textCapture // the first bytes of its answer, for the evaluator
}

// mirrorTimeout bounds a mirrored request, so that a hung mirror version cannot hold slots forever.
const mirrorTimeout = 30 * time.Second

func (m *mirrorRequest) run() {
	defer func() { <-m.g.mirrors }()
	defer func() {
		// A shadow copy runs beside traffic; a bug on its path is logged, never a crash of the
		// gateway that serves the primary.
		if p := recover(); p != nil {
			m.g.log.Error("mirrored request failed inside the gateway; please report this with the stack",
				"service", m.service, "version", m.v.name, "panic", p, "stack", string(debug.Stack()))
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), mirrorTimeout)
	defer cancel()
	start := time.Now()
	m.v.mirror.BeginAt(start)
	obs := metrics.Observation{BytesIn: m.req.ContentLength}
	resp, err := m.g.transport.RoundTrip(m.req.WithContext(ctx))
	if err != nil {
		obs.Code, obs.Fault = classify(err)
	} else {
		obs.Code = resp.StatusCode
		var body io.Reader = resp.Body
		var p *llm.ResponseParser
		unread := ""
		if m.llm != nil && m.g.llmSink != nil {
			unread = decodeBody(resp)
			body = resp.Body
			p = llm.NewResponseParser(m.llm.api, resp.Header.Get("Content-Type"), start, time.Now)
			if unread == "" {
				body = io.TeeReader(body, io.MultiWriter(p, &m.output))
			}
		}
		n, _ := io.Copy(io.Discard, body)
		resp.Body.Close()
		obs.BytesOut = n
		if p != nil {
			x := p.Finish()
			if unread != "" {
				x = llm.Exchange{API: m.llm.api, Unread: "content coding " + unread}
			}
			x.RequestModel, x.VersionModel = m.llm.req.Model, m.versionModel
			m.g.llmSink.Served(LLMRecord{Service: m.service, Version: m.v.name, Mirror: true, RequestID: m.llm.id,
				Status: resp.StatusCode, Start: start, Duration: time.Since(start), Exchange: x,
				Input: m.input, Output: m.output.b, TraceParent: m.llm.traceParent, TraceState: m.llm.traceState})
		}
	}
	obs.End = time.Now()
	obs.Duration = obs.End.Sub(start)
	m.v.mirror.End(obs)
	if m.primaryCode != 0 && obs.Code != m.primaryCode {
		m.mismatch.Inc()
	}
}

// removeHopHeaders drops headers meant for one connection only (RFC 9110, 7.6.1).
func removeHopHeaders(h http.Header) {
	for _, f := range h.Values("Connection") {
		for _, name := range bytes.Split([]byte(f), []byte(",")) {
			h.Del(string(bytes.TrimSpace(name)))
		}
	}
	for _, name := range []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"} {
		h.Del(name)
	}
}
