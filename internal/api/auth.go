package api

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// Tokens guards the API: Admin may read and change, Read may only read. With neither set the API
// is open (Aviary allows that only on a loopback listener). Probes and /metrics stay open.
type Tokens struct {
	Admin, Read string
}

func (t Tokens) open() bool { return t.Admin == "" && t.Read == "" }

// guard wraps the /api/v1 routes.
func (t Tokens) guard(next http.Handler) http.Handler {
	if t.open() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		given, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			writeError(w, http.StatusUnauthorized, "this API needs a bearer token: pass --token or set AVIARY_TOKEN (header Authorization: Bearer TOKEN)")
			return
		}
		admin := t.Admin != "" && equal(given, t.Admin)
		read := t.Read != "" && equal(given, t.Read)
		switch {
		case !admin && !read:
			writeError(w, http.StatusUnauthorized, "the token is not valid here; check --token or AVIARY_TOKEN")
		case !admin && r.Method != http.MethodGet && r.Method != http.MethodHead:
			writeError(w, http.StatusForbidden, "the read token may only read; changes need the admin token")
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// bearer reads "Bearer TOKEN"; the scheme is case-insensitive (RFC 9110, section 11.1).
func bearer(header string) (token string, ok bool) {
	scheme, token, _ := strings.Cut(strings.TrimSpace(header), " ")
	token = strings.TrimSpace(token)
	return token, strings.EqualFold(scheme, "Bearer") && token != ""
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// caller names who made a request, for events: the X-Aviary-User header the CLI sends, or "api".
func caller(r *http.Request) string {
	if u := r.Header.Get("X-Aviary-User"); u != "" && len(u) <= 64 {
		return "api:" + u
	}
	return "api"
}
