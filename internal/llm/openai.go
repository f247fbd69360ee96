package llm

import "bytes"

// OpenAI Chat Completions. A stream is a series of "data: {chunk}" events ending in
// "data: [DONE]"; each chunk has choices[].delta (role, content, tool_calls, refusal, and
// reasoning_content or reasoning on OpenAI-compatible servers) and choices[].finish_reason.
// With stream_options.include_usage the last chunk before [DONE] has empty choices and the
// usage; every earlier chunk then has "usage": null. A JSON body has choices[].message and
// usage. An error after a 200 arrives as a chunk {"error": {...}}.
var chatFormat = wireFormat{
	event: func(p *ResponseParser, name, data []byte) {
		d := trimSpace(data)
		if string(d) == "[DONE]" {
			p.ex.Complete = true
			return
		}
		if content, ok := p.shape.match(name, d); ok {
			if content {
				p.content()
			}
			return
		}
		n := p.ex.ContentChunks
		p.chatObject(d, true)
		if string(name) == "error" {
			p.setError(d)
		}
		if p.ex.ContentChunks > n {
			p.learn(chatShape, name, d)
		}
	},
	body: func(p *ResponseParser, body []byte) bool { return p.chatObject(body, false) },
}

func (p *ResponseParser) chatObject(obj []byte, stream bool) bool {
	content := false
	o := objectOf(obj)
	for k, ok := o.key(); ok; k, ok = o.key() {
		if string(k) == "choices" {
			// Walked in place: skipping it first and walking it again would read it twice.
			c, n := p.chatChoices(o.rest())
			content = c
			o.skip(n)
			continue
		}
		v, ok := o.value()
		if !ok {
			break
		}
		switch string(k) {
		case "model":
			p.setModel(v)
		case "usage":
			if isObject(v) {
				p.usage = chatUsage(v)
			}
		case "error":
			if !isEmpty(v) {
				p.setError(v)
			}
		}
	}
	if stream && content {
		p.content()
	}
	return o.closed()
}

// chatChoices walks the choices array at the start of b: it records finish reasons, reports
// whether any choice's delta carries content, and returns where the array ends (0 if it does
// not end well).
func (p *ResponseParser) chatChoices(b []byte) (content bool, end int) {
	a := arrayOf(b)
	for a.start() {
		c := objectOf(a.rest())
		for k, ok := c.key(); ok; k, ok = c.key() {
			switch string(k) {
			case "delta":
				has, n := deltaHasContent(c.rest())
				content = content || has
				c.skip(n)
			case "finish_reason":
				if v, ok := c.value(); ok {
					p.addFinish(v)
				}
			default:
				c.value()
			}
		}
		a.skip(c.end)
	}
	return content, a.end
}

// deltaHasContent walks the delta object at the start of b: it reports whether it carries
// content, and where it ends (0 if it does not end well).
func deltaHasContent(b []byte) (content bool, end int) {
	o := objectOf(b)
	for k, v, ok := o.next(); ok; k, v, ok = o.next() {
		switch string(k) {
		case "content", "tool_calls", "refusal", "reasoning_content", "reasoning", "function_call", "audio":
			content = content || !isEmpty(v)
		}
	}
	return content, o.end
}

func chatUsage(v []byte) Usage {
	return usageOf(v, "prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details")
}

// usageOf reads an OpenAI usage object, whose two APIs name the same four counts differently:
// input and output tokens, and the details objects with cached_tokens and reasoning_tokens.
func usageOf(v []byte, input, output, inputDetails, outputDetails string) Usage {
	u := Usage{Known: true}
	o := objectOf(v)
	for k, v, ok := o.next(); ok; k, v, ok = o.next() {
		switch string(k) {
		case input:
			u.Input, _ = integer(v)
		case output:
			u.Output, _ = integer(v)
		case inputDetails:
			u.Cached = member(v, "cached_tokens")
		case outputDetails:
			u.Reasoning = member(v, "reasoning_tokens")
		}
	}
	return u
}

// member returns the integer member name of the object v, or 0.
func member(v []byte, name string) int64 {
	var n int64
	o := objectOf(v)
	for k, v, ok := o.next(); ok; k, v, ok = o.next() {
		if string(k) == name {
			n, _ = integer(v)
		}
	}
	return n
}

// OpenAI Responses API. A stream is a series of typed events (the type is in the data and in
// the event: line): response.created and response.in_progress carry the response object;
// response.*.delta events carry content (output text, refusals, function call arguments,
// reasoning text and summaries, audio); response.completed, response.incomplete or
// response.failed end it with the final response object, which holds the usage. There is no
// [DONE]. An "error" event reports an error. A JSON body is the response object itself.
var responsesFormat = wireFormat{
	event: func(p *ResponseParser, name, data []byte) {
		if content, ok := p.shape.match(name, data); ok {
			if content {
				p.content()
			}
			return
		}
		var typ, delta, resp []byte
		o := objectOf(data)
		for k, v, ok := o.next(); ok; k, v, ok = o.next() {
			switch string(k) {
			case "type":
				typ = v
			case "delta":
				delta = v
			case "response":
				resp = v
			}
		}
		t, ok := isString(typ)
		if !ok {
			t = name
		}
		switch string(t) {
		case "response.completed", "response.incomplete":
			p.responseObject(resp, true)
			p.ex.Complete = true
		case "response.failed":
			p.responseObject(resp, true)
			if p.ex.StreamError == "" {
				p.ex.StreamError = "response failed"
			}
		case "response.created", "response.in_progress", "response.queued":
			p.responseObject(resp, false)
		case "error":
			p.setError(data)
		default:
			if bytes.HasSuffix(t, []byte(".delta")) && !isEmpty(delta) {
				p.content()
				p.learn(responsesShape, name, data)
			}
		}
	},
	body: func(p *ResponseParser, body []byte) bool { return p.responseObject(body, true) },
}

// responseObject reads a Responses API response object; terminal is true for the final one,
// whose status is the finish reason.
func (p *ResponseParser) responseObject(obj []byte, terminal bool) bool {
	var status, reason []byte
	o := objectOf(obj)
	for k, v, ok := o.next(); ok; k, v, ok = o.next() {
		switch string(k) {
		case "model":
			p.setModel(v)
		case "usage":
			if isObject(v) {
				p.usage = responsesUsage(v)
			}
		case "status":
			status = v
		case "incomplete_details":
			reason = nil
			d := objectOf(v)
			for k, v, ok := d.next(); ok; k, v, ok = d.next() {
				if string(k) == "reason" {
					reason = v
				}
			}
		case "error":
			if !isEmpty(v) {
				p.setError(v)
			}
		}
	}
	if terminal {
		if string(status) == `"incomplete"` && !isEmpty(reason) {
			p.addFinish(reason)
		} else {
			p.addFinish(status)
		}
	}
	return o.closed()
}

func responsesUsage(v []byte) Usage {
	return usageOf(v, "input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details")
}
