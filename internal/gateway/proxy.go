package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"aviary.dev/aviary/internal/llm"
	"aviary.dev/aviary/internal/metrics"
)

// exchange is one proxied request: the choice made for it, what happened, and the ResponseWriter
// wrapper that records status and bytes. Pooled; nothing may hold it after ServeHTTP returns.
type exchange struct {
	rw       http.ResponseWriter
	series   *metrics.Series // where the request is measured: its version's primary or routed series
	unit     uint8           // the cluster of its sticky key (metrics.Observation.Unit)
	key      string          // its sticky key when it was placed by weight ("" otherwise)
	code     int             // status sent to the client (not 1xx)
	bytesOut int64

	svc   *service
	v     *version
	ep    *endpoint
	trial bool // the request is ep's trial after an ejection
	inURL *url.URL
	body  *bodyReader // nil when the request has no body
	paced *pacedBody  // the client's body under the gateway's pace; nil when there is none

	upstreamStatus int
	fault          metrics.Fault
	retried        bool
	llm            *llmExchange // nil: not an LLM call

	// flagSeries are the series of the variants the request's user has of its service's measured
	// flags (gateway flags); a nil entry: no variant.
	flagSeries [maxRequestFlags]*metrics.Series
	// flags are the variants behind flagSeries, for LLM records; nflags of them are set.
	flags  [maxRequestFlags]llm.FlagVariant
	nflags int
}

type exchangeKey struct{}

func exchangeOf(r *http.Request) *exchange { return r.Context().Value(exchangeKey{}).(*exchange) }

func (ex *exchange) Header() http.Header { return ex.rw.Header() }

func (ex *exchange) WriteHeader(code int) {
	if ex.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		ex.code = code
	}
	ex.rw.WriteHeader(code)
}

func (ex *exchange) Write(b []byte) (int, error) {
	if ex.code == 0 {
		ex.code = http.StatusOK
	}
	n, err := ex.rw.Write(b)
	ex.bytesOut += int64(n)
	return n, err
}

// FlushError lets http.ResponseController flush through the wrapper; streamed responses (SSE,
// chunked) reach the client chunk by chunk.
func (ex *exchange) FlushError() error {
	if f, ok := ex.rw.(interface{ FlushError() error }); ok {
		return f.FlushError()
	}
	if f, ok := ex.rw.(http.Flusher); ok {
		f.Flush()
		return nil
	}
	return http.ErrNotSupported
}

// Unwrap gives http.ResponseController the real writer (hijacking for WebSocket, full duplex).
func (ex *exchange) Unwrap() http.ResponseWriter { return ex.rw }

// place picks the request's version and endpoint and where it is measured: a request placed by a
// route in its version's routed series, one placed by weight in the primary series with the
// cluster of its sticky key.
func (g *Gateway) place(w http.ResponseWriter, r *http.Request, svc *service) *exchange {
	chosen := svc.routed(r)
	routed := chosen != nil
	var unit uint8
	var key string
	if !routed {
		chosen, unit, key = svc.placed(w, r)
		if key != "" {
			if v := g.experimentVersion(svc, key); v != nil {
				chosen = v
			}
		}
		if key != "" && g.placed != nil {
			g.placed(svc.name, chosen.name, key)
		}
	} else if svc.sticky != nil {
		key = svc.sticky.key(r)
	}
	v, ep, trial := g.pickEndpoint(svc, chosen, g.now().UnixNano())
	ex := g.pool.Get().(*exchange)
	*ex = exchange{rw: w, svc: svc, v: v, ep: ep, trial: trial, inURL: r.URL, series: v.primary}
	if routed && v == chosen && v.routed != nil {
		ex.series = v.routed // a segment's request: measured apart from those placed by weight
	}
	if v == chosen {
		ex.unit = unit
	}
	if !routed {
		ex.key = key
	}
	g.evalFlags(ex, r, svc, key)
	return ex
}

// ServeHTTP proxies one request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if closeAfter(r) {
		w.Header().Set("Connection", "close")
	}
	svc := g.snap.Load().find(r)
	if svc == nil {
		g.counters.unmatched.Inc()
		http.Error(w, fmt.Sprintf("aviary: no service matches host %q and path %q; check services[].match in the config",
			r.Host, r.URL.Path), http.StatusNotFound)
		return
	}
	ex := g.place(w, r, svc)
	v, ep := ex.v, ex.ep
	var tee *mirrorCopy
	if m := svc.mirror; m != nil && m.v != v && m.take() {
		tee = g.mirrorCopyFor(ex, r)
	}
	ex.series.BeginAt(start)
	for _, fs := range ex.flagSeries {
		if fs != nil {
			fs.BeginAt(start)
		}
	}
	defer g.finish(ex, r, start, tee)
	if ep == nil {
		ex.fault = metrics.FaultGateway
		http.Error(ex, fmt.Sprintf("aviary: no healthy endpoint for service %q version %q; see GET /api/v1/services on the admin listener",
			svc.name, v.name), http.StatusServiceUnavailable)
		return
	}
	out := r.WithContext(context.WithValue(r.Context(), exchangeKey{}, ex))
	if r.Body != nil && r.Body != http.NoBody {
		if r.ProtoMajor == 1 {
			// Go's HTTP/1 server closes the request body once the handler starts writing its response,
			// which would cut a streamed upload (an LLM request streaming while its answer streams).
			_ = http.NewResponseController(w).EnableFullDuplex()
		}
		ex.paced = &pacedBody{rc: r.Body, pace: &g.pace, ctl: http.NewResponseController(w)}
		r.Body, out.Body = ex.paced, ex.paced // prepareLLM reads r.Body
		orig, refused := g.prepareLLM(ex, r, out)
		if refused {
			return
		}
		ex.body = &bodyReader{rc: out.Body, tee: tee}
		if orig != nil && tee != nil {
			// The upstream gets the body rewritten for this version; the mirror copies what the
			// client sent, and gets its own version's rewrite when it is sent.
			tee.write(orig)
			ex.body.copied = true
		}
		out.Body = ex.body
	} else {
		g.prepareLLM(ex, r, out)
	}
	g.proxy.ServeHTTP(ex, out)
}

