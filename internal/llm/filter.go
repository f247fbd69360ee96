package llm

import (
	"bytes"
	"encoding/json"
	"io"
)

// maxHold is the most a UsageChunkFilter holds of an incomplete event. A usage chunk is a few
// hundred bytes, so an event that grows past this cannot be one and is written through.
const maxHold = 64 << 10

// UsageChunkFilter is an io.Writer for the client's side of a chat completions stream when
// Aviary itself asked for stream usage (see [AddIncludeUsage]): it passes the server-sent
// events through unchanged, except the usage-only chunk (empty or absent choices and a usage
// object), which the client did not ask for. Every other event is written to the underlying
// writer within the Write that completes it, and consecutive events in one Write go out in
// one write; only an incomplete event is held back, up to 64 KiB, after which it is written
// through as it arrives. Call Flush when the stream ends, to write what is held of a last
// event that never completed. A UsageChunkFilter is not safe for concurrent use.
type UsageChunkFilter struct {
	w     io.Writer
	limit int

	held     []byte // the incomplete event carried over from earlier Writes
	heldLen  int    // bytes of the current event so far, held or written through
	through  bool   // the current event passed limit and is being written through
	lineText bool   // the current line has content
	prevCR   bool   // the last byte was '\r'
	tail     int8   // the previous Write ended an event on '\r': what to do with a '\n' next
	err      error  // the first write error; later Writes return it
	scratch  []byte // data lines joined, for an event with more than one
}

const (
	tailNone int8 = iota
	tailWrite
	tailDrop
)

// NewUsageChunkFilter returns a filter writing to w.
func NewUsageChunkFilter(w io.Writer) *UsageChunkFilter {
	return &UsageChunkFilter{w: w, limit: maxHold}
}

// Write filters b. It returns len(b) and nil unless the underlying writer fails.
func (f *UsageChunkFilter) Write(b []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	if len(b) == 0 {
		return 0, nil
	}
	run, i := f.resume(b) // b[run:evStart] passes and is not yet written
	evStart, nl := i, -1
	for i < len(b) {
		c := b[i]
		if c != '\r' && c != '\n' {
			f.lineText, f.prevCR = true, false
			e := nextLineEnd(b, i, &nl)
			if e < 0 {
				break // the rest is an unfinished line
			}
			i = e
			continue
		}
		i++
		if c == '\n' && f.prevCR { // the '\n' of a "\r\n" whose line already ended
			f.prevCR = false
			continue
		}
		f.prevCR = c == '\r'
		if f.lineText {
			f.lineText = false
			continue
		}
		// An empty line: the event ends here (with the '\n' of a "\r\n" when it has come).
		size := f.heldLen + i - evStart
		end := i
		if c == '\r' {
			if i < len(b) && b[i] == '\n' {
				end, f.prevCR = i+1, false
			} else if i == len(b) {
				f.tail = tailWrite
			}
		}
		var err error
		if run, err = f.endEvent(b, run, evStart, end, size); err != nil {
			return run, err
		}
		i, evStart = end, end
	}
	if err := f.out(b[run:evStart]); err != nil {
		return run, err
	}
	if err := f.carry(b[evStart:]); err != nil {
		return evStart, err
	}
	return len(b), nil
}

// endEvent deals with the event that has just ended at b[end] and began at b[evStart] (or, with
// a held start, in an earlier Write), size bytes in all: a usage chunk is dropped (the run that
// passes before it is written, and the next run starts after it); any other event passes, its held
// start written first. It returns where the run that passes starts now, or, on a write error, how
// much of b the Write reports written.
func (f *UsageChunkFilter) endEvent(b []byte, run, evStart, end, size int) (int, error) {
	keep := f.through || size > f.limit || !f.usageOnly(b[evStart:end])
	if f.tail != tailNone && !keep {
		f.tail = tailDrop
	}
	if !keep {
		if err := f.out(b[run:evStart]); err != nil {
			return run, err
		}
		run = end
	} else if len(f.held) > 0 {
		// The held start of this event goes out before the rest of it, which is in the run.
		if err := f.out(f.held); err != nil {
			return 0, err
		}
	}
	f.held, f.heldLen, f.through = f.held[:0], 0, false
	return run, nil
}

