package llm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A small JSON scanner over a complete value held in memory: it walks the members of an
// object or the elements of an array and hands out the raw bytes of each value, without
// allocating. It checks structure (quotes, brackets, commas, colons) but not the grammar
// of numbers and literals, which is enough to find a handful of fields and is several
// times faster than encoding/json on the small chunks of a stream. Strings are unescaped
// only when a field is kept (a model name, a finish reason, an error message).

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

func trimSpace(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && isSpace(b[i]) {
		i++
	}
	for j > i && isSpace(b[j-1]) {
		j--
	}
	return b[i:j]
}

// The scanner finds the bytes it stops at eight at a time (SWAR): for a word x, a byte of
// x^(c*lo) is zero where x holds c, and (v-lo)&^v&hi flags the lowest zero byte of v exactly
// (bytes above it may be flagged falsely, which is why only the lowest is used). Strings in a
// chunk are mostly short keys and words, too short for bytes.IndexByte to pay for its call.
const (
	lo = 0x0101010101010101
	hi = 0x8080808080808080
)

func zeroBytes(v uint64) uint64 { return (v - lo) &^ v & hi }

// stringEnd returns the index just past the string that opens at b[i], or -1.
func stringEnd(b []byte, i int) int {
	j := i + 1
	for j+8 <= len(b) {
		x := binary.LittleEndian.Uint64(b[j:])
		m := zeroBytes(x^('"'*lo)) | zeroBytes(x^('\\'*lo))
		if m == 0 {
			j += 8
			continue
		}
		j += bits.TrailingZeros64(m) >> 3
		if b[j] == '"' {
			return j + 1
		}
		j += 2 // a backslash and the byte it escapes
	}
	for ; j < len(b); j++ {
		switch b[j] {
		case '"':
			return j + 1
		case '\\':
			j++
		}
	}
	return -1
}

// containerEnd returns the index just past the object or array that opens at b[i], or -1.
// Nesting is counted, not recursed into, so depth costs no stack. Brackets are not matched
// by kind: the scan checks structure only as far as it needs to find the end.
func containerEnd(b []byte, i int) int {
	depth := 0
	for j := i; j < len(b); {
		if j+8 <= len(b) {
			// '[' and ']' become '{' and '}' once 0x20 is set; no other byte does.
			x := binary.LittleEndian.Uint64(b[j:])
			y := x | 0x20*lo
			m := zeroBytes(x^('"'*lo)) | zeroBytes(y^('{'*lo)) | zeroBytes(y^('}'*lo))
			if m == 0 {
				j += 8
				continue
			}
			j += bits.TrailingZeros64(m) >> 3
		}
		switch b[j] {
		case '"':
			e := stringEnd(b, j)
			if e < 0 {
				return -1
			}
			j = e
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return j + 1
			}
		}
		j++
	}
	return -1
}

// valueEnd returns the index just past the value that starts at b[i], or -1.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		return containerEnd(b, i)
	}
	j := i
	for j < len(b) && isScalarByte(b[j]) {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

func isScalarByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '+' || c == '.'
}

// object walks the members of a JSON object. next hands out each member's value whole. A
// caller that would rather walk a value in place than have it skipped first and walked again
// (the choices of a chat chunk) calls key, then value, or rest and skip around a nested walk.
type object struct {
	b    []byte
	i    int
	n    int  // members read
	end  int  // index just past '}' once done and well formed
	done bool // no more members (end of object, or malformed)
}

// objectOf starts walking v, which must hold an object (surrounding space allowed).
func objectOf(v []byte) object {
	i := skipSpace(v, 0)
	if i >= len(v) || v[i] != '{' {
		return object{done: true}
	}
	return object{b: v, i: i + 1}
}

// next returns the next member's raw key (without quotes, escapes left as they are) and raw value.
func (o *object) next() (key, val []byte, ok bool) {
	if key, ok = o.key(); ok {
		val, ok = o.value()
	}
	return key, val, ok
}

// key reads the next member's key and colon, and stops at its value.
func (o *object) key() ([]byte, bool) {
	if o.done {
		return nil, false
	}
	b := o.b
	i := skipSpace(b, o.i)
	if i < len(b) && b[i] == '}' {
		o.done, o.end = true, i+1
		return nil, false
	}
	if o.n > 0 {
		if i >= len(b) || b[i] != ',' {
			o.done = true
			return nil, false
		}
		i = skipSpace(b, i+1)
	}
	if i >= len(b) || b[i] != '"' {
		o.done = true
		return nil, false
	}
	ke := stringEnd(b, i)
	if ke < 0 {
		o.done = true
		return nil, false
	}
	key := b[i+1 : ke-1]
	i = skipSpace(b, ke)
	if i >= len(b) || b[i] != ':' {
		o.done = true
		return nil, false
	}
	o.i, o.n = skipSpace(b, i+1), o.n+1
	return key, true
}

