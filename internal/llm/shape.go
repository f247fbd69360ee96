package llm

import "bytes"

// The fast path. Most events of a stream are content deltas that differ from the one before
// only in a few values: the text, a sequence number, an obfuscation pad. Walking each one's JSON
// costs hundreds of nanoseconds; comparing it with the last content event costs tens. So when
// the full walk has read a content event that did nothing but carry content, the event is kept
// as a template (a shape): its bytes, and where its values are.
//
// A value is a hole of the shape when the walk of its event only skips it (valueEnd) or only
// asks whether it is empty (the content fields): replacing it by any other value that ends where
// valueEnd says leaves every other step of the walk the same. Everything else is fixed: keys,
// punctuation, white space, and the values the walk acts on (type, model, finish_reason,
// usage, error), which in a shape are the ones that did nothing. An event matches a shape when
// its bytes are the shape's fixed bytes with any value in each active hole: the full walk would
// then do exactly what it did for the shape's event, which is nothing but content (when a
// content hole holds a non-empty value) and calls that change nothing when made again (the
// model is kept from the first event that names it, and the shape's event named it already).
//
// Content holes are always active. The others start inactive (their bytes must match too) and
// are activated when an event differs from the shape inside one of them, so a stream whose ids
// never change compares them with the fixed bytes around them in one go. Anything else — a
// different key, a finish reason, usage, an error, an event name that differs — is a mismatch,
// and the event takes the full walk, which may then make it the new shape.

// maxShape bounds the bytes and holes a shape keeps; a larger content event is not kept.
const (
	maxShape      = 8 << 10
	maxShapeHoles = 64
)

type hole struct {
	start, end int  // the value's bytes in the shape
	content    bool // a content field: the event is content when the value is not empty
	active     bool
}

type shape struct {
	off     bool // the fast path is switched off (tests compare with the full walk)
	ok      bool // buf, name and holes hold a shape
	used    bool // an event has matched it
	waste   int  // shapes in a row replaced without a match
	skip    int  // content events to let pass before keeping another shape
	nameLen int
	name    [32]byte
	buf     []byte
	holes   []hole // in order of position
	active  []hole // the active holes, in order
	spare   []hole // for building the next shape
}

// match reports whether the event matches the shape, and if it does, whether it is content.
func (s *shape) match(name, data []byte) (content, ok bool) {
	if !s.ok || string(name) != string(s.name[:s.nameLen]) {
		return false, false
	}
	for {
		content, miss := s.try(data)
		if miss == matched {
			s.used = true
			return content, true
		}
		if miss < 0 || !s.activate(miss) {
			return false, false
		}
	}
}

const (
	matched = -1
	noMatch = -2
)

// try compares data with the shape. It returns matched, noMatch, or the offset in the shape of
// the first fixed byte that differs, which may lie in an inactive hole.
func (s *shape) try(d []byte) (content bool, miss int) {
	t := s.buf
	i, ti := 0, 0
	for _, h := range s.active {
		seg := t[ti:h.start]
		if len(d)-i < len(seg) || string(d[i:i+len(seg)]) != string(seg) {
			return false, ti + differ(d[i:], seg)
		}
		i += len(seg)
		e := valueEnd(d, i)
		if e < 0 {
			return false, noMatch
		}
		if h.content && !content {
			content = !isEmpty(d[i:e])
		}
		i, ti = e, h.end
	}
	if string(d[i:]) != string(t[ti:]) {
		return false, ti + differ(d[i:], t[ti:])
	}
	return content, matched
}

