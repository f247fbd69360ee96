package gateway

import (
	"bytes"
	"strconv"
	"sync"
)

// framing follows the HTTP/1 request framing of one plain-text client connection as its bytes go by,
// to learn what net/http hides from handlers: whether a request carried both Content-Length and
// Transfer-Encoding. Go's server drops Content-Length from such a request and reads it by its chunks,
// as RFC 9112 §6.1 allows, but keeps the connection open, which the RFC forbids ("the server MUST
// close the connection after responding to such a request"): the two headers are the classic way to
// smuggle a request past a proxy in front that reads the other one. The handler asks next() for each
// request, in order, and closes the connection after answering one that carried both.
//
// It reads the bytes the way net/http does (request line, header lines, then a body framed by
// Transfer-Encoding on HTTP/1.1, else by Content-Length; chunks and trailers). Where it cannot be sure
// (a header line folded after Content-Length or Transfer-Encoding, a value too long to keep, an
// upgraded connection, too many pipelined requests) it gives up, and every later request on the
// connection is answered with Connection: close: a wrong guess costs a reconnection, never a
// smuggled request.
type framing struct {
	mu      sync.Mutex // Read (the server's reader) against next (the handler)
	state   frameState
	line    [lineKept]byte // the start of the current line
	n       int            // bytes of the line so far (may exceed lineKept)
	tail    uint64         // the last 8 bytes of the request line, for its HTTP version
	req     frameRequest   // the request whose headers are being read
	remain  int64          // body bytes left in the body or the current chunk
	pending []bool         // conflicting framing of requests read but not yet served, in order
	lost    bool           // gave up: every later request closes its connection
}

type frameState uint8

const (
	frameRequestLine frameState = iota
	frameHeader
	frameBody      // remain bytes of a Content-Length body
	frameChunkSize // a chunk-size line
	frameChunkData // remain bytes of a chunk
	frameChunkEnd  // the CRLF after a chunk's data
	frameTrailer   // trailer lines after the last chunk
	frameGivenUp   // lost, or an upgraded connection: no more parsing
)

// frameRequest is what the headers of one request say about its framing.
type frameRequest struct {
	contentLength int64
	hasLength     bool
	chunked       bool // Transfer-Encoding present (net/http accepts only "chunked"; anything else closes)
	http10        bool // HTTP/1.0 ignores Transfer-Encoding
	upgrade       bool // the connection may leave HTTP after this request
	optionsStar   bool // OPTIONS *: answered by net/http itself unless DisableGeneralOptionsHandler
	last          headerKind
}

type headerKind uint8

const (
	otherHeader headerKind = iota
	lengthHeader
	encodingHeader
)

// lineKept is how much of a line is kept: enough for the headers that matter and their values.
const lineKept = 64

// maxPending bounds requests read ahead of the handler (pipelining); beyond it the tracker gives up.
const maxPending = 32

var http10Tail = uint64FromString("HTTP/1.0")

func uint64FromString(s string) (v uint64) {
	for i := 0; i < len(s); i++ {
		v = v<<8 | uint64(s[i])
	}
	return v
}

// observe takes bytes the server has just read from the connection.
func (f *framing) observe(p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(p) > 0 && f.state != frameGivenUp {
		p = f.step(p)
	}
}

// step consumes some of p and returns the rest.
func (f *framing) step(p []byte) []byte {
	switch f.state {
	case frameBody, frameChunkData:
		k := min(int64(len(p)), f.remain)
		f.remain -= k
		if f.remain == 0 {
			if f.state == frameBody {
				f.state = frameRequestLine
			} else {
				f.state = frameChunkEnd
			}
		}
		return p[k:]
	}
	i := bytes.IndexByte(p, '\n')
	chunk := p
	if i >= 0 {
		chunk = p[:i]
	}
	f.keep(chunk)
	if i < 0 {
		return nil
	}
	line := f.line[:min(f.n, lineKept)]
	whole := f.n <= lineKept
	line = bytes.TrimSuffix(line, []byte{'\r'})
	f.endLine(line, whole)
	f.n, f.tail = 0, 0
	return p[i+1:]
}

