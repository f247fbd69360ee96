//go:build k8s

package admin

// The dashboard as `aviary controller` serves it, in a real headless Chromium (Debian's chromium,
// installed by scripts/chromium.sh, driven by chromedp) against the package's controller and
// its real API server. Screenshots go to $AVIARY_SCREENSHOTS (default aviary-screenshots in the
// system's temp directory), not to the repository.

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"k8s.io/apimachinery/pkg/types"

	"aviary.dev/aviary/internal/browsertest"
	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/polltest"
	"aviary.dev/aviary/internal/rollout"
)

// TestTheDashboardShowsTheRolloutsOfTwoNamespacesAndSteersOne: signed in with the admin token,
// the overview lists the Rollouts of two namespaces with a namespace filter; a Rollout's page
// (its name URL-encoded in the route) shows its steps with the current one marked, and an abort
// clicked there and confirmed reaches the Rollout through the controller.
func TestTheDashboardShowsTheRolloutsOfTwoNamespacesAndSteersOne(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a, b := app(t, ctx, "ui-a"), app(t, ctx, "ui-b")
	for _, ns := range []string{a, b} {
		waitStatus(t, ns, "the first version to be stable", func(st rollout.Status) bool { return st.Phase == rollout.Healthy })
	}
	setImage(t, ctx, a, "web:2")
	waitStatus(t, a, "the canary at 30%", func(st rollout.Status) bool { return st.Phase == rollout.Paused && st.CanaryWeight == 30 })

	page := browser(t, 1280, 900)
	run(t, page, 30*time.Second, "sign in",
		chromedp.Navigate(adminURL+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), adminToken),
		chromedp.Click(chromedp.CSS("#signin button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#services")))
	rowA, rowB := `tr[data-service="`+a+`/web"]`, `tr[data-service="`+b+`/web"]`
	waitJS(t, page, 20*time.Second, "both namespaces' Rollouts, the paused one at 30%",
		`document.querySelector('`+rowB+`') && document.querySelector('`+rowA+`')?.dataset.phase === 'Paused' &&
		 document.querySelector('`+rowA+` .weight').textContent.includes('30%')`)
	waitJS(t, page, 10*time.Second, "the namespace filter offering both",
		`!document.getElementById('namespace').hidden && ['`+a+`', '`+b+`'].every((n) => [...document.querySelectorAll('#namespace option')].some((o) => o.value === n))`)
	screenshot(t, page, "k8s-overview")
	eval[bool](t, page, `(() => { const s = document.getElementById('namespace'); s.value = '`+b+`'; s.dispatchEvent(new Event('change')); return true; })()`)
	waitJS(t, page, 5*time.Second, "only "+b+" listed", `!document.querySelector('`+rowA+`') && document.querySelector('`+rowB+`')`)
	eval[bool](t, page, `(() => { const s = document.getElementById('namespace'); s.value = ''; s.dispatchEvent(new Event('change')); return true; })()`)

	run(t, page, 10*time.Second, "open "+a+"/web", chromedp.Click(chromedp.CSS(rowA+" a")))
	waitJS(t, page, 10*time.Second, "the route carries the name URL-encoded", `location.hash === '#/services/`+a+`%2Fweb'`)
	waitJS(t, page, 20*time.Second, "the rollout page with its steps, the pause current",
		`document.querySelector('#phase')?.textContent === 'Paused' && document.querySelectorAll('#steps li').length === 2 &&
		 document.querySelector('#steps li.current')?.textContent.includes('pause')`)
	waitJS(t, page, 10*time.Second, "the start among the events", `document.querySelector('#events li[data-kind="RolloutStarted"]')`)
	screenshot(t, page, "k8s-rollout")

	waitJS(t, page, 10*time.Second, "the abort button", `document.querySelector('#controls button[data-action="abort"]')`)
	run(t, page, 10*time.Second, "click abort", chromedp.Click(chromedp.CSS(`#controls button[data-action="abort"]`)))
	waitJS(t, page, 5*time.Second, "the confirmation", `document.getElementById('confirm').open`)
	run(t, page, 10*time.Second, "give a reason and confirm",
		chromedp.SendKeys(chromedp.CSS("#reason"), "latency up"), chromedp.Click(chromedp.CSS("#confirm-ok")))
	waitJS(t, page, 30*time.Second, "the dialog closed and the rollout degraded",
		`!document.getElementById('confirm').open && document.querySelector('#phase').textContent === 'Degraded'`)
	waitJS(t, page, 10*time.Second, "the abort among the events", `document.querySelector('#events li[data-kind="Aborted"]')`)
	screenshot(t, page, "k8s-rollout-aborted")
	var ro v1alpha1.Rollout
	if err := cl.Get(ctx, types.NamespacedName{Namespace: a, Name: "web"}, &ro); err != nil {
		t.Fatal(err)
	}
	if ro.Status.Phase != "Degraded" || ro.Status.CanaryWeight != 0 || ro.Status.LastCommand == nil || ro.Status.LastCommand.Kind != "abort" {
		t.Errorf("the Rollout after the page's abort: phase %s, weight %d, last command %+v", ro.Status.Phase, ro.Status.CanaryWeight, ro.Status.LastCommand)
	}
}

// browser is one headless Chromium tab (browsertest.Tab), closed when the test ends. An exception
// or a console error in the page fails the test, but for the 4xx answers the page expects: whoami
// before the sign-in, and /series, which Kubernetes mode does not serve.
func browser(t *testing.T, width, height int) context.Context {
	t.Helper()
	return browsertest.Tab(t, width, height)
}

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
	if len(html) > 3000 {
		html = html[len(html)-3000:]
	}
	return html
}

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
}
