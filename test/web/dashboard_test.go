//go:build e2e

package web_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"aviary.dev/aviary/test/e2e"
)

// services is a config's services list: shop and cart, each rolling out v1 → v2 in the steps
// given (YAML lines under steps:).
func services(t *testing.T, shopV2ErrPercent int, steps string) string {
	var b strings.Builder
	for _, name := range []string{"shop", "cart"} {
		errs := 0
		if name == "shop" {
			errs = shopV2ErrPercent
		}
		fmt.Fprintf(&b, `  - name: %s
    match: {pathPrefix: /%s}
    versions:
      - {name: v1, endpoints: [%q]}
      - {name: v2, endpoints: [%q]}
    release: v1
    strategy:
      canary:
        steps:
%s`, name, map[string]string{"shop": "", "cart": "cart"}[name], e2e.Upstream(t, "v1", 0), e2e.Upstream(t, "v2", errs), steps)
	}
	return b.String()
}

const holdAtHalf = "          - setWeight: 50\n          - pause: {}\n"

// TestOverviewListsServicesAndShowsARolloutLive: signed in, the overview lists every service; a
// rollout started through the API (as the CLI does) shows up without a reload.
func TestOverviewListsServicesAndShowsARolloutLive(t *testing.T) {
	a := serve(t, services(t, 0, holdAtHalf), "")
	ctx := browser(t, 1280, 800)
	signIn(t, ctx, a, adminToken)
	waitJS(t, ctx, 10*time.Second, "both services listed",
		`document.querySelector('tr[data-service="shop"]') && document.querySelector('tr[data-service="cart"]')`)
	waitJS(t, ctx, 10*time.Second, "the event stream connected", `document.getElementById('live').textContent === 'live'`)
	eval[bool](t, ctx, `window.__sameLoad = true`)

	a.startRollout("shop", "v2")
	waitJS(t, ctx, 10*time.Second, "shop's canary v2 at 50% in the overview",
		`document.querySelector('tr[data-service="shop"] .canary').textContent === 'v2' &&
		 document.querySelector('tr[data-service="shop"] .weight').textContent.includes('50%') &&
		 document.querySelector('tr[data-service="shop"]').dataset.phase === 'Paused'`)
	if !eval[bool](t, ctx, `window.__sameLoad === true`) {
		t.Error("the page was reloaded; the rollout must arrive over the event stream")
	}
	// The filter keeps what matches.
	run(t, ctx, 10*time.Second, "filter", sendKeys("#filter", "cart"))
	waitJS(t, ctx, 5*time.Second, "only cart listed",
		`document.querySelectorAll('#services tbody tr').length === 1 && document.querySelector('tr[data-service="cart"]')`)
	run(t, ctx, 10*time.Second, "clear the filter", clearInput("#filter"))
	waitJS(t, ctx, 5*time.Second, "both listed again", `document.querySelectorAll('#services tbody tr').length === 2`)
	screenshot(t, ctx, "overview")
}

