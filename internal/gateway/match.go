package gateway

import (
	"net/http"
	"net/textproto"
	"net/url"
	"regexp"
	"strings"

	"aviary.dev/aviary/internal/config"
)

// source is where a request attribute is read from.
type source uint8

const (
	fromHeader source = iota
	fromCookie
	fromQuery
	fromPath
)

// stringMatcher is a compiled config.StringMatch.
type stringMatcher struct {
	exact, prefix string
	isExact       bool
	re            *regexp.Regexp
}

func compileString(m config.StringMatch) stringMatcher {
	switch {
	case m.Regex != "":
		// Validated already; anchor so that the regex matches the whole value, as users expect of a
		// rule such as `v[0-9]+`.
		return stringMatcher{re: regexp.MustCompile(`^(?:` + m.Regex + `)$`)}
	case m.Prefix != "":
		return stringMatcher{prefix: m.Prefix}
	default:
		return stringMatcher{exact: m.Value, isExact: true}
	}
}

func (m *stringMatcher) match(s string) bool {
	switch {
	case m.re != nil:
		return m.re.MatchString(s)
	case m.isExact:
		return s == m.exact
	default:
		return strings.HasPrefix(s, m.prefix)
	}
}

// condition is one compiled condition of a match rule.
type condition struct {
	src  source
	name string // canonical header name, cookie or query name
	m    stringMatcher
}

// matcher is a compiled config.Match: every condition must hold.
type matcher []condition

func compileMatch(m config.Match) matcher {
	var out matcher
	add := func(src source, k *config.KeyMatch) {
		if k == nil {
			return
		}
		name := k.Name
		if src == fromHeader {
			name = textproto.CanonicalMIMEHeaderKey(name)
		}
		out = append(out, condition{src: src, name: name, m: compileString(k.StringMatch)})
	}
	add(fromHeader, m.Header)
	add(fromCookie, m.Cookie)
	add(fromQuery, m.Query)
	if m.Path != nil {
		out = append(out, condition{src: fromPath, m: compileString(*m.Path)})
	}
	return out
}

func (ms matcher) match(r *http.Request) bool {
	for i := range ms {
		if !ms[i].match(r) {
			return false
		}
	}
	return true
}

func (c *condition) match(r *http.Request) bool {
	switch c.src {
	case fromHeader:
		// Any value of a repeated header may match.
		for _, v := range r.Header[c.name] {
			if c.m.match(v) {
				return true
			}
		}
		return false
	case fromCookie:
		v, ok := cookieValue(r.Header, c.name)
		return ok && c.m.match(v)
	case fromQuery:
		v, ok := queryValue(r.URL.RawQuery, c.name)
		return ok && c.m.match(v)
	default:
		return c.m.match(r.URL.Path)
	}
}

// cookieValue finds a cookie without allocating, unlike http.Request.Cookie, which parses them all.
// It follows net/http's reading exactly: only space, tab, CR and LF are trimmed (around the pair and
// the name, not inside the value), a pair whose name is
// not a token or whose value holds a byte a cookie may not is skipped, the first valid pair wins,
// and past net/http's limit on the number of cookies, net/http itself decides.
func cookieValue(h http.Header, name string) (string, bool) {
	lines := h["Cookie"]
	n := 0
	for _, line := range lines {
		n += strings.Count(line, ";") + 1
	}
	if n > maxCookies { // net/http reads none then; let it say so (its limit may be raised by GODEBUG)
		c, err := (&http.Request{Header: h}).Cookie(name)
		if err != nil {
			return "", false
		}
		return c.Value, true
	}
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			k, v, _ := strings.Cut(trimASCIISpace(part), "=")
			if trimASCIISpace(k) != name || !isToken(name) {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if validCookieValue(v) {
				return v, true
			}
		}
	}
	return "", false
}

// maxCookies is net/http's default limit on the cookies of a request (GODEBUG httpcookiemaxnum):
// above it, it reads none.
const maxCookies = 3000

// trimASCIISpace trims what textproto.TrimString trims: space, tab, CR and LF, not \v or \f.
func trimASCIISpace(s string) string {
	isSpace := func(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }
	for s != "" && isSpace(s[0]) {
		s = s[1:]
	}
	for s != "" && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// isToken reports whether s is an RFC 7230 token, as a cookie name must be.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// validCookieValue reports whether every byte of v may appear in a cookie value (RFC 6265, as net/http
// reads it: printable ASCII but '"', ';' and '\\').
func validCookieValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c >= 0x7f || c == '"' || c == ';' || c == '\\' {
			return false
		}
	}
	return true
}

// queryValue finds the first value of a query parameter, unescaping only when it must.
func queryValue(raw, name string) (string, bool) {
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		if strings.ContainsAny(k, "%+") {
			if uk, err := url.QueryUnescape(k); err == nil {
				k = uk
			}
		}
		if k != name {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			if uv, err := url.QueryUnescape(v); err == nil {
				v = uv
			}
		}
		return v, true
	}
	return "", false
}
