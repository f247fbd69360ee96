package api

import (
	"net/http"
	"strings"
	"testing"
)

// The bearer scheme is case-insensitive (RFC 9110); the read token may only read.
func TestTokens(t *testing.T) {
	srv, f := newTestAPI(t, &Server{Tokens: Tokens{Admin: "adm1n", Read: "r3ad"}})
	pause := "/api/v1/services/shop/rollout/pause"
	cases := []struct {
		method, path, auth string
		status             int
		says               string
	}{
		{"GET", "/api/v1/services", "", http.StatusUnauthorized, "needs a bearer token"},
		{"GET", "/api/v1/services", "Basic adm1n", http.StatusUnauthorized, "needs a bearer token"},
		{"GET", "/api/v1/services", "Bearer", http.StatusUnauthorized, "needs a bearer token"},
		{"GET", "/api/v1/services", "Bearer wrong", http.StatusUnauthorized, "not valid"},
		{"GET", "/api/v1/services", "Bearer r3ad", http.StatusOK, ""},
		{"GET", "/api/v1/services", "bearer r3ad", http.StatusOK, ""},
		{"GET", "/api/v1/services", "BEARER  r3ad ", http.StatusOK, ""},
		{"POST", pause, "bearer r3ad", http.StatusForbidden, "may only read"},
		{"POST", pause, "bearer adm1n", http.StatusOK, ""},
		{"POST", pause, "Bearer adm1n", http.StatusOK, ""},
		{"GET", "/metrics", "", http.StatusOK, ""}, // probes and metrics stay open
		{"GET", "/healthz", "", http.StatusOK, ""},
	}
	for _, c := range cases {
		code, body := do(t, srv, request{c.method, c.path, "", map[string]string{"Authorization": c.auth}})
		if code != c.status || !strings.Contains(message(body), c.says) {
			t.Errorf("%s %s with %q: %d %s; want %d saying %q", c.method, c.path, c.auth, code, body, c.status, c.says)
		}
	}
	if got := len(f.changed()); got != 2 {
		t.Errorf("%d changes made, want the admin token's 2: %v", got, f.changed())
	}
}

// A body over the limit is 413 and says the limit, for JSON requests and files alike; nothing
// is changed.
func TestBodyOverTheLimit(t *testing.T) {
	srv, f := newTestAPI(t, &Server{})
	huge := `{"reason": "` + strings.Repeat("x", 5<<20) + `"}`
	for _, r := range []request{
		{"POST", "/api/v1/services/shop/rollout/abort", huge, nil},
		{"POST", "/api/v1/services/shop/rollout", huge, nil},
		{"POST", "/api/v1/apply", "services: []\n#" + strings.Repeat("x", 5<<20), map[string]string{"Content-Type": "application/yaml"}},
	} {
		code, body := do(t, srv, r)
		if code != http.StatusRequestEntityTooLarge || !strings.Contains(message(body), "over 1 MiB") {
			t.Errorf("%s %s with 5 MB: %d %s; want 413 that says the limit", r.method, r.path, code, body)
		}
	}
	// Just under the limit is read and served.
	code, body := do(t, srv, request{"POST", "/api/v1/services/shop/rollout/abort", `{"reason": "` + strings.Repeat("x", maxBody-20) + `"}`, nil})
	if code != http.StatusOK {
		t.Errorf("a body just under the limit: %d %s", code, body)
	}
	if got := f.changed(); len(got) != 1 {
		t.Errorf("changes %v, want only the one under the limit", got)
	}
}