// TestRolloutPageShowsStepsChartsAndAbortSendsTrafficBack: the rollout page shows the steps with
// the current one marked and charts with data; an abort clicked in the page, confirmed with a
// reason, sends every request back to the stable version at the gateway.
func TestRolloutPageShowsStepsChartsAndAbortSendsTrafficBack(t *testing.T) {
	a := serve(t, services(t, 0, holdAtHalf), "")
	load := a.load(t, 40)
	a.startRollout("shop", "v2")
	ctx := browser(t, 1400, 1000)
	signIn(t, ctx, a, adminToken)
	run(t, ctx, 10*time.Second, "open shop's rollout", navigateHash(a, "#/services/shop"))
	waitJS(t, ctx, 10*time.Second, "the steps with the current one marked",
		`document.querySelectorAll('#steps li').length === 2 && document.querySelector('#steps li.current').textContent.includes('pause')`)
	waitJS(t, ctx, 60*time.Second, "the traffic chart with data",
		`Number(document.querySelector('#chart-traffic')?.dataset.points) > 1 && document.querySelector('#chart-traffic canvas')`)
	screenshot(t, ctx, "rollout")

	waitJS(t, ctx, 5*time.Second, "the abort button", `document.querySelector('#controls button[data-action="abort"]')`)
	run(t, ctx, 10*time.Second, "click abort",
		chromedpClick(`#controls button[data-action="abort"]`))
	waitJS(t, ctx, 5*time.Second, "the confirmation", `document.getElementById('confirm').open`)
	// Without a reason the dialog says why it waits.
	run(t, ctx, 5*time.Second, "confirm without a reason", chromedpClick("#confirm-ok"))
	waitJS(t, ctx, 5*time.Second, "asked for a reason", `document.getElementById('confirm-error').textContent.includes('reason')`)
	run(t, ctx, 10*time.Second, "give a reason and confirm", sendKeys("#reason", "checkout looks wrong"), chromedpClick("#confirm-ok"))
	waitJS(t, ctx, 10*time.Second, "the dialog closed and the rollout degraded",
		`!document.getElementById('confirm').open && document.querySelector('#phase').textContent === 'Degraded'`)
	waitJS(t, ctx, 10*time.Second, "the abort and its reason in the events",
		`[...document.querySelectorAll('#events li[data-kind="Aborted"]')].some((li) => li.textContent.includes('checkout looks wrong'))`)
	screenshot(t, ctx, "rollout-aborted")

	if st := a.status("shop"); st.Phase != "Degraded" || st.CanaryWeight != 0 {
		t.Fatalf("after the abort: %+v, want Degraded at 0%%", st)
	}
	load.mu.Lock()
	if load.counts["v2"] == 0 {
		t.Errorf("v2 served nothing before the abort (%v): the test did not test the abort", load.counts)
	}
	load.mu.Unlock()
	for i := range 50 {
		if name, ok := get(t.Context(), a.gw+"/"); !ok || name != "v1" {
			t.Fatalf("request %d after the abort was served by %q, want v1", i, name)
		}
	}
}

// TestReadTokenSeesNoControls: with the read token the page shows the rollout and no controls,
// and a change sent from the page anyway is refused with the API's words.
func TestReadTokenSeesNoControls(t *testing.T) {
	a := serve(t, services(t, 0, holdAtHalf), "")
	a.startRollout("shop", "v2")
	ctx := browser(t, 1280, 900)
	signIn(t, ctx, a, readToken)
	run(t, ctx, 10*time.Second, "open shop's rollout", navigateHash(a, "#/services/shop"))
	waitJS(t, ctx, 10*time.Second, "the rollout shown", `document.querySelector('#phase')?.textContent === 'Paused'`)
	if n := eval[int](t, ctx, `document.querySelectorAll('#controls button').length`); n != 0 {
		t.Errorf("the read token sees %d controls, want none", n)
	}
	got := eval[string](t, ctx, `fetch('/api/v1/services/shop/rollout/abort', {method: 'POST',
		headers: {'Content-Type': 'application/json', Authorization: 'Bearer `+readToken+`'}, body: '{}'})
		.then(async (r) => r.status + ' ' + (await r.json()).error)`)
	if !strings.HasPrefix(got, "403 ") || !strings.Contains(got, "read token may only read") {
		t.Errorf("a change with the read token: %q, want 403 saying the read token may only read", got)
	}
	if st := a.status("shop"); st.Phase != "Paused" || st.CanaryWeight != 50 {
		t.Errorf("after the refused change: %+v, want Paused at 50%%", st)
	}
	screenshot(t, ctx, "rollout-read-only")
}

// errorsOnly is the analysis template of the rollback test: the built-in error rate, critical.
const errorsOnly = `
analysis:
  templates:
    - name: errors-only
      metrics:
        - {name: errors, builtin: errorRate, critical: true, detectableEffect: {points: 5}}
`

