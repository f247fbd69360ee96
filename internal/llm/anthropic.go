package llm

// Anthropic Messages. A stream is a series of typed events: message_start (the message with
// its model and usage so far: input_tokens, cache reads and writes, a first output count),
// content_block_start, content_block_delta (text_delta, input_json_delta, thinking_delta,
// signature_delta, citations_delta), content_block_stop, message_delta (delta.stop_reason and
// usage with the running total of output_tokens, and on newer versions cumulative input
// counts), message_stop, ping, and error, which may arrive after a 200. A JSON body is the
// message: model, stop_reason, usage; or {"type":"error","error":{...}}.
var anthropicFormat = wireFormat{
	event: func(p *ResponseParser, name, data []byte) {
		if content, ok := p.shape.match(name, data); ok {
			if content {
				p.content()
			}
			return
		}
		var typ, msg, delta, usage, errv []byte
		o := objectOf(data)
		for k, v, ok := o.next(); ok; k, v, ok = o.next() {
			switch string(k) {
			case "type":
				typ = v
			case "message":
				msg = v
			case "delta":
				delta = v
			case "usage":
				usage = v
			case "error":
				errv = v
			}
		}
		t, ok := isString(typ)
		if !ok {
			t = name
		}
		switch string(t) {
		case "content_block_delta":
			if anthropicDeltaHasContent(delta) {
				p.content()
				p.learn(anthropicShape, name, data)
			}
		case "message_start":
			p.anthropicMessage(msg)
		case "message_delta":
			d := objectOf(delta)
			for k, v, ok := d.next(); ok; k, v, ok = d.next() {
				if string(k) == "stop_reason" {
					p.addFinish(v)
				}
			}
			if isObject(usage) {
				p.anth.merge(usage)
			}
		case "message_stop":
			p.ex.Complete = true
		case "error":
			if isEmpty(errv) {
				errv = data
			}
			p.setError(errv)
		}
	},
	body: func(p *ResponseParser, body []byte) bool { return p.anthropicMessage(body) },
	finish: func(p *ResponseParser) {
		if u := p.anth; u.known {
			p.usage = Usage{Input: u.input + u.cacheRead + u.cacheWrite, Output: u.output, Cached: u.cacheRead,
				CacheWrite: u.cacheWrite, Known: true}
		}
	},
}

// anthropicUsage holds Anthropic's counts as reported; Finish normalises them into a Usage.
type anthropicUsage struct {
	input, cacheRead, cacheWrite, output int64
	known                                bool
}

// merge takes the counts a usage object reports. message_delta's counts are cumulative, so a
// later count replaces an earlier one; a count that is absent leaves the earlier one.
func (u *anthropicUsage) merge(v []byte) {
	u.known = true
	o := objectOf(v)
	for k, v, ok := o.next(); ok; k, v, ok = o.next() {
		n, ok := integer(v)
		if !ok {
			continue
		}
		switch string(k) {
		case "input_tokens":
			u.input = n
		case "output_tokens":
			u.output = n
		case "cache_read_input_tokens":
			u.cacheRead = n
		case "cache_creation_input_tokens":
			u.cacheWrite = n
		}
	}
}

// anthropicMessage reads a message object (message_start's, or a JSON body).
func (p *ResponseParser) anthropicMessage(obj []byte) bool {
	o := objectOf(obj)
	for k, v, ok := o.next(); ok; k, v, ok = o.next() {
		switch string(k) {
		case "model":
			p.setModel(v)
		case "usage":
			if isObject(v) {
				p.anth.merge(v)
			}
		case "stop_reason":
			p.addFinish(v)
		case "error":
			if !isEmpty(v) {
				p.setError(v)
			}
		}
	}
	return o.closed()
}

// anthropicDeltaHasContent reports whether a content_block_delta carries text, tool input or
// thinking. Signatures and citations are not content the user waits for.
func anthropicDeltaHasContent(delta []byte) bool {
	c, _ := anthropicDeltaContent(delta)
	return !isEmpty(c)
}

// anthropicDeltaContent returns the value of the field a content_block_delta's type names as its
// content (text, partial_json or thinking; the last occurrence), nil for other types, and
// whether the object was whole.
func anthropicDeltaContent(delta []byte) (content []byte, closed bool) {
	var typ, text, partial, thinking []byte
	o := objectOf(delta)
	for k, v, ok := o.next(); ok; k, v, ok = o.next() {
		switch string(k) {
		case "type":
			typ = v
		case "text":
			text = v
		case "partial_json":
			partial = v
		case "thinking":
			thinking = v
		}
	}
	switch string(typ) {
	case `"text_delta"`:
		content = text
	case `"input_json_delta"`:
		content = partial
	case `"thinking_delta"`:
		content = thinking
	}
	return content, o.closed()
}
