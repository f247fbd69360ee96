//go:build e2e

// Package web_test drives the dashboard in a real headless Chromium (Debian's chromium, installed by
// scripts/chromium.sh) with chromedp, against the real aviary binary (`aviary serve`) and real
// upstream HTTP servers on 127.0.0.1. Every assertion waits for a condition in the page (or at
// the gateway) with a generous deadline; none measures time. Screenshots of each page go to
// $AVIARY_SCREENSHOTS (default: aviary-screenshots in the system's temp directory), not to the
// repository; with AVIARY_DOCS_IMG=docs/img, those the documentation shows go there too, small.
package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"aviary.dev/aviary/internal/browsertest"
	"aviary.dev/aviary/internal/polltest"
	"github.com/chromedp/chromedp"

	"aviary.dev/aviary/test/e2e"
)

const (
	adminToken = "dash-admin-token"
	readToken  = "dash-read-token"
)

var (
	buildOnce sync.Once
	aviaryBin string
	buildErr  error
)

// binary builds the real aviary once for the package.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = fmt.Errorf("find the module root: %w", err)
			return
		}
		dir, err := os.MkdirTemp("", "aviary-web-bin")
		if err != nil {
			buildErr = err
			return
		}
		aviaryBin = filepath.Join(dir, "aviary")
		cmd := exec.Command("go", "build", "-o", aviaryBin, "./cmd/aviary")
		cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
		if msg, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/aviary: %w\n%s", err, msg)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return aviaryBin
}

// aviary is one `aviary serve` process with an admin and a read token.
type aviary struct {
	t         *testing.T
	gw, admin string // base URLs
}

// serve starts aviary on the services' YAML (the list under services:) and extra top-level
// config, and waits until it is ready.
func serve(t *testing.T, services, extra string) *aviary {
	t.Helper()
	dir := t.TempDir()
	a := &aviary{t: t, gw: "http://" + e2e.FreeAddr(t), admin: "http://" + e2e.FreeAddr(t)}
	cfg := fmt.Sprintf("%s\ngateway: {listen: %q}\nadmin: {listen: %q, token: %s, readToken: %s}\nstorage: {path: %q}\nservices:\n%s",
		extra, strings.TrimPrefix(a.gw, "http://"), strings.TrimPrefix(a.admin, "http://"), adminToken, readToken,
		filepath.Join(dir, "aviary.db"), services)
	path := filepath.Join(dir, "aviary.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "aviary.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary(t), "serve", "-c", path)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "aviary.log"))
			t.Logf("aviary's log:\n%s", tail(string(log), 4000))
		}
	})
	waitFor(t, 20*time.Second, "aviary to be ready", func() bool {
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "aviary.log"))
			t.Fatalf("aviary exited:\n%s", log)
		default:
		}
		resp, err := http.Get(a.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return a
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// call sends a request to the admin API with token and decodes the answer into out (if any).
func (a *aviary) call(method, path, token string, body any, out any) (int, string) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.admin+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, out); err != nil {
			a.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return resp.StatusCode, string(data)
}

// startRollout starts a rollout as the CLI does, through the API.
func (a *aviary) startRollout(service, version string) {
	a.t.Helper()
	if code, body := a.call("POST", "/api/v1/services/"+service+"/rollout", adminToken, map[string]string{"version": version}, nil); code != http.StatusOK {
		a.t.Fatalf("start the rollout of %s to %s: %d %s", service, version, code, body)
	}
}

// status is a service's rollout status (the fields the tests read).
type status struct {
	Phase         string `json:"phase"`
	StableVersion string `json:"stableVersion"`
	CanaryVersion string `json:"canaryVersion"`
	CanaryWeight  int    `json:"canaryWeight"`
}

func (a *aviary) status(service string) status {
	var st status
	a.call("GET", "/api/v1/services/"+service+"/rollout", readToken, nil, &st)
	return st
}

// load sends about rps requests a second through the gateway until the test ends (every tenth
// to cart, the rest to shop), and counts shop's answers by the version that sent them.
type load struct {
	mu     sync.Mutex
	counts map[string]int
}

func (a *aviary) load(t *testing.T, rps int) *load {
	l := &load{counts: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for range 4 {
		wg.Go(func() {
			tick := time.NewTicker(4 * time.Second / time.Duration(rps))
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				if i%10 == 9 {
					get(ctx, a.gw+"/cart")
					continue
				}
				if name, ok := get(ctx, a.gw+"/"); ok {
					l.mu.Lock()
					l.counts[name]++
					l.mu.Unlock()
				}
			}
		})
	}
	return l
}

// get returns the body of a request through the gateway: the name of the version that answered.
func get(ctx context.Context, url string) (string, bool) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err == nil
}

// waitFor polls cond until it holds, or fails the test after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	if !polltest.Until(limit, 50*time.Millisecond, cond) {
		t.Fatalf("gave up waiting for %s after %s", what, limit)
	}
}

// browser is one headless Chromium with one tab (browsertest.Tab); it closes when the test ends,
// and an exception or a console error in the page fails the test.
func browser(t *testing.T, width, height int) context.Context {
	t.Helper()
	return browsertest.Tab(t, width, height)
}

// run runs browser actions, all bounded by limit, and fails the test with what was asked.
func run(t *testing.T, ctx context.Context, limit time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		t.Fatalf("%s: %v\nthe page's main:\n%s", what, err, mainHTML(ctx))
	}
}

func mainHTML(ctx context.Context) string {
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	html, _ := chromedp.Run(c, chromedp.OuterHTML(chromedp.CSS("main")))
	return tail(html, 3000)
}

// eval evaluates a JavaScript expression in the page (awaiting a promise) into T.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// signIn opens the dashboard and signs in with token.
func signIn(t *testing.T, ctx context.Context, a *aviary, token string) {
	t.Helper()
	run(t, ctx, 30*time.Second, "sign in",
		chromedp.Navigate(a.admin+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#signin button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#services")))
}

// waitJS waits until a JavaScript expression in the page is true.
func waitJS(t *testing.T, ctx context.Context, limit time.Duration, what, expr string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if !polltest.Until(limit, 50*time.Millisecond, func() bool {
		ok, err := chromedp.Run(c, chromedp.Evaluate[bool]("!!("+expr+")"))
		return err == nil && ok
	}) {
		t.Fatalf("gave up waiting for %s after %s (%s)\nthe page's main:\n%s", what, limit, expr, mainHTML(ctx))
	}
}

// screenshot writes the whole page to the screenshot directory.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("AVIARY_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "aviary-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	if doc, err := writeDocShot(name, png); err != nil {
		t.Fatal(err)
	} else if doc != "" {
		t.Logf("screenshot for the docs: %s", doc)
	}
}

func chromedpClick(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Click(chromedp.CSS(sel))
}

func sendKeys(sel, text string) chromedp.Action[chromedp.Void] {
	return chromedp.SendKeys(chromedp.CSS(sel), text)
}

func clearInput(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`(() => { const el = document.querySelector(`+strconvQuote(sel)+`);
			el.value = ''; el.dispatchEvent(new Event('input')); return true; })()`)(ctx, t)
		return err
	})
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

// navigateHash moves the page to a route of the dashboard without reloading it.
func navigateHash(a *aviary, hash string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`(location.hash = `+strconvQuote(hash)+`, true)`)(ctx, t)
		return err
	})
}