// TestJudgeRollbackShowsTheFailingMetricFirst: a canary answering 20% 5xx is rolled back by the
// judge; its page puts the failing metric first, above everything else, and first in the
// evidence table.
func TestJudgeRollbackShowsTheFailingMetricFirst(t *testing.T) {
	steps := "          - setWeight: 20\n          - analysis: {templates: [errors-only]}\n          - setWeight: 50\n"
	a := serve(t, services(t, 20, steps), errorsOnly)
	a.load(t, 80)
	ctx := browser(t, 1400, 1000)
	signIn(t, ctx, a, adminToken)
	run(t, ctx, 10*time.Second, "open shop's rollout", navigateHash(a, "#/services/shop"))
	a.startRollout("shop", "v2")
	waitJS(t, ctx, 120*time.Second, "the judge's rollback on the page", `document.querySelector('#phase')?.textContent === 'Degraded'`)
	waitJS(t, ctx, 30*time.Second, "the failing metric first",
		`document.querySelector('#failing .failing')?.dataset.metric === 'errors' &&
		 document.querySelector('#evidence-table tbody tr').dataset.metric === 'errors' &&
		 document.querySelector('#evidence-table tbody tr').classList.contains('failed')`)
	// First on the page: nothing but the title and the way back comes before it.
	if !eval[bool](t, ctx, `(() => { const f = document.getElementById('failing');
		return [document.getElementById('steps'), document.getElementById('charts'), document.getElementById('controls')]
			.every((el) => f.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING); })()`) {
		t.Error("the failing metric is not above the steps, charts and controls")
	}
	waitJS(t, ctx, 10*time.Second, "every event of the rollout listed, those before the page's read too",
		`['RolloutStarted', 'StepStarted', 'AnalysisFailed'].every((k) => document.querySelector('#events li[data-kind="' + k + '"]'))`)
	waitJS(t, ctx, 30*time.Second, "the error-rate chart with data",
		`Number(document.querySelector('#chart-err-errors')?.dataset.points) > 0`)
	// The moment of the verdict is marked on the failing metric's chart, which comes first, and
	// on the traffic chart — drawn at once, though it falls in the 10 s slot still filling.
	waitJS(t, ctx, 30*time.Second, "the failed verdict drawn on the charts, the failing metric's first",
		`document.querySelector('#charts .chart').dataset.metric === 'errors' &&
		 ['#chart-err-errors', '#chart-traffic'].every((c) => document.querySelector(c)?.dataset.drawn?.split(' ').includes('fail')) &&
		 document.querySelector('#verdicts li[data-kind="fail"]')?.textContent.includes('AnalysisFailed')`)
	screenshot(t, ctx, "rollout-rolled-back")
	if st := a.status("shop"); st.StableVersion != "v1" || st.CanaryWeight != 0 {
		t.Errorf("after the rollback: %+v, want v1 stable, canary at 0%%", st)
	}
}

// TestARefusalShowsTheAPIsMessage: a change that no longer fits when it is confirmed (someone
// paused the rollout from the CLI while the dialog was open) is refused, and the dialog shows the
// API's words; nothing changes.
func TestARefusalShowsTheAPIsMessage(t *testing.T) {
	a := serve(t, services(t, 0, "          - setWeight: 30\n          - pause: {duration: 1h}\n"), "")
	a.startRollout("shop", "v2")
	ctx := browser(t, 1280, 900)
	signIn(t, ctx, a, adminToken)
	run(t, ctx, 10*time.Second, "open shop's rollout", navigateHash(a, "#/services/shop"))
	waitJS(t, ctx, 10*time.Second, "the pause button", `document.querySelector('#controls button[data-action="pause"]')`)
	waitJS(t, ctx, 10*time.Second, "the countdown of the timed pause", `/\d+ min \d+ s left/.test(document.getElementById('countdown')?.textContent)`)
	run(t, ctx, 10*time.Second, "click pause", chromedpClick(`#controls button[data-action="pause"]`))
	waitJS(t, ctx, 5*time.Second, "the confirmation", `document.getElementById('confirm').open`)
	if code, body := a.call("POST", "/api/v1/services/shop/rollout/pause", adminToken, map[string]string{"reason": "from the CLI"}, nil); code != 200 {
		t.Fatalf("pause from the CLI: %d %s", code, body)
	}
	run(t, ctx, 10*time.Second, "confirm", sendKeys("#reason", "hold on"), chromedpClick("#confirm-ok"))
	waitJS(t, ctx, 10*time.Second, "the API's refusal in the dialog",
		`document.getElementById('confirm').open && document.getElementById('confirm-error').textContent.includes('already paused by a person')`)
	screenshot(t, ctx, "refusal")
	run(t, ctx, 5*time.Second, "cancel", chromedpClick("#confirm-cancel"))
	waitJS(t, ctx, 10*time.Second, "resume offered now", `document.querySelector('#controls button[data-action="resume"]') && !document.querySelector('#controls button[data-action="pause"]')`)
}

