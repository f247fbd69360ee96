// Package web is Aviary's dashboard: static files (HTML, CSS, plain ES modules and the vendored
// uPlot) embedded in the binary and served at /ui/ on the admin listener. The Go build needs no
// Node and no build step: what is in static/ is what the browser gets.
//
// The pages hold no secret and need no token to load; they sign in to the admin API with a
// token the user types, kept in the tab's sessionStorage and sent only as an Authorization
// header (never in a URL, so it stays out of logs and history). The package must never make
// the page load anything from another origin: the Content-Security-Policy allows only 'self',
// so the dashboard works air-gapped and an injected script or frame has nowhere to go.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var files embed.FS

// Prefix is where the dashboard is served.
const Prefix = "/ui/"

// csp allows the page's own files and API only: no inline script, no other origin, no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the dashboard under Prefix, with security headers on every answer.
func Handler() http.Handler {
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic("web: the embedded static directory is missing: " + err.Error()) // a build error, not input
	}
	files := http.StripPrefix(Prefix, http.FileServerFS(static))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		// The files change only with the binary; a short cache with revalidation keeps an upgrade
		// visible at the next load.
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
