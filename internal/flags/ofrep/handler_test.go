package ofrep

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/flags"
	"aviary.dev/aviary/internal/flags/source"
	"aviary.dev/aviary/internal/store"
)

// testFlags has a flag of every type, one with targeting, and one disabled in its definition.
const testFlags = `{"flags": {
  "bool-flag":   {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"},
  "string-flag": {"state": "ENABLED", "variants": {"hi": "hello", "bye": "goodbye"}, "defaultVariant": "bye"},
  "number-flag": {"state": "ENABLED", "variants": {"ten": 10, "half": 0.5}, "defaultVariant": "half"},
  "object-flag": {"state": "ENABLED", "variants": {"a": {"size": 3, "tags": ["x"]}, "b": {}}, "defaultVariant": "a"},
  "staff-only":  {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                  "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on", "off"]}},
  "off-flag":    {"state": "DISABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}
}}`

// newSource is a real flag source over a real store and a flag file holding doc.
func newSource(t testing.TB, doc string) *source.Source {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "flags.json")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "aviary.db"), store.Options{MaxEvents: 100})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	src, err := source.New(source.Options{Store: st, Files: []string{path}, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func newHandler(t testing.TB, o Options) (*Handler, *source.Source) {
	t.Helper()
	src := newSource(t, testFlags)
	o.Flags, o.Prefix = src, "/ofrep"
	o.Evaluator = &flags.Evaluator{Now: func() time.Time { return time.Unix(1700000000, 0) }}
	return New(o), src
}

// call sends one request to h and returns the status, the headers and the body decoded as JSON
// (nil when there is none).
func call(t testing.TB, h http.Handler, method, path, body string, header map[string]string) (int, http.Header, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	if rec.Body.Len() > 0 {
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %s: the body is not JSON: %v\n%s", method, path, err, rec.Body)
		}
	}
	return rec.Code, rec.Header(), out
}

func TestEvaluateEveryType(t *testing.T) {
	t.Parallel()
	h, _ := newHandler(t, Options{})
	for _, c := range []struct {
		key, ctx string
		value    any
		variant  string
	}{
		{"bool-flag", `{}`, true, "on"},
		{"string-flag", `{}`, "goodbye", "bye"},
		{"number-flag", `{}`, 0.5, "half"},
		{"object-flag", `{}`, map[string]any{"size": 3.0, "tags": []any{"x"}}, "a"},
		{"staff-only", `{"targetingKey": "u1", "email": "ann@example.com"}`, true, "on"},
		{"staff-only", `{"targetingKey": "u2", "email": "bob@elsewhere.org"}`, false, "off"},
	} {
		code, _, out := call(t, h, "POST", "/ofrep/v1/evaluate/flags/"+c.key, `{"context": `+c.ctx+`}`, nil)
		if code != http.StatusOK || out["key"] != c.key || !equalJSON(out["value"], c.value) || out["variant"] != c.variant || out["reason"] == "" {
			t.Errorf("%s with %s: %d %v, want 200 with value %v, variant %s and a reason", c.key, c.ctx, code, out, c.value, c.variant)
		}
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// TestDisabledAnswersWithoutValue: a disabled flag is OFREP's code-default form (flagd's
// semantics): reason DISABLED and no value, so that the SDK returns the default in its code.
func TestDisabledAnswersWithoutValue(t *testing.T) {
	t.Parallel()
	h, src := newHandler(t, Options{})
	code, _, out := call(t, h, "POST", "/ofrep/v1/evaluate/flags/off-flag", `{"context": {}}`, nil)
	if _, has := out["value"]; code != http.StatusOK || has || out["reason"] != "DISABLED" {
		t.Errorf("disabled in its definition: %d %v, want 200, reason DISABLED, no value", code, out)
	}
	if _, err := src.Disable("bool-flag", "", "test"); err != nil {
		t.Fatal(err)
	}
	code, _, out = call(t, h, "POST", "/ofrep/v1/evaluate/flags/bool-flag", `{"context": {}}`, nil)
	if _, has := out["value"]; code != http.StatusOK || has || out["reason"] != "DISABLED" {
		t.Errorf("after the kill switch: %d %v, want 200, reason DISABLED, no value", code, out)
	}
	if _, err := src.Enable("bool-flag", "", "test"); err != nil {
		t.Fatal(err)
	}
	if code, _, out = call(t, h, "POST", "/ofrep/v1/evaluate/flags/bool-flag", `{}`, nil); out["value"] != true {
		t.Errorf("after enable: %d %v, want value true", code, out)
	}
}

// TestErrorsAsTheSpecSays: status codes and error codes of service/openapi.yaml.
func TestErrorsAsTheSpecSays(t *testing.T) {
	t.Parallel()
	h, _ := newHandler(t, Options{})
	for _, c := range []struct {
		name, method, path, body string
		code                     int
		errorCode                string
	}{
		{"unknown flag", "POST", "/ofrep/v1/evaluate/flags/nope", `{"context": {}}`, 404, "FLAG_NOT_FOUND"},
		{"body not JSON", "POST", "/ofrep/v1/evaluate/flags/bool-flag", `{"context": `, 400, "INVALID_CONTEXT"},
		{"context not an object", "POST", "/ofrep/v1/evaluate/flags/bool-flag", `{"context": [1]}`, 400, "INVALID_CONTEXT"},
		{"targetingKey not a string", "POST", "/ofrep/v1/evaluate/flags/bool-flag", `{"context": {"targetingKey": 7}}`, 400, "INVALID_CONTEXT"},
		{"bulk body not JSON", "POST", "/ofrep/v1/evaluate/flags", `nope`, 400, "INVALID_CONTEXT"},
		{"body too large", "POST", "/ofrep/v1/evaluate/flags/bool-flag", `{"context": {"x": "` + strings.Repeat("a", maxBody) + `"}}`, 400, "INVALID_CONTEXT"},
		{"no such endpoint", "POST", "/ofrep/v2/evaluate", `{}`, 404, ""},
	} {
		code, _, out := call(t, h, c.method, c.path, c.body, nil)
		if code != c.code || (c.errorCode != "" && out["errorCode"] != c.errorCode) || out["errorDetails"] == "" {
			t.Errorf("%s: %d %v, want %d with errorCode %q and errorDetails", c.name, code, out, c.code, c.errorCode)
		}
	}
	if code, _, _ := call(t, h, "GET", "/ofrep/v1/evaluate/flags/bool-flag", "", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("GET of an evaluation: %d, want 405", code)
	}
}

// TestBulkETag: the bulk answer has an ETag; the same If-None-Match is 304 with no body until the
// flags or the context change.
func TestBulkETag(t *testing.T) {
	t.Parallel()
	h, src := newHandler(t, Options{})
	ctx := `{"context": {"targetingKey": "u1", "email": "ann@example.com"}}`
	code, hdr, out := call(t, h, "POST", "/ofrep/v1/evaluate/flags", ctx, nil)
	etag := hdr.Get("ETag")
	if code != 200 || etag == "" || !strings.HasPrefix(etag, `"`) {
		t.Fatalf("bulk: %d, ETag %q, want 200 and a strong ETag", code, etag)
	}
	if items, _ := out["flags"].([]any); len(items) != 6 {
		t.Errorf("bulk flags = %v, want the 6 flags", out["flags"])
	}
	if streams, _ := out["eventStreams"].([]any); len(streams) != 1 {
		t.Errorf("eventStreams = %v, want the change stream", out["eventStreams"])
	}
	code, hdr, out = call(t, h, "POST", "/ofrep/v1/evaluate/flags", ctx, map[string]string{"If-None-Match": etag})
	if code != http.StatusNotModified || out != nil || hdr.Get("ETag") != etag {
		t.Errorf("same ETag: %d %v, want 304 with no body and the ETag", code, out)
	}
	if code, _, _ = call(t, h, "POST", "/ofrep/v1/evaluate/flags", ctx, map[string]string{"If-None-Match": `"x", W/` + etag}); code != http.StatusNotModified {
		t.Errorf("ETag in a list, weak: %d, want 304", code)
	}
	code, hdr, _ = call(t, h, "POST", "/ofrep/v1/evaluate/flags", `{"context": {"targetingKey": "u2"}}`, map[string]string{"If-None-Match": etag})
	if code != 200 || hdr.Get("ETag") == etag {
		t.Errorf("another context: %d, ETag %s, want 200 and another ETag", code, hdr.Get("ETag"))
	}
	if _, err := src.Set("bool-flag", json.RawMessage(`{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off"}`), "test"); err != nil {
		t.Fatal(err)
	}
	code, hdr, _ = call(t, h, "POST", "/ofrep/v1/evaluate/flags", ctx, map[string]string{"If-None-Match": etag})
	if code != 200 || hdr.Get("ETag") == etag {
		t.Errorf("after a change: %d, ETag %s, want 200 and another ETag", code, hdr.Get("ETag"))
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	const key, admin = "eval-key-0123456789", "admin-token-0123456789"
	gw, _ := newHandler(t, Options{Auth: Auth{Keys: []string{key}, Foreign: []string{admin}}})
	adm, _ := newHandler(t, Options{Auth: Auth{Keys: []string{key}, Tokens: []string{admin}}})
	open, _ := newHandler(t, Options{})
	for _, c := range []struct {
		name   string
		h      *Handler
		header map[string]string
		code   int
	}{
		{"no key", gw, nil, 401},
		{"X-API-Key", gw, map[string]string{"X-API-Key": key}, 200},
		{"bearer", gw, map[string]string{"Authorization": "bearer " + key}, 200},
		{"wrong key", gw, map[string]string{"X-API-Key": "nope"}, 401},
		{"admin token on the gateway", gw, map[string]string{"Authorization": "Bearer " + admin}, 403},
		{"admin token on the admin listener", adm, map[string]string{"Authorization": "Bearer " + admin}, 200},
		{"key on the admin listener", adm, map[string]string{"X-API-Key": key}, 200},
		{"no keys configured", open, nil, 200},
	} {
		for _, path := range []string{"/ofrep/v1/evaluate/flags/bool-flag", "/ofrep/v1/evaluate/flags"} {
			code, _, out := call(t, c.h, "POST", path, `{"context": {}}`, c.header)
			if code != c.code || (code != 200 && out["errorDetails"] == "") {
				t.Errorf("%s, %s: %d %v, want %d", c.name, path, code, out, c.code)
			}
		}
	}
	if code, _, _ := call(t, gw, "GET", "/ofrep/v1/configuration", "", nil); code != 401 {
		t.Errorf("configuration without a key: %d, want 401", code)
	}
}

func TestCORSAndConfiguration(t *testing.T) {
	t.Parallel()
	h, _ := newHandler(t, Options{CORS: true})
	code, hdr, _ := call(t, h, "OPTIONS", "/ofrep/v1/evaluate/flags", "", map[string]string{
		"Origin": "http://app.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type, x-api-key"})
	if code != http.StatusNoContent || hdr.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(hdr.Get("Access-Control-Allow-Headers"), "X-API-Key") || !strings.Contains(hdr.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight: %d %v, want 204 allowing POST and X-API-Key from any origin", code, hdr)
	}
	code, hdr, out := call(t, h, "GET", "/ofrep/v1/configuration", "", nil)
	if code != 200 || out["name"] != "aviary" || hdr.Get("Access-Control-Expose-Headers") != "ETag" {
		t.Errorf("configuration: %d %v %v, want 200 naming aviary, ETag exposed to pages", code, out, hdr)
	}
	if code, _, _ = call(t, h, "GET", "/ofrep/v1/configuration", "", map[string]string{"If-None-Match": hdr.Get("ETag")}); code != 304 {
		t.Errorf("configuration with its ETag: %d, want 304", code)
	}
}

// TestChangeStream: the stream announces the ETag on connecting and a new one after a change.
func TestChangeStream(t *testing.T) {
	t.Parallel()
	h, src := newHandler(t, Options{})
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/ofrep/v1/changes")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q, want text/event-stream", ct)
	}
	events := make(chan map[string]any, 4)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var ev map[string]any
				_ = json.Unmarshal([]byte(data), &ev)
				events <- ev
			}
		}
		close(events)
	}()
	next := func() map[string]any {
		select {
		case ev := <-events:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10s")
			return nil
		}
	}
	first := next()
	if first["type"] != "refetchEvaluation" || first["etag"] != strings.Trim(src.Current().ETag(), `"`) {
		t.Fatalf("first event %v, want refetchEvaluation with the set's ETag", first)
	}
	if _, err := src.Disable("string-flag", "", "test"); err != nil {
		t.Fatal(err)
	}
	second := next()
	if second["type"] != "refetchEvaluation" || second["etag"] == first["etag"] {
		t.Errorf("after a change: %v, want refetchEvaluation with a new ETag", second)
	}
}

// TestShutdownEndsChangeStreams: a server's graceful shutdown is not held by browsers' streams.
func TestShutdownEndsChangeStreams(t *testing.T) {
	t.Parallel()
	h, _ := newHandler(t, Options{})
	srv := httptest.NewUnstartedServer(h)
	srv.Config.RegisterOnShutdown(h.Shutdown)
	srv.Start()
	resp, err := http.Get(srv.URL + "/ofrep/v1/changes")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ended := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, resp.Body); ended <- err }()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Config.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a change stream open: %v", err)
	}
	select {
	case <-ended:
	case <-ctx.Done():
		t.Fatal("the stream did not end with the shutdown")
	}
}