// TestPhoneAndDark: on a phone-sized screen in dark mode the pages fit the width (no sideways
// scrolling of the page) and take the dark colours; the controls are reachable by keyboard.
func TestPhoneAndDark(t *testing.T) {
	a := serve(t, services(t, 0, holdAtHalf), "")
	a.startRollout("shop", "v2")
	ctx := browser(t, 1280, 900)
	run(t, ctx, 10*time.Second, "a dark phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
			return err
		}))
	signIn(t, ctx, a, adminToken)
	waitJS(t, ctx, 10*time.Second, "the overview", `document.querySelector('tr[data-service="shop"] .canary')?.textContent === 'v2'`)
	fits := `document.documentElement.scrollWidth <= window.innerWidth + 1`
	if !eval[bool](t, ctx, fits) {
		t.Errorf("the overview is %v px wide on a %v px screen", eval[float64](t, ctx, `document.documentElement.scrollWidth`), eval[float64](t, ctx, `window.innerWidth`))
	}
	if bg := eval[string](t, ctx, `getComputedStyle(document.documentElement).backgroundColor`); bg != "rgb(19, 21, 23)" {
		t.Errorf("background %s in dark mode, want the dark one", bg)
	}
	screenshot(t, ctx, "overview-phone-dark")
	run(t, ctx, 10*time.Second, "open shop's rollout", navigateHash(a, "#/services/shop"))
	waitJS(t, ctx, 10*time.Second, "the controls", `document.querySelector('#controls button[data-action="abort"]')`)
	if !eval[bool](t, ctx, fits) {
		t.Errorf("the rollout page is %v px wide on a %v px screen", eval[float64](t, ctx, `document.documentElement.scrollWidth`), eval[float64](t, ctx, `window.innerWidth`))
	}
	// Keyboard: Tab from the top reaches the abort button.
	reached := eval[bool](t, ctx, `(() => { document.activeElement?.blur(); return true; })()`)
	for i := 0; i < 40 && reached; i++ {
		run(t, ctx, 5*time.Second, "tab", chromedp.KeyEvent(kb.Tab))
		if eval[bool](t, ctx, `document.activeElement?.dataset?.action === 'abort'`) {
			reached = false
		}
	}
	if reached {
		t.Error("40 presses of Tab did not reach the abort button")
	}
	screenshot(t, ctx, "rollout-phone-dark")
}

// TestWallDisplay: on a 4K wall display the rollout page uses the width (charts side by side,
// larger type) without sideways scrolling.
func TestWallDisplay(t *testing.T) {
	a := serve(t, services(t, 0, holdAtHalf), "")
	a.load(t, 20)
	a.startRollout("shop", "v2")
	ctx := browser(t, 3840, 2160)
	signIn(t, ctx, a, readToken)
	run(t, ctx, 10*time.Second, "open shop's rollout", navigateHash(a, "#/services/shop"))
	waitJS(t, ctx, 30*time.Second, "two charts", `document.querySelectorAll('#charts .chart canvas').length >= 2`)
	if !eval[bool](t, ctx, `document.documentElement.scrollWidth <= window.innerWidth + 1`) {
		t.Error("the page scrolls sideways on a wall display")
	}
	if !eval[bool](t, ctx, `(() => { const c = [...document.querySelectorAll('#charts .chart')];
		return c.length >= 2 && c[0].getBoundingClientRect().top === c[1].getBoundingClientRect().top; })()`) {
		t.Error("the charts are not side by side on a wall display")
	}
	if fs := eval[string](t, ctx, `getComputedStyle(document.documentElement).fontSize`); fs != "19px" {
		t.Errorf("font size %s on a wall display, want the larger 19px", fs)
	}
	screenshot(t, ctx, "rollout-wall")
}