// resume starts a Write after one that ended an event on '\r': a '\n' first completes that "\r\n"
// and is skipped, and dropped with the event when the event was a usage chunk. It returns where
// the run that passes starts, and where the scan starts.
func (f *UsageChunkFilter) resume(b []byte) (run, i int) {
	if f.tail != tailNone {
		if b[0] == '\n' {
			i = 1
			f.prevCR = false
			if f.tail == tailDrop {
				run = 1
			}
		}
		f.tail = tailNone
	}
	return run, i
}

// carry keeps the unfinished event a Write ends with: held, or written through once the event
// has grown past the limit.
func (f *UsageChunkFilter) carry(rest []byte) error {
	f.heldLen += len(rest)
	switch {
	case f.through:
		return f.out(rest)
	case f.heldLen > f.limit:
		f.through = true
		if err := f.out(f.held); err != nil {
			return err
		}
		if err := f.out(rest); err != nil {
			return err
		}
		f.held = release(f.held)
	default:
		f.held = append(f.held, rest...)
	}
	return nil
}

// Flush writes what is held of an event that has not completed. Call it when the stream ends.
func (f *UsageChunkFilter) Flush() error {
	if f.err != nil {
		return f.err
	}
	err := f.out(f.held)
	f.held, f.heldLen, f.through, f.lineText, f.prevCR, f.tail = nil, 0, false, false, false, tailNone
	return err
}

func (f *UsageChunkFilter) out(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	n, err := f.w.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		f.err = err
	}
	return err
}

// usageOnly reports whether the event whose tail is in b (its start may be held) is a chat
// chunk with empty choices and a usage object. It looks at the data lines only.
func (f *UsageChunkFilter) usageOnly(b []byte) bool {
	ev := b
	if len(f.held) > 0 {
		f.held = append(f.held, b...)
		ev = f.held
		defer func() { f.held = f.held[:len(f.held)-len(b)] }()
	}
	data := f.eventData(ev)
	if data == nil || !mayHaveUsageObject(data) {
		return false
	}
	// Choices must be [] or null; absent only in an object that says it is a chat chunk, so
	// that no other API's event (an Anthropic message_delta has usage and no choices) matches.
	hasChoices, choices, chunk, usage := false, false, false, false
	o := objectOf(data)
	for k, v, ok := o.next(); ok; k, v, ok = o.next() {
		switch {
		case keyIs(k, "choices"):
			hasChoices, choices = true, isNull(v) || v[0] == '[' && isEmpty(v)
		case keyIs(k, "object"):
			chunk = stringIs(v, "chat.completion.chunk")
		case keyIs(k, "usage"):
			usage = isObject(v)
		}
	}
	// The scan is lenient; a chunk is only ever removed when it is valid JSON.
	return o.closed() && (choices || chunk && !hasChoices) && usage && json.Valid(data)
}

// eventData returns the data of an event (its data lines joined with "\n"), or nil if none.
func (f *UsageChunkFilter) eventData(ev []byte) []byte {
	var data []byte
	n, nl := 0, -1
	for i := 0; i < len(ev); {
		e := nextLineEnd(ev, i, &nl)
		if e < 0 {
			e = len(ev)
		}
		line := ev[i:e]
		i = e + 1
		field, value := line, []byte(nil)
		if j := bytes.IndexByte(line, ':'); j >= 0 {
			field, value = line[:j], line[j+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		if string(field) != "data" {
			continue
		}
		switch n++; n {
		case 1:
			data = value
		case 2:
			f.scratch = append(append(append(f.scratch[:0], data...), '\n'), value...)
			data = f.scratch
		default:
			f.scratch = append(append(f.scratch, '\n'), value...)
			data = f.scratch
		}
	}
	if n > 0 && data == nil {
		data = []byte{}
	}
	return data
}

// mayHaveUsageObject is a quick and exact pre-check: a usage member whose value is an object
// appears in the bytes as "usage", a colon and a brace, unless its key is written with escapes.
// Every chunk of a stream with include_usage has "usage":null, so this spares walking them.
func mayHaveUsageObject(data []byte) bool {
	if bytes.Contains(data, []byte(`\u`)) {
		return true
	}
	for rest := data; ; {
		i := bytes.Index(rest, []byte(`"usage"`))
		if i < 0 {
			return false
		}
		rest = rest[i+len(`"usage"`):]
		j := skipSpace(rest, 0)
		if j < len(rest) && rest[j] == ':' {
			if k := skipSpace(rest, j+1); k < len(rest) && rest[k] == '{' {
				return true
			}
		}
	}
}
