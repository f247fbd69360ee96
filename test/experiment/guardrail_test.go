//go:build e2e

package experiment

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cfgpkg "aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/experiment"
	"aviary.dev/aviary/internal/polltest"
	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/test/e2e"
)

// userUpstream is a real upstream standing for a version: it answers with its name, fails every
// failEvery-th request with a 500 (0: never), and counts the requests of each user (X-User).
type userUpstream struct {
	mu    sync.Mutex
	users map[string]int
	url   string
}

func newUserUpstream(t *testing.T, name string, failEvery int) *userUpstream {
	u := &userUpstream{users: map[string]int{}}
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		u.mu.Lock()
		u.users[r.Header.Get("X-User")]++
		n++
		fail := failEvery > 0 && n%failEvery == 0
		u.mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusInternalServerError)
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	u.url = srv.URL
	return u
}

// seen returns the users it served since the last call, and forgets them.
func (u *userUpstream) seen() map[string]int {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := u.users
	u.users = map[string]int{}
	return out
}

// A version arm that errs more is stopped by its guardrail — the canary judge on the gateway's
// own measures — on the real binary: the results and an event say so, the arm's users reach
// control from then on (counted at the upstreams), units outside the experiment's 50% never
// reached the arm, and all of it holds after kill -9.
func TestGuardrailStopsAnArmThatErrs(t *testing.T) {
	v1 := newUserUpstream(t, "v1", 0)
	v2 := newUserUpstream(t, "v2", 5) // 20% errors
	dir := t.TempDir()
	bin := filepath.Join(dir, "aviary")
	build := exec.Command("go", "build", "-o", bin, "./cmd/aviary")
	build.Dir = e2e.ModuleRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/aviary: %v\n%s", err, out)
	}
	gw, admin := e2e.FreeAddr(t), e2e.FreeAddr(t)
	cfg := filepath.Join(dir, "aviary.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`gateway: {listen: %q}
admin: {listen: %q}
storage: {path: %q}
services:
  - name: shop
    match: {pathPrefix: /}
    versions: [{name: v1, endpoints: [%q]}, {name: v2, endpoints: [%q]}]
    stickiness: {header: X-User}
experiments:
  - name: button
    service: shop
    arms: [{name: control, version: v1}, {name: green, version: v2}]
    traffic: 50
    minUnitsPerArm: 20
    metrics:
      - {name: conversion, event: purchase}
      - {name: errors, builtin: errorRate, guardrail: true}
`, gw, admin, filepath.Join(dir, "aviary.db"), v1.url, v2.url)), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "aviary.log")
	start := func() *e2e.Proc {
		p := e2e.StartProcess(t, "aviary", logPath, bin, "serve", "-c", cfg, "--log-level", "warn")
		e2e.WaitReady(t, "http://"+admin+"/readyz", logPath)
		return p
	}
	proc := start()
	adminURL, gwURL := "http://"+admin, "http://"+gw

	const users = 200
	send := func() {
		for i := 0; i < users; i++ {
			req, _ := http.NewRequest(http.MethodGet, gwURL+"/checkout", nil)
			req.Header.Set("X-User", fmt.Sprint("user-", i))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	var res experiment.Results
	green := map[string]bool{}
	polltest.Wait(t, 120*time.Second, "the errors guardrail to stop green", func() bool {
		send()
		for u := range v2.seen() {
			green[u] = true
		}
		get(t, adminURL+"/api/v1/experiments/button/results", &res)
		return res.Arms[1].Stopped != nil
	})
	t.Logf("stopped: %s", res.Arms[1].Stopped.Reason)
	if !strings.HasPrefix(res.Arms[1].Stopped.Reason, "green stopped: errors guardrail, ") || res.Decision.Winner != "" ||
		!strings.Contains(res.Decision.Text, "green stopped: errors guardrail") {
		t.Errorf("stopped %+v, decision %+v", res.Arms[1].Stopped, res.Decision)
	}
	if len(green) == 0 || len(green) > users*3/4 {
		t.Fatalf("%d of %d users reached green with 50%% of them in the experiment", len(green), users)
	}
	var evs struct{ Events []rollout.Event }
	get(t, adminURL+"/api/v1/events?last=20", &evs)
	found := false
	for _, e := range evs.Events {
		found = found || (e.Kind == cfgpkg.EventArmStopped && e.Experiment == "button" && e.Canary == "v2")
	}
	if !found {
		t.Errorf("no ArmStopped event among %+v", evs.Events)
	}

	// From now on green's users reach control. The stop is read from the store as soon as it is
	// written, and the placement changes once the write is durable (a state change is stored
	// before its traffic takes effect), which on a busy disk is a moment later: wait for it.
	onControl := func() (onGreen int, missed string) {
		v1.seen()
		send()
		onGreen = len(v2.seen())
		served := v1.seen()
		for u := range green {
			if served[u] == 0 {
				return onGreen, u
			}
		}
		return onGreen, ""
	}
	polltest.Wait(t, 30*time.Second, "green's users to reach control", func() bool {
		n, missed := onControl()
		return n == 0 && missed == ""
	})

	// The builtin metric per unit, from the gateway's records: green's users saw a fifth of their
	// requests fail, control's none.
	polltest.Wait(t, 30*time.Second, "the errors metric per unit in the results", func() bool {
		get(t, adminURL+"/api/v1/experiments/button/results", &res)
		for _, m := range res.Metrics {
			if m.Metric == "errors" {
				return m.Arms[0].ArmUnits >= 20
			}
		}
		return false
	})
	for _, m := range res.Metrics {
		if a := m.Arms[0]; m.Metric == "errors" && (a.ControlMean != 0 || a.ArmMean < 0.1 || a.ArmMean > 0.3) {
			t.Errorf("errors per unit: control %v, green %v; want 0 and about 0.2", a.ControlMean, a.ArmMean)
		}
	}

	// kill -9: the stop is in the store, and the new process places green's users on control.
	proc.Kill()
	proc = start()
	get(t, adminURL+"/api/v1/experiments/button/results", &res)
	if res.Arms[1].Stopped == nil {
		t.Fatalf("after kill -9 green runs again: %+v", res.Arms)
	}
	if n, missed := onControl(); n > 0 || missed != "" {
		t.Errorf("after kill -9 green's version served %d users; %q did not reach control", n, missed)
	}
	proc.Stop()
}

// variantUpstream is a real upstream of a service with a gateway-evaluated flag: it reads the
// variant from the X-Checkout header, fails every failEvery-th request of variant bad with a 500,
// and remembers each user's last variant.
type variantUpstream struct {
	mu   sync.Mutex
	last map[string]string
	url  string
}

func newVariantUpstream(t *testing.T, bad string, failEvery int) *variantUpstream {
	u := &variantUpstream{last: map[string]string{}}
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		variant := r.Header.Get("X-Checkout")
		u.mu.Lock()
		u.last[r.Header.Get("X-User")] = variant
		fail := false
		if variant == bad {
			n++
			fail = n%failEvery == 0
		}
		u.mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusInternalServerError)
		}
		io.WriteString(w, variant)
	}))
	t.Cleanup(srv.Close)
	u.url = srv.URL
	return u
}

func (u *variantUpstream) variants() map[string]string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[string]string, len(u.last))
	for k, v := range u.last {
		out[k] = v
	}
	return out
}

// A flag arm that errs more is stopped by its guardrail — the canary judge on the gateway's
// measurements of the flag's service per variant — and its users get control's variant from then
// on (read in the header the upstream gets); the results and an event say so.
func TestGuardrailStopsAFlagArmThatErrs(t *testing.T) {
	dir := t.TempDir()
	flags := filepath.Join(dir, "flags.json")
	if err := os.WriteFile(flags, []byte(flagsJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	up := newVariantUpstream(t, "on", 5) // 20% errors for "on"
	a := e2e.Start(t, fmt.Sprintf(`gateway: {listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0"}
storage: {path: %q}
flags: {files: [%q]}
services:
  - name: shop
    match: {pathPrefix: /}
    versions: [{name: v1, endpoints: [%q]}]
    stickiness: {header: X-User}
    flags: [{key: new-checkout, header: X-Checkout}]
experiments:
  - name: checkout
    flag: new-checkout
    arms: [{name: "off", variant: "off"}, {name: "on", variant: "on"}]
    minUnitsPerArm: 20
    metrics:
      - {name: conversion, event: purchase}
      - {name: errors, builtin: errorRate, guardrail: true}
`, filepath.Join(dir, "aviary.db"), flags, up.url))
	const users = 200
	send := func() {
		for i := 0; i < users; i++ {
			req, _ := http.NewRequest(http.MethodGet, a.GW+"/checkout", nil)
			req.Header.Set("X-User", fmt.Sprint("user-", i))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	var res experiment.Results
	on := map[string]bool{}
	polltest.Wait(t, 120*time.Second, "the errors guardrail to stop the flag's arm on", func() bool {
		send()
		for u, v := range up.variants() {
			if v == "on" {
				on[u] = true
			}
		}
		get(t, a.Admin+"/api/v1/experiments/checkout/results", &res)
		return res.Arms[1].Stopped != nil
	})
	t.Logf("stopped: %s", res.Arms[1].Stopped.Reason)
	if !strings.HasPrefix(res.Arms[1].Stopped.Reason, "on stopped: errors guardrail, ") || res.Decision.Winner != "" ||
		!strings.Contains(res.Decision.Text, "on stopped: errors guardrail") {
		t.Errorf("stopped %+v, decision %+v", res.Arms[1].Stopped, res.Decision)
	}
	if len(on) < users/4 || len(on) > users*3/4 {
		t.Fatalf("%d of %d users had variant on, with an even split", len(on), users)
	}
	var evs struct{ Events []rollout.Event }
	get(t, a.Admin+"/api/v1/events?last=20", &evs)
	found := false
	for _, e := range evs.Events {
		found = found || (e.Kind == cfgpkg.EventArmStopped && e.Experiment == "checkout" && e.Canary == "on")
	}
	if !found {
		t.Errorf("no ArmStopped event among %+v", evs.Events)
	}
	// From now on the arm's users get control's variant (once the stop is durable and the flag's
	// overlay follows it: wait for it).
	polltest.Wait(t, 30*time.Second, "the arm's users to get variant off", func() bool {
		send()
		got := up.variants()
		for u := range on {
			if got[u] != "off" {
				return false
			}
		}
		return true
	})
}