// pickEndpoint picks an available endpoint of v; when v has none and is not the stable version, its
// share goes to the stable version (logged once per episode, counted always).
func (g *Gateway) pickEndpoint(svc *service, v *version, now int64) (*version, *endpoint, bool) {
	ep, trial := v.state.picker.pick(v.endpoints, now, nil)
	if ep != nil || v == svc.stable {
		if ep != nil && v.state.fallingBack.Load() && v.state.fallingBack.CompareAndSwap(true, false) {
			g.log.Info("version has healthy endpoints again; its share returns to it", "service", svc.name, "version", v.name)
		}
		return v, ep, trial
	}
	v.fallbacks.Inc()
	if v.state.fallingBack.CompareAndSwap(false, true) {
		g.log.Warn("version has no healthy endpoint; its share goes to the stable version",
			"service", svc.name, "version", v.name, "stable", svc.stable.name)
	}
	ep, trial = svc.stable.state.picker.pick(svc.stable.endpoints, now, nil)
	return svc.stable, ep, trial
}

// finish records the exchange, feeds passive health, dispatches the mirror copy and recycles ex. It
// runs deferred, so that a stream cut halfway (ReverseProxy panics with http.ErrAbortHandler) is
// measured too; the panic then goes on to the server, which closes the connection.
func (g *Gateway) finish(ex *exchange, r *http.Request, start time.Time, tee *mirrorCopy) {
	p := recover()
	if p != nil && r.Context().Err() == nil && ex.fault == metrics.NoFault {
		ex.fault = metrics.FaultGateway // the upstream broke off in the middle of its response
	}
	end := time.Now()
	var in int64
	if ex.body != nil {
		in = ex.body.detach()
	}
	code := ex.code
	if code == 0 && r.Context().Err() != nil {
		code = statusClientClosed
	}
	obs := metrics.Observation{Code: code, Duration: end.Sub(start), End: end,
		BytesIn: in, BytesOut: ex.bytesOut, Fault: ex.fault, Unit: ex.unit}
	ex.series.End(obs)
	if ex.key != "" && g.served != nil {
		g.served(UnitRequest{Service: ex.svc.name, Version: ex.v.name, Key: ex.key, Failed: obs.Failed(), Latency: obs.Duration, End: end})
	}
	for _, fs := range ex.flagSeries {
		if fs != nil {
			fs.End(obs)
		}
	}
	if ex.ep != nil {
		g.passive(ex.svc, ex.v, ex.ep, ex.trial, ex.fault, ex.upstreamStatus, g.now())
	}
	if tee != nil {
		g.dispatchMirror(ex, r, tee, code)
	}
	*ex = exchange{}
	g.pool.Put(ex)
	if p != nil {
		panic(p)
	}
}

// statusClientClosed is recorded (never sent) when the client went away before a status: nginx's 499.
const statusClientClosed = 499

// passive feeds an endpoint's passive health: connection failures, timeouts and 502/503/504 answers
// count against it, any other answer for it. trial: the request was the endpoint's trial after an
// ejection.
func (g *Gateway) passive(svc *service, v *version, ep *endpoint, trial bool, f metrics.Fault, status int, now time.Time) {
	bad := f == metrics.FaultConnect || f == metrics.FaultTimeout ||
		status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
	if !bad {
		if status != 0 {
			ep.succeeded(trial)
		} else {
			ep.untake(trial) // no answer (the client left): the next request is the trial
		}
		return
	}
	if d := ep.failed(svc.passive, trial, now); d > 0 {
		v.ejections.Inc()
		g.log.Warn("endpoint ejected after consecutive failures", "service", svc.name, "version", v.name,
			"endpoint", ep.raw, "for", d.String())
	}
}

func rewrite(pr *httputil.ProxyRequest) {
	ex := exchangeOf(pr.In)
	setTarget(pr.Out, ex.ep, ex.inURL)
	pr.Out.Host = pr.In.Host // keep the client's Host, as an edge gateway should
	pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
	pr.SetXForwarded()
}

