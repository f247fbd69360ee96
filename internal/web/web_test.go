package web

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

// TestServesTheDashboardWithSecurityHeaders: every file comes with a policy that allows nothing
// from another origin and no framing.
func TestServesTheDashboardWithSecurityHeaders(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	for _, path := range []string{"/ui/", "/ui/app.js", "/ui/style.css", "/ui/vendor/uplot/uPlot.esm.js"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %q", path, csp, want)
			}
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no X-Content-Type-Options: nosniff", path)
		}
	}
	if ct := get(t, srv.URL+"/ui/app.js").Header.Get("Content-Type"); !strings.Contains(ct, "javascript") {
		t.Errorf("app.js is served as %q; a module needs a JavaScript type", ct)
	}
}

func get(t *testing.T, url string) *http.Response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestNoExternalReferences: the dashboard must work air-gapped, so no file may name another
// origin to load from (the CSP would block it; this finds it before a user does).
func TestNoExternalReferences(t *testing.T) {
	ext := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import\s+url\(\s*["']?https?:|fetch\(\s*["']https?:|from\s+["']https?:`)
	err := fs.WalkDir(files, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !regexp.MustCompile(`\.(html|js|css)$`).MatchString(path) {
			return err
		}
		data, err := files.ReadFile(path)
		if err != nil {
			return err
		}
		if m := ext.Find(data); m != nil {
			t.Errorf("%s loads from another origin: %q", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGzipped: a browser gets every file gzipped (the page weight counts compressed bytes); a
// client that does not take gzip gets the file as it is.
func TestGzipped(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	for _, enc := range []string{"gzip, deflate, br", ""} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/ui/vendor/uplot/uPlot.esm.js", nil)
		if enc != "" {
			req.Header.Set("Accept-Encoding", enc)
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		gz := resp.Header.Get("Content-Encoding") == "gzip"
		if gz != (enc != "") || resp.StatusCode != http.StatusOK {
			t.Errorf("Accept-Encoding %q: status %d, Content-Encoding %q", enc, resp.StatusCode, resp.Header.Get("Content-Encoding"))
		}
		if gz && len(body) > 60_000 {
			t.Errorf("uPlot gzipped is %d bytes; want it compressed", len(body))
		}
		if !strings.Contains(resp.Header.Get("Content-Type"), "javascript") || resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("Accept-Encoding %q: Content-Type %q, CSP %q", enc, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Security-Policy"))
		}
	}
}

// TestVersionedFilesAreCachedForGood: index.html names its files under this build's hash, whose
// answers may be cached for good (a later load needs no request for them); index.html itself
// and the plain names are revalidated, so an upgrade is seen at the next load. A change of any
// file changes the hash.
func TestVersionedFilesAreCachedForGood(t *testing.T) {
	static := fstest.MapFS{
		"index.html": {Data: []byte(`<link rel="stylesheet" href="@assets@/style.css"><script type="module" src="@assets@/app.js"></script>`)},
		"app.js":     {Data: []byte(`import './dom.js';`)},
		"dom.js":     {Data: []byte(`export const x = 1;`)},
		"style.css":  {Data: []byte(`body {}`)},
	}
	srv := httptest.NewServer(handler(static))
	defer srv.Close()
	index := body(t, srv.URL+"/ui/")
	m := regexp.MustCompile(`src="(a/[0-9a-f]{12}/)app.js"`).FindStringSubmatch(index)
	if m == nil || strings.Contains(index, "@assets@") {
		t.Fatalf("index.html does not name its files under a hash: %s", index)
	}
	for _, path := range []string{"/ui/", "/ui/index.html", "/ui/" + m[1], "/ui/" + m[1] + "index.html"} {
		if cc := get(t, srv.URL+path).Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("%s: Cache-Control %q, want no-cache", path, cc)
		}
	}
	for _, name := range []string{"app.js", "dom.js", "style.css"} {
		resp := get(t, srv.URL+"/ui/"+m[1]+name)
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("%s under the hash: %d, Cache-Control %q", name, resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
		if cc := get(t, srv.URL+"/ui/"+name).Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("%s: Cache-Control %q, want no-cache", name, cc)
		}
	}
	// A page of another build asks for its hash: it gets this build's file, revalidated.
	if resp := get(t, srv.URL+"/ui/a/0123456789ab/dom.js"); resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("another build's hash: %d, Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	if resp := get(t, srv.URL+"/ui/"+m[1]+"nope.js"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a missing file: %d", resp.StatusCode)
	}
	static["dom.js"] = &fstest.MapFile{Data: []byte(`export const x = 2;`)}
	other := httptest.NewServer(handler(static))
	defer other.Close()
	if strings.Contains(body(t, other.URL+"/ui/"), m[1]) {
		t.Errorf("a changed file left the hash as it was (%s)", m[1])
	}
}

func body(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
