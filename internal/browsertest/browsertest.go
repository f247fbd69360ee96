// Package browsertest gives tests a real headless Chromium tab (Debian's chromium, which
// scripts/chromium.sh installs), driven by chromedp, that fails the test on an uncaught exception
// or a console error in the page. The dashboard's suite (test/web) and the controller's dashboard
// test (internal/k8s/admin) share it.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// Chromium finds the browser: $AVIARY_CHROMIUM, else chromium or chromium-browser on the PATH,
// else it fails the test saying how to install one.
func Chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("AVIARY_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on the PATH: run scripts/chromium.sh (apt-get install chromium), or set AVIARY_CHROMIUM")
	return ""
}

// Tab is one headless Chromium with one tab of width × height; it closes when the test ends. An
// uncaught exception or a console error in the page (a script that failed, a request the CSP
// blocked) fails the test, but for the 4xx answers the browser logs (the pages ask for some on
// purpose: whoami before the sign-in, refusals).
func Tab(t testing.TB, width, height int) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Chromium(t)),
		chromedp.NoSandbox, // the tests may run as root in CI
		chromedp.DisableGPU,
		chromedp.WindowSize(width, height),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start chromium (%s): %v", Chromium(t), err)
	}
	var (
		mu       sync.Mutex
		problems []string
	)
	watch, stopWatch := context.WithCancel(ctx)
	messages := chromedp.Console(watch)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleException || m.Type == chromedp.ConsoleError {
				mu.Lock()
				problems = append(problems, m.String()+" ("+m.URL+")")
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		stopWatch()
		<-watched
		cancel()
		cancelAlloc()
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			if !expected(p) {
				t.Errorf("the page's console: %s", p)
			}
		}
	})
	return ctx
}

// expected is a console message the tests expect: the browser logs every answer that is not 2xx,
// and some tests ask for refusals on purpose.
func expected(msg string) bool {
	return strings.Contains(msg, "Failed to load resource: the server responded with a status of 40")
}
