package api

import (
	"net/http"
	"strings"
	"testing"
)

// TestBrowserCannotChange sends each shape of request a web page can make to the admin API on its
// default (loopback, no token): none may change anything, each gets a status and a message that
// says why. Then the same change as the CLI and scripts send it goes through.
func TestBrowserCannotChange(t *testing.T) {
	srv, f := newTestAPI(t, &Server{Browser: BrowserGuard{AllowedHosts: []string{"aviary.example.com"}}})
	abort := "/api/v1/services/shop/rollout/abort"
	attacks := []struct {
		name   string
		req    request
		status int
		says   string
	}{
		{"text/plain, a simple request", request{"POST", abort, `{}`, map[string]string{"Content-Type": "text/plain"}},
			http.StatusUnsupportedMediaType, "Content-Type: application/json"},
		{"a form", request{"POST", "/api/v1/apply", "services=x", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
			http.StatusUnsupportedMediaType, `got "application/x-www-form-urlencoded"`},
		{"a multipart form", request{"POST", abort, "", map[string]string{"Content-Type": "multipart/form-data; boundary=x"}},
			http.StatusUnsupportedMediaType, "Content-Type"},
		{"no content type (fetch with no body)", request{"POST", abort, "", map[string]string{"Content-Type": ""}},
			http.StatusUnsupportedMediaType, "even with no body"},
		{"a foreign Origin", request{"POST", abort, `{}`, map[string]string{"Origin": "https://evil.example"}},
			http.StatusForbidden, `Origin "https://evil.example"`},
		{"a null Origin (sandboxed frame)", request{"POST", abort, `{}`, map[string]string{"Origin": "null"}},
			http.StatusForbidden, "another web origin"},
		{"another page on localhost", request{"POST", abort, `{}`, map[string]string{"Origin": "http://localhost:3000"}},
			http.StatusForbidden, "another web origin"},
		{"Sec-Fetch-Site cross-site", request{"POST", abort, `{}`, map[string]string{"Sec-Fetch-Site": "cross-site"}},
			http.StatusForbidden, "another web origin"},
		{"DNS rebinding: the page's own name in Host", request{"POST", abort, `{}`,
			map[string]string{"Host": "rebind.evil.example:9090", "Origin": "http://rebind.evil.example:9090", "Sec-Fetch-Site": "same-origin"}},
			http.StatusForbidden, `Host "rebind.evil.example:9090" is not an address of this admin API`},
		{"a foreign Host on start", request{"POST", "/api/v1/services/shop/rollout", `{"version":"v2"}`, map[string]string{"Host": "evil.example"}},
			http.StatusForbidden, "admin.allowedHosts"},
		{"a foreign Host on apply", request{"POST", "/api/v1/apply", "services: []", map[string]string{"Host": "evil.example", "Content-Type": "application/yaml"}},
			http.StatusForbidden, "admin.allowedHosts"},
		{"a foreign Host on reload", request{"POST", "/api/v1/config/reload", "", map[string]string{"Host": "evil.example"}},
			http.StatusForbidden, "admin.allowedHosts"},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			code, body := do(t, srv, a.req)
			if code != a.status || !strings.Contains(message(body), a.says) {
				t.Errorf("%s %s answered %d %s; want %d saying %q", a.req.method, a.req.path, code, body, a.status, a.says)
			}
		})
	}
	if ch := f.changed(); len(ch) > 0 {
		t.Fatalf("refused requests changed %v", ch)
	}

	clients := []request{
		{"POST", abort, `{"reason":"cli"}`, nil}, // the CLI: JSON, Host as dialled, no Origin
		{"POST", abort, "", nil},                 // curl -X POST -H 'Content-Type: application/json'
		{"POST", abort, `{}`, map[string]string{"Host": "localhost:9090"}},
		{"POST", abort, `{}`, map[string]string{"Host": "[::1]:9090"}},
		{"POST", abort, `{}`, map[string]string{"Host": "Aviary.Example.COM"}}, // behind a proxy, allowed
		{"POST", abort, `{}`, map[string]string{"Content-Type": "application/json; charset=utf-8"}},
		{"POST", "/api/v1/apply", "services: []", map[string]string{"Content-Type": "application/yaml"}},
		{"POST", abort, `{}`, map[string]string{"Origin": srv.URL, "Sec-Fetch-Site": "same-origin"}}, // the dashboard
		{"POST", abort, `{}`, map[string]string{"Origin": "https://aviary.example.com", "Host": "aviary.example.com"}},
	}
	for _, c := range clients {
		if code, body := do(t, srv, c); code != http.StatusOK {
			t.Errorf("%s %s with %v answered %d %s; want 200", c.method, c.path, c.header, code, body)
		}
	}
	if got := len(f.changed()); got != len(clients) {
		t.Errorf("%d changes made, want %d: %v", got, len(clients), f.changed())
	}
	// Reads are not changes: a GET through any name still answers.
	if code, body := do(t, srv, request{"GET", "/api/v1/services", "", map[string]string{"Host": "anything.example"}}); code != http.StatusOK {
		t.Errorf("GET with a foreign Host answered %d %s", code, body)
	}
}

// TestBrowserGuardListenAddress: the listen host is an address of the API; on an unspecified
// address every IP literal is (no DNS rebinding goes through an IP literal), a name is not.
func TestBrowserGuardListenAddress(t *testing.T) {
	cases := []struct {
		listen, host string
		ok           bool
	}{
		{"127.0.0.1:9090", "127.0.0.1:9090", true},
		{"127.0.0.1:9090", "127.0.0.2:9090", true}, // loopback
		{"127.0.0.1:9090", "10.0.0.5:9090", false},
		{"10.0.0.5:9090", "10.0.0.5:9090", true},
		{"aviary.internal:9090", "AVIARY.internal:9090", true},
		{"aviary.internal:9090", "evil.example:9090", false},
		{"0.0.0.0:9090", "10.0.0.5:9090", true},
		{"0.0.0.0:9090", "evil.example:9090", false},
		{":9090", "[fd00::1]:9090", true},
		{"[::]:9090", "evil.example", false},
		{"127.0.0.1:9090", "app.localhost:9090", true},
	}
	for _, c := range cases {
		f := &fakeRollouts{}
		srv, _ := newTestAPI(t, &Server{Rollouts: f, Browser: BrowserGuard{Listen: c.listen}})
		code, body := do(t, srv, request{"POST", "/api/v1/services/shop/rollout/pause", "", map[string]string{"Host": c.host}})
		if (code == http.StatusOK) != c.ok {
			t.Errorf("listen %s, Host %q: answered %d %s; want allowed=%v", c.listen, c.host, code, body, c.ok)
		}
	}
}