// keep appends part of the current line.
func (f *framing) keep(b []byte) {
	if f.n < lineKept {
		copy(f.line[f.n:], b)
	}
	f.n += len(b)
	if f.state == frameRequestLine {
		for _, c := range b {
			if c != '\r' {
				f.tail = f.tail<<8 | uint64(c)
			}
		}
	}
}

// endLine acts on a complete line; whole is false when only its start was kept.
func (f *framing) endLine(line []byte, whole bool) {
	switch f.state {
	case frameRequestLine:
		if len(line) == 0 && f.n <= 1 {
			return // net/http skips empty lines between requests
		}
		f.req = frameRequest{http10: f.tail == http10Tail, optionsStar: bytes.HasPrefix(line, []byte("OPTIONS * "))}
		f.state = frameHeader
	case frameHeader:
		f.header(line, whole)
	case frameChunkSize:
		f.chunkSize(line, whole)
	case frameChunkEnd:
		if len(line) != 0 {
			f.giveUp() // net/http refuses the body and closes the connection
			return
		}
		f.state = frameChunkSize
	case frameTrailer:
		if len(line) == 0 {
			f.state = frameRequestLine
		}
	}
}

func (f *framing) header(line []byte, whole bool) {
	r := &f.req
	if len(line) == 0 {
		f.endHeaders()
		return
	}
	if line[0] == ' ' || line[0] == '\t' {
		if r.last != otherHeader {
			f.giveUp() // a folded Content-Length or Transfer-Encoding: too clever to follow
		}
		return
	}
	name, value, ok := bytes.Cut(line, []byte{':'})
	if !ok {
		r.last = otherHeader
		return // net/http answers 400 and closes
	}
	value = bytes.Trim(value, " \t")
	switch {
	case bytes.EqualFold(name, []byte("Content-Length")):
		r.last = lengthHeader
		n, err := strconv.ParseInt(string(value), 10, 64)
		if !whole || err != nil || n < 0 {
			f.giveUp()
			return
		}
		r.contentLength, r.hasLength = n, true
	case bytes.EqualFold(name, []byte("Transfer-Encoding")):
		r.last = encodingHeader
		r.chunked = true
	case bytes.EqualFold(name, []byte("Upgrade")):
		r.last, r.upgrade = otherHeader, true
	default:
		r.last = otherHeader
	}
}

func (f *framing) endHeaders() {
	r := f.req
	if !r.optionsStar {
		if len(f.pending) == maxPending {
			f.giveUp()
			return
		}
		f.pending = append(f.pending, r.hasLength && r.chunked)
	} else if r.hasLength && r.chunked {
		f.giveUp() // net/http answers OPTIONS * itself; the next request closes the connection
		return
	}
	switch {
	case r.upgrade:
		f.state = frameGivenUp // after a 101 the bytes are no longer HTTP/1
	case r.chunked && !r.http10:
		f.state = frameChunkSize
	case r.hasLength && r.contentLength > 0:
		f.state, f.remain = frameBody, r.contentLength
	default:
		f.state = frameRequestLine
	}
}

func (f *framing) chunkSize(line []byte, whole bool) {
	size, _, _ := bytes.Cut(line, []byte{';'})
	size = bytes.TrimRight(size, " \t")
	n, err := strconv.ParseInt(string(size), 16, 64)
	if !whole || err != nil || n < 0 {
		f.giveUp()
		return
	}
	if n == 0 {
		f.state = frameTrailer
		return
	}
	f.state, f.remain = frameChunkData, n
}

func (f *framing) giveUp() {
	f.lost = true
	f.state = frameGivenUp
	f.pending = nil
}

// next reports whether the connection must close after the response to the next request the
// handler serves: the request carried both Content-Length and Transfer-Encoding, or the tracker
// could not tell.
func (f *framing) next() (closeAfter bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.pending) == 0 {
		return true // not seen (given up, or after an upgrade): cannot vouch for it
	}
	conflict := f.pending[0]
	f.pending = f.pending[1:]
	return conflict || f.lost
}
