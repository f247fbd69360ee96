//go:build e2e

package web_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"aviary.dev/aviary/test/e2e"
)

// flagsAviary serves a shop whose checkout flag is being rolled out (20%, then a pause) and a
// banner flag, from a flag file.
func flagsAviary(t *testing.T) *aviary {
	file := filepath.Join(t.TempDir(), "flags.json")
	doc := `{"flags": {
  "checkout": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"},
  "banner": {"state": "ENABLED", "variants": {"red": "#c00", "blue": "#00c"}, "defaultVariant": "blue"}}}`
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	services := fmt.Sprintf(`  - name: shop
    match: {pathPrefix: /}
    stickiness: {header: X-User}
    versions: [{name: v1, endpoints: [%q]}]
    flags:
      - key: checkout
        release: "on"
        strategy: {defaultAnalysis: false, canary: {steps: [{setWeight: 20}, {pause: {}}]}}
`, e2e.Upstream(t, "v1", 0))
	return serve(t, services, fmt.Sprintf("flags: {files: [%q]}", file))
}

// TestFlagsPageShowsFlagsTheirRolloutAndTheKillSwitch: the flags page lists every flag with its
// state, source and default, the share of the flag rollout in flight, and, for the admin token,
// the kill switch: disabling a flag with a reason turns it off through the API.
func TestFlagsPageShowsFlagsTheirRolloutAndTheKillSwitch(t *testing.T) {
	a := flagsAviary(t)
	ctx := browser(t, 1400, 1000)
	signIn(t, ctx, a, adminToken)
	run(t, ctx, 10*time.Second, "open the flags page", navigateHash(a, "#/flags"))
	waitJS(t, ctx, 10*time.Second, "both flags, enabled, from the file",
		`document.querySelectorAll('#flags tr[data-flag]').length === 2 &&
		 document.querySelector('#flags tr[data-flag="banner"] td.state').textContent.includes('ENABLED') &&
		 document.querySelector('#flags tr[data-flag="banner"] td.source').textContent.startsWith('file:')`)
	waitJS(t, ctx, 10*time.Second, "checkout's rollout paused at 20%",
		`document.querySelector('#flags tr[data-flag="checkout"] td.rollout').textContent.includes('Paused') &&
		 document.querySelector('#flags tr[data-flag="checkout"] td.rollout [role=meter]')?.getAttribute('aria-valuenow') === '20'`)
	screenshot(t, ctx, "flags")
	// The rollout links to its own page, the page of a service's rollout.
	run(t, ctx, 10*time.Second, "open checkout's rollout", chromedpClick(`#flags tr[data-flag="checkout"] td.rollout a`))
	waitJS(t, ctx, 10*time.Second, "the flag rollout's page", `document.querySelector('#phase')?.textContent === 'Paused'`)
	run(t, ctx, 10*time.Second, "back to the flags page", navigateHash(a, "#/flags"))
	waitJS(t, ctx, 10*time.Second, "the flags again", `document.querySelectorAll('#flags tr[data-flag]').length === 2`)

	run(t, ctx, 10*time.Second, "disable banner", chromedpClick(`#flags tr[data-flag="banner"] button[data-action="disable"]`))
	waitJS(t, ctx, 5*time.Second, "the confirmation", `document.getElementById('confirm').open`)
	run(t, ctx, 10*time.Second, "give a reason and confirm", sendKeys("#reason", "banner breaks the layout"), chromedpClick("#confirm-ok"))
	waitJS(t, ctx, 10*time.Second, "banner disabled, by whom",
		`!document.getElementById('confirm').open &&
		 document.querySelector('#flags tr[data-flag="banner"]').dataset.state === 'DISABLED' &&
		 document.querySelector('#flags tr[data-flag="banner"] button[data-action="enable"]')`)
	var flag struct {
		State string `json:"state"`
	}
	if code, body := a.call("GET", "/api/v1/flags/banner", adminToken, nil, &flag); code != 200 || flag.State != "DISABLED" {
		t.Fatalf("after the kill switch from the page: %d %s", code, body)
	}
}

// TestFlagsPageHasNoKillSwitchForTheReadToken: the read token sees the flags and no controls.
func TestFlagsPageHasNoKillSwitchForTheReadToken(t *testing.T) {
	a := flagsAviary(t)
	ctx := browser(t, 1280, 900)
	signIn(t, ctx, a, readToken)
	run(t, ctx, 10*time.Second, "open the flags page", navigateHash(a, "#/flags"))
	waitJS(t, ctx, 10*time.Second, "both flags", `document.querySelectorAll('#flags tr[data-flag]').length === 2`)
	if n := eval[int](t, ctx, `document.querySelectorAll('#flags button').length`); n != 0 {
		t.Errorf("the read token sees %d kill-switch buttons, want none", n)
	}
}
