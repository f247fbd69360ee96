package fakellm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// api is one wire format: how to read its requests, and how to write a plan as one JSON body or
// as a stream of events. Each API writes its own error bodies too, so a client library sees the
// shapes it expects.
type api interface {
	parse(body []byte) (request, error)
	writeError(w http.ResponseWriter, status int, msg string)
	writeJSON(w http.ResponseWriter, p *plan)
	// open is sent as soon as the request is accepted, before the time to first token; delta
	// carries token i; finish ends a complete answer; fail ends a stream with the API's error
	// event after sent tokens.
	open(e *events, p *plan)
	delta(e *events, p *plan, i int)
	finish(e *events, p *plan)
	fail(e *events, p *plan, sent int)
}

// llm serves one LLM endpoint: read the request, echo what it asked for, then fail it, answer it
// as JSON, or stream it, as Options decide.
func (s *server) llm(path string, a api) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.o.Clock.Now()
		if s.o.Compress != "" {
			cw := &compressWriter{ResponseWriter: w, coding: s.o.Compress}
			defer cw.close()
			w = cw
		}
		ep := s.stats.endpoint(path)
		n := ep.request()
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		if err != nil {
			ep.badRequest()
			a.writeError(w, http.StatusBadRequest, fmt.Sprintf("read request body: %v", err))
			return
		}
		req, err := a.parse(body)
		if err != nil {
			ep.badRequest()
			a.writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		echo(w.Header(), req)
		if evenly(n, s.o.ErrorRate, s.errPhase) {
			ep.failed()
			a.writeError(w, http.StatusInternalServerError, "fakellm: injected server error (ErrorRate)")
			return
		}
		pace := pacer{ctx: r.Context(), start: start, clock: s.o.Clock}
		if !req.stream {
			p := s.newPlan(n, req, false)
			// A JSON answer arrives when a stream's last token would have.
			if !pace.wait(s.due(len(p.tokens) - 1)) {
				ep.canceled()
				return
			}
			a.writeJSON(w, p)
			return
		}
		midStreamError := evenly(ep.stream(), s.o.MidStreamErrorRate, s.midPhase)
		switch s.stream(w, a, s.newPlan(n, req, midStreamError), &pace) {
		case streamFailed:
			ep.failedMid()
		case streamCanceled:
			ep.canceled()
		}
	})
}

type streamOutcome int

const (
	streamCompleted streamOutcome = iota
	streamFailed                  // ended by a mid-stream error, as planned
	streamCanceled                // the client went away
)

// stream writes p as events, token i at due(i) after the request arrived.
func (s *server) stream(w http.ResponseWriter, a api, p *plan, pace *pacer) streamOutcome {
	e := newEvents(w)
	a.open(e, p)
	for i := range p.tokens {
		if e.err != nil || !pace.wait(s.due(i)) {
			return streamCanceled
		}
		if i == p.failAt {
			a.fail(e, p, i)
			return streamFailed
		}
		if i == 0 && s.o.Stamp {
			p.tokens[0] = marker(s.o.Quality) + " " + StampPrefix + strconv.FormatInt(s.o.Clock.Now().UnixNano(), 10) + " "
		}
		a.delta(e, p, i)
	}
	if p.failAt == len(p.tokens) { // a one-token answer fails after its only token
		a.fail(e, p, len(p.tokens))
		return streamFailed
	}
	a.finish(e, p)
	if e.err != nil {
		return streamCanceled
	}
	return streamCompleted
}

// due is when token i is sent, counted from the request's arrival.
func (s *server) due(i int) time.Duration { return s.o.TTFT + time.Duration(i)*s.o.TokenEvery }

// pacer sleeps until points in time counted from start — not from the previous write, so the time
// spent writing never slows the pace — and stops early when the client goes away.
type pacer struct {
	ctx   context.Context
	start time.Time
	clock Clock
}

// wait reports false if the client went away before at.
func (p *pacer) wait(at time.Duration) bool {
	d := p.start.Add(at).Sub(p.clock.Now())
	if d <= 0 {
		return p.ctx.Err() == nil
	}
	return p.clock.Sleep(p.ctx, d)
}

// events writes server-sent events, flushing each one so the client gets it at once. After the
// first failed write (the client went away) it writes nothing more and err says why.
type events struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf bytes.Buffer
	seq int // the OpenAI Responses API's sequence_number of the next event
	err error
}

func newEvents(w http.ResponseWriter) *events {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	e := &events{w: w, rc: http.NewResponseController(w)}
	// Send the status and headers now: a client measures time to first byte apart from time to
	// first token.
	e.flush()
	return e
}

// send writes one event: an "event:" line when name is set, then data as JSON.
func (e *events) send(name string, data any) {
	b, err := json.Marshal(data)
	if err != nil {
		panic(fmt.Sprintf("fakellm: marshal %s event: %v", name, err)) // the types here always marshal
	}
	e.write(name, b)
}

func (e *events) write(name string, data []byte) {
	if e.err != nil {
		return
	}
	e.buf.Reset()
	if name != "" {
		e.buf.WriteString("event: " + name + "\n")
	}
	e.buf.WriteString("data: ")
	e.buf.Write(data)
	e.buf.WriteString("\n\n")
	if _, err := e.w.Write(e.buf.Bytes()); err != nil {
		e.err = err
		return
	}
	e.flush()
}

func (e *events) flush() {
	if err := e.rc.Flush(); err != nil && e.err == nil {
		e.err = fmt.Errorf("flush event stream: %w", err)
	}
}

// writeJSON writes a whole JSON body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
