// Package web is Aviary's dashboard: static files (HTML, CSS, plain ES modules and the vendored
// uPlot) embedded in the binary and served at /ui/ on the admin listener. The Go build needs no
// Node and no build step: what is in static/ is what the browser gets (gzipped once, at start,
// for clients that take it).
//
// index.html names its files under a path with the hash of all the files in it
// (/ui/a/HASH/app.js): those answers may be cached for good, so a browser that has seen this
// build loads a page with one request for index.html (revalidated every time, so an upgrade is
// seen at the next load) and none for the scripts; their relative imports stay under the same
// path. The same files are also served at their plain names, revalidated every time.
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
	"fmt"
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

// assetsDir is the path index.html names its files under; it becomes "a/HASH".
const assetsDir = "@assets@"

// Handler serves the dashboard under Prefix, with security headers on every answer.
func Handler() http.Handler {
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic("web: the embedded static directory is missing: " + err.Error()) // a build error, not input
	}
	return handler(static)
}

func handler(static fs.FS) http.Handler {
	gz, version := gzipAll(static)
	versioned := "a/" + version + "/"
	if idx, ok := gz["index.html"]; ok {
		gz["index.html"] = zip(bytes.ReplaceAll(idx.plain, []byte(assetsDir+"/"), []byte(versioned)))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Add("Vary", "Accept-Encoding")
		name := strings.TrimPrefix(r.URL.Path, Prefix)
		if rest, ok := strings.CutPrefix(name, versioned); ok {
			// This build's files under its hash never change.
			name = rest
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			// Another build's hash (a page loaded before an upgrade) gets this build's file;
			// everything else is revalidated, so that an upgrade is seen at the next load.
			if strings.HasPrefix(name, "a/") {
				if _, rest, ok := strings.Cut(name[2:], "/"); ok {
					name = rest
				}
			}
			h.Set("Cache-Control", "no-cache")
		}
		if name == "" || strings.HasSuffix(name, "/") {
			name += "index.html"
		}
		if name == "index.html" {
			h.Set("Cache-Control", "no-cache") // it names the build's files: always this build's
		}
		f, ok := gz[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "the dashboard's files are read with GET", http.StatusMethodNotAllowed)
			return
		}
		h.Set("Content-Type", contentType(name))
		h.Set("ETag", f.etag)
		data := f.plain
		if acceptsGzip(r) {
			h.Set("Content-Encoding", "gzip")
			h.Set("ETag", strings.TrimSuffix(f.etag, `"`)+`-gz"`)
			data = f.gzip
		}
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(data))
	})
}

// file is one file of the dashboard, as it is and gzipped, with an ETag of its content for
// revalidation.
type file struct {
	plain, gzip []byte
	etag        string
}

func zip(data []byte) file {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	_, _ = zw.Write(data)
	_ = zw.Close()
	sum := sha256.Sum256(data)
	return file{plain: data, gzip: b.Bytes(), etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}

// gzipAll reads and compresses every file of the dashboard once, and returns them with a
// version: a hash of every name and content.
func gzipAll(static fs.FS) (map[string]file, string) {
	out := map[string]file{}
	all := sha256.New()
	_ = fs.WalkDir(static, ".", func(name string, d fs.DirEntry, err error) error { // in lexical order
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(static, name)
		if err != nil {
			return err
		}
		out[name] = zip(data)
		fmt.Fprintf(all, "%s %d\n", name, len(data))
		all.Write(data)
		return nil
	})
	return out, hex.EncodeToString(all.Sum(nil)[:6])
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