// setTarget points an outgoing request at an endpoint, joining the endpoint's base path if it has one.
func setTarget(out *http.Request, ep *endpoint, in *url.URL) {
	out.URL.Scheme = ep.url.Scheme
	out.URL.Host = ep.url.Host
	ep.authorize(out.Header, nil)
	if base := ep.url.Path; base != "" && base != "/" {
		out.URL.Path = strings.TrimSuffix(base, "/") + "/" + strings.TrimPrefix(in.Path, "/")
		out.URL.RawPath = ""
	}
}

func (g *Gateway) modifyResponse(resp *http.Response) error {
	ex := exchangeOf(resp.Request)
	ex.upstreamStatus = resp.StatusCode
	if ex.llm != nil {
		g.teeLLM(ex, resp)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		ex.code = resp.StatusCode // the hijacked connection writes it, not WriteHeader
	}
	return nil
}

// proxyError answers a request the upstream failed: 502 for a failed connection, 504 for a timeout.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	ex := exchangeOf(r)
	if why := ex.paced.cutBy(); why != "" {
		ex.paced.answerCut(w, why) // the client's fault, not the endpoint's
		return
	}
	if r.Context().Err() != nil {
		ex.code = statusClientClosed // nobody to answer
		return
	}
	code, fault := classify(err)
	ex.fault = fault
	g.log.Debug("upstream request failed", "service", ex.svc.name, "version", ex.v.name, "endpoint", ex.ep.raw, "err", err)
	http.Error(w, fmt.Sprintf("aviary: service %q version %q endpoint %s: %s", ex.svc.name, ex.v.name, ex.ep.raw, describe(fault)), code)
}

func describe(f metrics.Fault) string {
	switch f {
	case metrics.FaultConnect:
		return "could not connect"
	case metrics.FaultTimeout:
		return "timed out waiting for the response"
	default:
		return "the upstream failed"
	}
}

// classify maps a transport error to the status the client gets and the fault recorded.
func classify(err error) (int, metrics.Fault) {
	if isDialError(err) {
		return http.StatusBadGateway, metrics.FaultConnect
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return http.StatusGatewayTimeout, metrics.FaultTimeout
	}
	return http.StatusBadGateway, metrics.FaultGateway
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// retryTransport retries, once and on another endpoint of the same version, a request whose
// connection failed before any of it was sent. It never moves a request to another version.
type retryTransport struct {
	base http.RoundTripper
	g    *Gateway
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err == nil {
		return resp, nil
	}
	ex := exchangeOf(req)
	if ex.retried || !isDialError(err) || (ex.body != nil && ex.body.read() > 0) || req.Context().Err() != nil {
		return nil, err
	}
	now := t.g.now()
	t.g.passive(ex.svc, ex.v, ex.ep, ex.trial, metrics.FaultConnect, 0, now)
	next, trial := ex.v.state.picker.pick(ex.v.endpoints, now.UnixNano(), ex.ep)
	ex.trial = false // given back or decided by passive
	if next == nil {
		return nil, err
	}
	ex.retried = true
	next.authorize(req.Header, ex.ep)
	ex.ep, ex.trial = next, trial
	ex.v.retries.Inc()
	setTarget(req, next, ex.inURL)
	return t.base.RoundTrip(req)
}

// bodyReader counts the request body, tees it for a mirror copy, and ignores the transport's Close
// while nothing was read, so that a failed connection can be retried with the body intact.
type bodyReader struct {
	rc  io.ReadCloser
	n   atomic.Int64
	tee *mirrorCopy // nil: not mirrored
	// copied: the tee holds the client's body already (an LLM request read whole and rewritten),
	// so what the upstream reads is not copied again
	copied bool

	mu       sync.Mutex // guards tee against detach; the transport may still read after the handler ends
	detached bool
	eof      bool
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	if b.tee != nil || err == io.EOF {
		b.mu.Lock()
		if !b.detached {
			if b.tee != nil && !b.copied {
				b.tee.write(p[:n])
			}
			if err == io.EOF {
				b.eof = true
			}
		}
		b.mu.Unlock()
	}
	return n, err
}

func (b *bodyReader) read() int64 { return b.n.Load() }

func (b *bodyReader) Close() error {
	if b.n.Load() == 0 {
		return nil // the server closes the body at the end of the request anyway
	}
	return b.rc.Close()
}

// detach ends the reader's link to the exchange and returns the bytes read.
func (b *bodyReader) detach() int64 {
	b.mu.Lock()
	b.detached = true
	if b.tee != nil {
		b.tee.complete = b.eof
	}
	b.mu.Unlock()
	return b.n.Load()
}

// bufferPool lends ReverseProxy its copy buffers instead of allocating 32 KiB per request.
type bufferPool struct{}

const copyBufferSize = 32 << 10

var copyBuffers = sync.Pool{New: func() any { return new([copyBufferSize]byte) }}

func (bufferPool) Get() []byte { return copyBuffers.Get().(*[copyBufferSize]byte)[:] }

func (bufferPool) Put(b []byte) {
	if len(b) == copyBufferSize {
		copyBuffers.Put((*[copyBufferSize]byte)(b))
	}
}
