package api

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"strings"
)

// BrowserGuard keeps web pages from changing anything through the admin API. A browser sends a
// page's requests to any address the page names, and on the default listener (loopback, no token)
// nothing else stands in the way. So a change (any method but GET, HEAD and OPTIONS) must:
//
//   - come with a JSON or YAML Content-Type: a page cannot send one to another origin without a
//     CORS preflight, which this API never answers (415 otherwise);
//   - name this API in its Host: loopback names and addresses, the listen address, or one of
//     AllowedHosts. A page on a name that a DNS rebinding points at 127.0.0.1 sends its own name
//     (403 otherwise);
//   - not come from another origin, by Sec-Fetch-Site or Origin (net/http's CrossOriginProtection;
//     403 otherwise).
//
// The CLI, curl and scripts send no Origin and may send any Host they reach the API by; they only
// need the content type. The dashboard served by this API is same-origin and passes. Reads stay
// open to the same clients as before.
type BrowserGuard struct {
	// Listen is admin.listen (host:port). Its host is allowed in a Host header; an unspecified one
	// (0.0.0.0, ::, empty) allows every IP address, since the API answers on all of them.
	Listen string
	// AllowedHosts are more names (or name:port) the API is reached by, e.g. behind a reverse
	// proxy: admin.allowedHosts.
	AllowedHosts []string
}

// Wrap applies the guard to next.
func (g BrowserGuard) Wrap(next http.Handler) http.Handler {
	listen, _, err := net.SplitHostPort(g.Listen)
	if err != nil {
		listen = g.Listen
	}
	hosts := map[string]bool{}
	cop := http.NewCrossOriginProtection()
	for _, h := range g.AllowedHosts {
		hosts[strings.ToLower(hostOnly(h))] = true
		for _, scheme := range []string{"http://", "https://"} {
			_ = cop.AddTrustedOrigin(scheme + strings.ToLower(h)) // a malformed one matches nothing
		}
	}
	allowed := func(host string) bool {
		host = strings.ToLower(hostOnly(host))
		ip := net.ParseIP(host)
		switch {
		case hosts[host], host == "localhost", strings.HasSuffix(host, ".localhost"):
			return true
		case ip != nil && ip.IsLoopback():
			return true
		case listen == "" || listen == "0.0.0.0" || listen == "::":
			return ip != nil
		}
		return strings.EqualFold(host, listen) || (ip != nil && ip.Equal(net.ParseIP(listen)))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions {
			next.ServeHTTP(w, r)
			return
		}
		if !allowed(r.Host) {
			writeError(w, http.StatusForbidden, fmt.Sprintf("Host %q is not an address of this admin API; changes are taken only "+
				"through a loopback address, admin.listen, or a name listed in admin.allowedHosts", r.Host))
			return
		}
		if err := cop.Check(r); err != nil {
			writeError(w, http.StatusForbidden, fmt.Sprintf("a change from another web origin (Origin %q) is refused: "+
				"the admin API takes changes from the CLI, scripts and its own pages only", r.Header.Get("Origin")))
			return
		}
		if !changeType(r.Header.Get("Content-Type")) {
			writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("a change needs Content-Type: application/json "+
				"(or application/yaml for /api/v1/apply), even with no body; got %q", r.Header.Get("Content-Type")))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// changeType reports whether a Content-Type is JSON or YAML, which no page can send to another
// origin without a preflight.
func changeType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch mt {
	case "application/json", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml":
		return true
	}
	return strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

// hostOnly is a Host header's or an address's host, without port or IPv6 brackets.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
}
