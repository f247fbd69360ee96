//go:build e2e

package flags_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"aviary.dev/aviary/internal/polltest"
	"aviary.dev/aviary/test/e2e"
)

// detail is what web.mjs reports of one flag's resolution.
type detail struct {
	Value     any    `json:"value"`
	Variant   string `json:"variant"` // "" for null
	Reason    string `json:"reason"`
	ErrorCode string `json:"errorCode"`
}

// TestWebSDKInChromium loads a page from another origin than the gateway's (so CORS is exercised
// as in production) in Debian's headless Chromium. The page bundles the web SDK and the OFREP web
// provider with esbuild, and evaluates through two providers: one on the provider's defaults (it
// follows the change stream the bulk answer names) and one polling the bulk endpoint with
// If-None-Match. The test checks every type, that polling gets 304s while nothing changes, that a
// change through the API reaches both, and the kill switch.
func TestWebSDKInChromium(t *testing.T) {
	needNode(t)
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not on PATH: run scripts/chromium.sh (it installs Debian's chromium)")
	}
	t.Parallel()
	sdk := filepath.Join(e2e.ModuleRoot(t), "test", "flags", "sdk")
	e2e.NpmCI(t, sdk)
	bundle := filepath.Join(t.TempDir(), "web.js")
	esbuild := exec.Command(filepath.Join(sdk, "node_modules", ".bin", "esbuild"), "web.mjs", "--bundle", "--format=iife", "--outfile="+bundle)
	esbuild.Dir = sdk
	if out, err := esbuild.CombinedOutput(); err != nil {
		t.Fatalf("esbuild web.mjs: %v\n%s", err, out)
	}
	s := serve(t)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/web.js" {
			http.ServeFile(w, r, bundle)
			return
		}
		fmt.Fprint(w, `<!doctype html><html><head><script src="/web.js"></script></head><body>flags</body></html>`)
	}))
	defer page.Close()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	defer cancel()

	eval := func(expr string, out any) {
		t.Helper()
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](expr, chromedp.EvalAwaitPromise))
		if err == nil {
			err = json.Unmarshal(raw, out)
		}
		if err != nil {
			t.Fatalf("evaluate %s in the page: %v", expr, err)
		}
	}
	values := func(domain string) map[string]detail {
		var v map[string]detail
		eval(fmt.Sprintf("flagsTest.values(%q)", domain), &v)
		return v
	}
	// waitFor polls the page until cond holds for domain's values, and says how long it took.
	waitFor := func(domain, what string, cond func(map[string]detail) bool) time.Duration {
		t.Helper()
		start := time.Now()
		if !polltest.Until(20*time.Second, polltest.Every, func() bool { return cond(values(domain)) }) {
			t.Fatalf("%s: %s not seen within 20s; values %+v", domain, what, values(domain))
		}
		return time.Since(start)
	}

	if _, err := chromedp.Run(ctx, chromedp.Navigate(page.URL)); err != nil {
		t.Fatalf("load the page in chromium: %v", err)
	}
	var started bool
	eval(fmt.Sprintf("flagsTest.start(%q, %q)", s.gw, evalKey), &started)

	for _, domain := range []string{"sse", "poll"} {
		v := values(domain)
		if v["bool"].Value != true || v["string"].Value != "goodbye" || v["number"].Value != 0.5 ||
			fmt.Sprint(v["object"].Value) != "map[size:3 tags:[x]]" || v["staff"].Value != true {
			t.Errorf("%s: values %+v, want true, goodbye, 0.5, {size:3 tags:[x]} and staff true", domain, v)
		}
		if m := v["missing"]; m.Value != true || m.ErrorCode != "FLAG_NOT_FOUND" {
			t.Errorf("%s: a flag the set lacks resolved to %+v, want the code default with FLAG_NOT_FOUND", domain, m)
		}
	}

	// The polling provider asks with If-None-Match every 200 ms: unchanged flags are 304s.
	const notModified = `aviary_ofrep_requests_total{code="304",endpoint="bulk"}`
	before := s.metric(t, notModified)
	if !polltest.Until(20*time.Second, 50*time.Millisecond, func() bool { return s.metric(t, notModified) >= before+3 }) {
		t.Fatalf("the polling provider got %v bulk 304s in 20s, want 3 or more", s.metric(t, notModified)-before)
	}

	s.adminAPI(t, "PUT", "/api/v1/flags/string-flag", `{"state":"ENABLED","variants":{"hi":"hello","bye":"goodbye"},"defaultVariant":"hi"}`)
	for _, domain := range []string{"sse", "poll"} {
		took := waitFor(domain, "the changed string-flag", func(v map[string]detail) bool { return v["string"].Value == "hello" })
		t.Logf("%s provider: the change through the API seen in the page %v after the API answered", domain, took.Round(time.Millisecond))
	}

	s.adminAPI(t, "POST", "/api/v1/flags/bool-flag/disable", `{"reason": "web test"}`)
	for _, domain := range []string{"sse", "poll"} {
		took := waitFor(domain, "the kill switch", func(v map[string]detail) bool {
			return v["bool"].Value == false && v["bool"].Reason == "DISABLED"
		})
		t.Logf("%s provider: the kill switch seen in the page %v after the API answered", domain, took.Round(time.Millisecond))
	}
	var changes map[string]int
	eval("flagsTest.changes", &changes)
	if changes["sse"] < 2 || changes["poll"] < 2 {
		t.Errorf("ConfigurationChanged events %v, want 2 or more in each domain (the change and the kill switch)", changes)
	}
	if os.Getenv("AVIARY_FLAGS_KEEP") != "" {
		t.Logf("page %s, gateway %s", page.URL, s.gw)
	}
}