// differ returns the index of the first byte where a and b differ, or the length of the shorter.
func differ(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// activate activates the inactive hole at or just before offset at (a longer value differs
// first at the byte after the shorter one's end), and reports whether there was one.
func (s *shape) activate(at int) bool {
	for i := range s.holes {
		h := &s.holes[i]
		if h.start > at {
			break
		}
		if at <= h.end && !h.active {
			h.active = true
			s.active = s.active[:0]
			for _, h := range s.holes {
				if h.active {
					s.active = append(s.active, h)
				}
			}
			return true
		}
	}
	return false
}

// shapeBuilder collects the holes of an event as its format's shape function walks it.
type shapeBuilder struct {
	base  []byte // the event's data; the values walked are slices of it
	holes []hole
	bad   bool
}

// add makes v, a value of the event, a hole.
func (b *shapeBuilder) add(v []byte, content bool) {
	off := cap(b.base) - cap(v)
	if off < 0 || off+len(v) > len(b.base) || len(b.holes) >= maxShapeHoles {
		b.bad = true
		return
	}
	b.holes = append(b.holes, hole{start: off, end: off + len(v), content: content, active: content})
}

// same reports whether u and v are the same slice of one array.
func same(u, v []byte) bool { return len(u) == len(v) && cap(u) == cap(v) }

// learn keeps the event as the shape when build, the format's shape function, finds that the
// full walk did nothing with it but count content. It is called for content events that did not
// match the shape. A shape replaced before any event matched it, or an event that could not be
// one, is a waste; after wastes in a row learning backs off (it skips 1, 3, 7 ... 63 content
// events), so that a stream whose events never repeat a shape costs little more than the full
// walk.
func (p *ResponseParser) learn(build func(b *shapeBuilder, name, data []byte) bool, name, data []byte) {
	s := &p.shape
	if s.off || len(data) > maxShape {
		return
	}
	if s.skip > 0 {
		s.skip--
		return
	}
	if s.spare == nil { // one allocation for the three lists of holes, enough for most shapes
		h := make([]hole, 3*16)
		s.spare, s.holes, s.active = h[0:0:16], h[16:16:32], h[32:32:48]
	}
	b := shapeBuilder{base: data, holes: s.spare[:0]}
	ok := build(&b, name, data) && !b.bad
	s.spare = b.holes
	if !ok || s.ok && !s.used {
		s.waste = min(s.waste+1, 6)
		s.skip = 1<<s.waste - 1
	} else {
		s.waste = 0
	}
	if !ok {
		return
	}
	s.holes, s.spare = s.spare, s.holes
	s.buf = append(s.buf[:0], data...)
	s.nameLen = copy(s.name[:], name)
	s.active = s.active[:0]
	for _, h := range s.holes {
		if h.active {
			s.active = append(s.active, h)
		}
	}
	s.ok, s.used = true, false
}

// chatShape is the shape of a chat chunk (trimmed of space) whose full walk (chatObject) did
// nothing but find content: no usage object, no error, no finish reason, not an "error" event.
func chatShape(b *shapeBuilder, name, d []byte) bool {
	if string(name) == "error" {
		return false
	}
	content := false
	o := objectOf(d)
	for k, ok := o.key(); ok; k, ok = o.key() {
		if string(k) == "choices" {
			c, n := chatChoicesShape(b, o.rest())
			if n <= 0 {
				return false
			}
			content = content || c
			o.skip(n)
			continue
		}
		v, ok := o.value()
		if !ok {
			return false
		}
		switch string(k) {
		case "model": // fixed: the model is kept from the first event that names it
		case "usage":
			if isObject(v) {
				return false
			}
		case "error":
			if !isEmpty(v) {
				return false
			}
		default:
			b.add(v, false)
		}
	}
	return content && o.closed()
}

// chatChoicesShape follows chatChoices; end is 0 when the walk would not be the same.
func chatChoicesShape(b *shapeBuilder, r []byte) (content bool, end int) {
	a := arrayOf(r)
	for a.start() {
		if e := a.rest(); len(e) == 0 || e[0] != '{' {
			return false, 0
		}
		c := objectOf(a.rest())
		for k, ok := c.key(); ok; k, ok = c.key() {
			switch string(k) {
			case "delta":
				has, n := deltaShape(b, c.rest())
				if n <= 0 {
					return false, 0
				}
				content = content || has
				c.skip(n)
			case "finish_reason":
				v, ok := c.value()
				if !ok || text(v, maxText) != "" {
					return false, 0
				}
			default:
				v, ok := c.value()
				if !ok {
					return false, 0
				}
				b.add(v, false)
			}
		}
		if c.end <= 0 {
			return false, 0
		}
		a.skip(c.end)
	}
	return content, a.end
}

// deltaShape follows deltaHasContent: every content field is a content hole.
func deltaShape(b *shapeBuilder, r []byte) (content bool, end int) {
	o := objectOf(r)
	for k, v, ok := o.next(); ok; k, v, ok = o.next() {
		switch string(k) {
		case "content", "tool_calls", "refusal", "reasoning_content", "reasoning", "function_call", "audio":
			b.add(v, true)
			content = content || !isEmpty(v)
		default:
			b.add(v, false)
		}
	}
	return content, o.end
}

// responsesShape is the shape of a Responses content delta: a type (or event name) ending in
// ".delta" that is none of the types the full walk acts on, and a non-empty last delta.
func responsesShape(b *shapeBuilder, name, data []byte) bool {
	var typ, delta []byte
	last := -1
	o := objectOf(data)
	for k, v, ok := o.next(); ok; k, v, ok = o.next() {
		switch string(k) {
		case "type": // fixed
			typ = v
		case "delta":
			delta, last = v, len(b.holes)
			b.add(v, false)
		default: // "response" too: only the events the shape cannot be read it
			b.add(v, false)
		}
	}
	if !o.closed() || last < 0 || b.bad || isEmpty(delta) {
		return false
	}
	t, ok := isString(typ)
	if !ok {
		t = name
	}
	switch string(t) {
	case "response.completed", "response.incomplete", "response.failed",
		"response.created", "response.in_progress", "response.queued", "error":
		return false
	}
	if !bytes.HasSuffix(t, []byte(".delta")) {
		return false
	}
	b.holes[last].content, b.holes[last].active = true, true
	return true
}

// anthropicShape is the shape of a content_block_delta whose delta carries content. Only the
// last delta member is walked; earlier ones, and the message, usage and error members that
// other event types read, are skipped.
func anthropicShape(b *shapeBuilder, name, data []byte) bool {
	var typ, delta []byte
	o := objectOf(data)
	for k, v, ok := o.next(); ok; k, v, ok = o.next() {
		switch string(k) {
		case "type":
			typ = v
		case "delta":
			delta = v
		}
	}
	if !o.closed() || delta == nil {
		return false
	}
	t, ok := isString(typ)
	if !ok {
		t = name
	}
	if string(t) != "content_block_delta" {
		return false
	}
	o = objectOf(data)
	for k, v, ok := o.next(); ok; k, v, ok = o.next() {
		switch {
		case string(k) == "type":
		case string(k) == "delta" && same(v, delta):
			if !anthropicDeltaShape(b, v) {
				return false
			}
		default:
			b.add(v, false)
		}
	}
	return true
}

// anthropicDeltaShape follows anthropicDeltaHasContent: the field its type names is the content
// hole (its last occurrence), every other value but the type a hole.
func anthropicDeltaShape(b *shapeBuilder, delta []byte) bool {
	c, closed := anthropicDeltaContent(delta)
	if !closed || isEmpty(c) {
		return false
	}
	o := objectOf(delta)
	for k, v, ok := o.next(); ok; k, v, ok = o.next() {
		if string(k) != "type" {
			b.add(v, same(v, c))
		}
	}
	return true
}