// value reads the value key stopped at.
func (o *object) value() ([]byte, bool) {
	ve := valueEnd(o.b, o.i)
	if ve < 0 {
		o.done = true
		return nil, false
	}
	v := o.b[o.i:ve]
	o.i = ve
	return v, true
}

// rest is the input from the value key stopped at, for a nested walk.
func (o *object) rest() []byte { return o.b[o.i:] }

// skip moves past a value that a nested walk over rest found to end n bytes in; n <= 0 means
// the walk did not reach the end, and the value is skipped as a whole instead.
func (o *object) skip(n int) {
	if n > 0 {
		o.i += n
		return
	}
	o.value()
}

// closed reports whether the walk reached the object's closing brace with only space after it.
func (o *object) closed() bool {
	return o.done && o.end > 0 && skipSpace(o.b, o.end) == len(o.b)
}

// array walks the elements of a JSON array: start moves to an element, then value reads it
// whole, or rest and skip go around a nested walk.
type array struct {
	b    []byte
	i    int
	n    int
	end  int // index just past ']' once done and well formed
	done bool
}

func arrayOf(v []byte) array {
	i := skipSpace(v, 0)
	if i >= len(v) || v[i] != '[' {
		return array{done: true}
	}
	return array{b: v, i: i + 1}
}

// start moves to the next element and reports whether there is one.
func (a *array) start() bool {
	if a.done {
		return false
	}
	b := a.b
	i := skipSpace(b, a.i)
	if i < len(b) && b[i] == ']' {
		a.done, a.end = true, i+1
		return false
	}
	if a.n > 0 {
		if i >= len(b) || b[i] != ',' {
			a.done = true
			return false
		}
		i = skipSpace(b, i+1)
	}
	a.i, a.n = i, a.n+1
	return true
}

func (a *array) value() ([]byte, bool) {
	ve := valueEnd(a.b, a.i)
	if ve < 0 {
		a.done = true
		return nil, false
	}
	v := a.b[a.i:ve]
	a.i = ve
	return v, true
}

func (a *array) rest() []byte { return a.b[a.i:] }

func (a *array) skip(n int) {
	if n > 0 {
		a.i += n
		return
	}
	a.value()
}

func isNull(v []byte) bool { return string(v) == "null" }

func isObject(v []byte) bool { return len(v) > 0 && v[0] == '{' }

// isEmpty reports whether v is null, "", [] or {}: a field that is present but says nothing.
func isEmpty(v []byte) bool {
	if len(v) == 0 || isNull(v) || string(v) == `""` {
		return true
	}
	if v[0] == '[' || v[0] == '{' {
		i := skipSpace(v, 1)
		return i < len(v) && (v[i] == ']' || v[i] == '}')
	}
	return false
}

// isString reports whether v is a string and returns its raw contents (escapes kept).
func isString(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' {
		return nil, false
	}
	return v[1 : len(v)-1], true
}

// text unescapes the string v and cuts it to at most limit bytes (on a rune boundary), so that
// a hostile upstream cannot make a kept field large. It returns "" for anything but a string.
func text(v []byte, limit int) string {
	raw, ok := isString(v)
	if !ok {
		return ""
	}
	var s string
	if bytes.IndexByte(raw, '\\') < 0 {
		if len(raw) > limit {
			raw = raw[:limit]
		}
		s = string(raw)
	} else if err := json.Unmarshal(v, &s); err != nil {
		s = string(raw)
	}
	return clip(s, limit)
}

// clip cuts s to at most limit bytes without splitting a rune, and replaces invalid UTF-8.
func clip(s string, limit int) string {
	if len(s) > limit {
		i := limit
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i]
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

// integer reads a token count. Counts are integers on the wire; a float is truncated, and
// anything else (a string, null, a negative number) reads as not present.
func integer(v []byte) (int64, bool) {
	if len(v) == 0 || v[0] < '0' || v[0] > '9' {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			f, err := strconv.ParseFloat(string(v), 64)
			if err != nil || f < 0 || f > 1<<62 {
				return 0, false
			}
			return int64(f), true
		}
		if n > (1<<62)/10 {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// stringIs reports whether the JSON value v is the string s, decoding escapes only when v has any.
func stringIs(v []byte, s string) bool {
	raw, ok := isString(v)
	if !ok {
		return false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw) == s
	}
	return text(v, len(v)) == s
}

// keyIs compares a raw key with name, decoding escapes when the key has any ("us\u0061ge").
// The parser compares raw keys directly on its hot path; this is for the places where
// agreeing with encoding/json exactly matters.
func keyIs(raw []byte, name string) bool {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw) == name
	}
	var s string
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	return json.Unmarshal(q, &s) == nil && s == name
}
