// Package web is Aviary's dashboard: static files (HTML, CSS, plain ES modules and the vendored
// uPlot) embedded in the binary and served at /ui/ on the admin listener. The Go build needs no
// Node and no build step: what is in static/ is what the browser gets (gzipped once, at start,
// for clients that take it).
//
// The pages hold no secret and need no token to load; they sign in to the admin API with a
// token the user types, kept in the tab's sessionStorage and sent only as an Authorization
// header (never in a URL, so it stays out of logs and history). The package must never make
// the page load anything from another origin: the Content-Security-Policy allows only 'self',
// so the dashboard works air-gapped and an injected script or frame has nowhere to go.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
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
	gz := gzipAll(static)
	plain := http.StripPrefix(Prefix, http.FileServerFS(static))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		// The files change only with the binary; revalidation keeps an upgrade visible at the
		// next load.
		h.Set("Cache-Control", "no-cache")
		h.Add("Vary", "Accept-Encoding")
		name := strings.TrimPrefix(r.URL.Path, Prefix)
		if name == "" || strings.HasSuffix(name, "/") {
			name += "index.html"
		}
		if gz, ok := gz[name]; ok && acceptsGzip(r) && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			h.Set("Content-Encoding", "gzip")
			h.Set("Content-Type", contentType(name))
			h.Set("ETag", gz.etag)
			http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(gz.data))
			return
		}
		plain.ServeHTTP(w, r)
	})
}

// zipped is a file gzipped, with an ETag of its content for revalidation.
type zipped struct {
	data []byte
	etag string
}

// gzipAll compresses every file of the dashboard once.
func gzipAll(static fs.FS) map[string]zipped {
	out := map[string]zipped{}
	_ = fs.WalkDir(static, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(static, name)
		if err != nil {
			return err
		}
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		_, _ = zw.Write(data)
		_ = zw.Close()
		sum := sha256.Sum256(data)
		out[name] = zipped{data: b.Bytes(), etag: `"` + hex.EncodeToString(sum[:8]) + `-gz"`}
		return nil
	})
	return out
}

func contentType(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

func acceptsGzip(r *http.Request) bool {
	for part := range strings.SplitSeq(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}
