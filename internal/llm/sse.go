package llm

import "bytes"

// sseDecoder frames a server-sent event stream (the WHATWG EventSource rules) from bytes that
// may be split anywhere. Lines end in "\n", "\r\n" or "\r"; an empty line ends an event;
// "data:" lines are joined with "\n"; "event:" names the event; lines that start with ':'
// are comments. A BOM at the very start is dropped.
//
// Memory is bounded: an event whose data and current line together pass limit is dropped
// (and counted in oversized) from that moment to its end, never buffered further. Whether an
// event is dropped depends only on its bytes, never on how they were split, so that a
// parser's results do not depend on the network's packet boundaries.
type sseDecoder struct {
	emit  func(name, data []byte) // called for every complete event that has data
	limit int

	line     []byte // the current line, when it spans Writes
	lineLong bool   // the current line passed the limit: discarding it to its end
	prevCR   bool   // the last byte was '\r': a '\n' right after it ends no new line
	started  bool   // a line has been seen (for the BOM)

	data      []byte
	ref       []byte // the data, when it is one line still in the bytes being written (then data is empty)
	hasData   bool
	name      [32]byte
	nameLen   int  // -1: the name was longer than the array, so it matches nothing
	drop      bool // the current event passed the limit
	oversized int  // events dropped for their size
}

// keepBuf is the capacity above which a buffer is released after use rather than kept for the
// next event, so a single large event does not pin its memory for the rest of a long stream.
const keepBuf = 64 << 10

func (d *sseDecoder) write(b []byte) {
	nl, cr := -1, -1
	for i := 0; i < len(b); {
		if d.prevCR {
			d.prevCR = false
			if b[i] == '\n' {
				i++
				continue
			}
		}
		e := lineEnd(b, i, &nl, &cr)
		if e < 0 {
			d.own()
			d.partial(b[i:])
			return
		}
		d.prevCR = b[e] == '\r'
		seg := b[i:e]
		i = e + 1
		switch {
		case d.lineLong:
			d.lineLong, d.started = false, true
		case len(d.line) > 0:
			d.line = append(d.line, seg...)
			d.lineDone(d.line, false)
			d.line = d.line[:0]
		default:
			d.lineDone(seg, true)
		}
	}
	d.own()
}

// lineEnd returns the index of the first '\r' or '\n' in b at or after from, or -1. *nl and *cr
// cache the index of the next '\n' and '\r' (len(b) if there is none) between calls on the
// same b, starting from -1, so that each byte of b is searched for each at most once.
func lineEnd(b []byte, from int, nl, cr *int) int {
	if *nl < from {
		*nl = len(b)
		if b[from] == '\n' { // an empty line, which ends an event: no need to search
			*nl = from
		} else if j := bytes.IndexByte(b[from:], '\n'); j >= 0 {
			*nl = from + j
		}
	}
	if *cr < from {
		*cr = len(b)
		if j := bytes.IndexByte(b[from:], '\r'); j >= 0 {
			*cr = from + j
		}
	}
	if e := min(*nl, *cr); e < len(b) {
		return e
	}
	return -1
}

// nextLineEnd returns the index of the first '\r' or '\n' in b at or after from, or -1. *nl
// caches the index of the next '\n' (len(b) if there is none) between calls on the same b,
// starting from -1, so that many lines ended by '\r' do not each rescan for a far '\n'.
func nextLineEnd(b []byte, from int, nl *int) int {
	if *nl < from {
		*nl = len(b)
		if j := bytes.IndexByte(b[from:], '\n'); j >= 0 {
			*nl = from + j
		}
	}
	if j := bytes.IndexByte(b[from:*nl], '\r'); j >= 0 {
		return from + j
	}
	if *nl == len(b) {
		return -1
	}
	return *nl
}

// own copies the data that still refers to the caller's bytes into the decoder's buffer, before
// write returns and the caller may reuse them.
func (d *sseDecoder) own() {
	if d.ref != nil {
		d.data = append(d.data[:0], d.ref...)
		d.ref = nil
	}
}

// partial keeps the start of a line that continues in a later Write.
func (d *sseDecoder) partial(b []byte) {
	if d.lineLong {
		return
	}
	if len(d.data)+len(d.line)+len(b) > d.limit { // own has moved any ref into data
		d.lineLong = true
		d.line = release(d.line)
		d.dropEvent()
		return
	}
	d.line = append(d.line, b...)
}

func (d *sseDecoder) dropEvent() {
	d.drop = true
	d.data, d.ref = release(d.data), nil
	d.hasData = false
}

func release(b []byte) []byte {
	if cap(b) > keepBuf {
		return nil
	}
	return b[:0]
}

// lineDone reads a complete line. inPlace is true when line is in the bytes being written,
// which stay valid until write returns: the data of a one-line event that ends within the same
// write is then read where it is, never copied.
func (d *sseDecoder) lineDone(line []byte, inPlace bool) {
	if !d.started {
		d.started = true
		line = bytes.TrimPrefix(line, []byte("\uFEFF"))
	}
	if len(line) == 0 {
		d.dispatch()
		return
	}
	if d.drop {
		return
	}
	if len(d.data)+len(d.ref)+len(line) > d.limit {
		d.dropEvent()
		return
	}
	if line[0] == ':' {
		return
	}
	field, value := line, []byte(nil)
	switch {
	// The field is the line up to its first ':'; the two that count are found without a search.
	case len(line) >= 5 && string(line[:5]) == "data:":
		field, value = line[:4], line[5:]
	case len(line) >= 6 && string(line[:6]) == "event:":
		field, value = line[:5], line[6:]
	default:
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
		}
	}
	if len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	switch string(field) {
	case "data":
		switch {
		case !d.hasData && inPlace && len(value) > 0:
			d.ref = value
		case d.hasData:
			d.own()
			d.data = append(d.data, '\n')
			fallthrough
		default:
			d.data = append(d.data, value...)
		}
		d.hasData = true
	case "event":
		d.nameLen = copy(d.name[:], value)
		if len(value) > len(d.name) {
			d.nameLen = -1
		}
	}
}

func (d *sseDecoder) eventName() []byte {
	if d.nameLen < 0 {
		return []byte("?")
	}
	return d.name[:d.nameLen]
}

func (d *sseDecoder) dispatch() {
	switch {
	case d.drop:
		d.oversized++
	case d.ref != nil:
		d.emit(d.eventName(), d.ref)
	case len(d.data) > 0:
		d.emit(d.eventName(), d.data)
	}
	d.drop, d.hasData, d.nameLen, d.ref = false, false, 0, nil
	d.data = release(d.data)
}

// finish ends the stream. An event whose last line ended but whose closing empty line never
// came is still delivered (some servers end "data: [DONE]\n" with one newline); an event cut
// inside a line is not, as the SSE rules say.
func (d *sseDecoder) finish() {
	switch {
	case d.lineLong || d.drop:
		d.oversized++
	case len(d.line) == 0 && len(d.data) > 0:
		d.emit(d.eventName(), d.data)
	}
	d.line, d.data = nil, nil
}
