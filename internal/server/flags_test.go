package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/server"
)

const (
	flagKey     = "eval-key-0123456789abcdef"
	flagAdmin   = "admin-token-0123456789"
	flagsDoc    = `{"flags": {"banner": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}}}`
	flagsConfig = `gateway: {listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0", token: %q}
flags:
  files: [flags.json]
  ofrep:
    keys: [{name: web, key: %q}]
`
)

// startFlags runs Aviary with a flag file beside its config; restart reuses the directory (and so
// the store).
func startFlags(t *testing.T, dir string) *aviary {
	t.Helper()
	path := filepath.Join(dir, "aviary.yaml")
	if _, err := os.Stat(path); err != nil {
		replaceFile(t, filepath.Join(dir, "flags.json"), flagsDoc)
		replaceFile(t, path, fmt.Sprintf(flagsConfig, flagAdmin, flagKey))
	}
	return run(t, path, server.Options{WatchFile: true})
}

// send makes one request with the given headers and returns the status and body.
func send(t *testing.T, method, url, body string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// evaluate evaluates banner over OFREP on the gateway listener and returns its answer.
func evaluate(t *testing.T, a *aviary) map[string]any {
	t.Helper()
	code, body := send(t, "POST", "http://"+a.gateway+"/ofrep/v1/evaluate/flags/banner", `{"context": {}}`, "X-API-Key", flagKey)
	var out map[string]any
	if err := json.Unmarshal([]byte(body), &out); err != nil || code != http.StatusOK {
		t.Fatalf("evaluate banner: %d %s", code, body)
	}
	return out
}

// TestFlagKeysOnlyEvaluate: an evaluation key evaluates on both listeners and opens nothing of the
// admin API; the admin token evaluates on the admin listener only.
func TestFlagKeysOnlyEvaluate(t *testing.T) {
	a := startFlags(t, t.TempDir())
	for _, c := range []struct {
		name, method, url string
		header            []string
		code              int
	}{
		{"key on the gateway", "POST", "http://" + a.gateway + "/ofrep/v1/evaluate/flags/banner", []string{"X-API-Key", flagKey}, 200},
		{"key on the admin listener", "POST", "http://" + a.admin + "/ofrep/v1/evaluate/flags/banner", []string{"Authorization", "Bearer " + flagKey}, 200},
		{"admin token on the admin listener", "POST", "http://" + a.admin + "/ofrep/v1/evaluate/flags", []string{"Authorization", "Bearer " + flagAdmin}, 200},
		{"admin token on the gateway", "POST", "http://" + a.gateway + "/ofrep/v1/evaluate/flags/banner", []string{"Authorization", "Bearer " + flagAdmin}, 403},
		{"no key", "POST", "http://" + a.gateway + "/ofrep/v1/evaluate/flags/banner", nil, 401},
		{"key reading the API", "GET", "http://" + a.admin + "/api/v1/flags", []string{"Authorization", "Bearer " + flagKey}, 401},
		{"key disabling a flag", "POST", "http://" + a.admin + "/api/v1/flags/banner/disable", []string{"Authorization", "Bearer " + flagKey}, 401},
		{"admin token reading the API", "GET", "http://" + a.admin + "/api/v1/flags", []string{"Authorization", "Bearer " + flagAdmin}, 200},
	} {
		if code, body := send(t, c.method, c.url, `{"context": {}}`, c.header...); code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, code, body, c.code)
		}
	}
}

// TestFlagFileReloadAndKillSwitchAcrossRestart: an invalid flag file is refused with its JSON path
// and the old flags kept (shown in the API's status); a valid one is served; the kill switch holds
// across a restart and is an event with who did it.
func TestFlagFileReloadAndKillSwitchAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	a := startFlags(t, dir)
	if out := evaluate(t, a); out["value"] != true {
		t.Fatalf("banner = %v, want true", out)
	}
	replaceFile(t, filepath.Join(dir, "flags.json"), strings.Replace(flagsDoc, `"defaultVariant": "on"`, `"defaultVariant": "maybe"`, 1))
	var list struct {
		Status struct {
			Files []struct{ Error string } `json:"files"`
		} `json:"status"`
	}
	eventually(t, 10*time.Second, "the flag file's refusal in the API's status", func() bool {
		_, body := send(t, "GET", "http://"+a.admin+"/api/v1/flags", "", "Authorization", "Bearer "+flagAdmin)
		_ = json.Unmarshal([]byte(body), &list)
		return len(list.Status.Files) == 1 && list.Status.Files[0].Error != ""
	})
	if e := list.Status.Files[0].Error; !strings.Contains(e, "banner") || !strings.Contains(e, "defaultVariant") {
		t.Errorf("refusal %q, want the JSON path of the bad default variant", e)
	}
	if out := evaluate(t, a); out["value"] != true {
		t.Errorf("after the refused file banner = %v, want the old true", out)
	}
	replaceFile(t, filepath.Join(dir, "flags.json"), strings.Replace(flagsDoc, `"defaultVariant": "on"`, `"defaultVariant": "off"`, 1))
	eventually(t, 10*time.Second, "the fixed flag file served", func() bool { return evaluate(t, a)["value"] == false })

	code, body := send(t, "POST", "http://"+a.admin+"/api/v1/flags/banner/disable", `{"reason": "incident"}`,
		"Authorization", "Bearer "+flagAdmin, "X-Aviary-User", "ann")
	if code != http.StatusOK {
		t.Fatalf("disable: %d %s", code, body)
	}
	if out := evaluate(t, a); out["reason"] != "DISABLED" {
		t.Errorf("after disable banner = %v, want reason DISABLED", out)
	}
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	a = startFlags(t, dir)
	if out := evaluate(t, a); out["reason"] != "DISABLED" {
		t.Errorf("after a restart banner = %v, want still DISABLED", out)
	}
	_, body = send(t, "GET", "http://"+a.admin+"/api/v1/events", "", "Authorization", "Bearer "+flagAdmin)
	if !strings.Contains(body, `"kind": "FlagDisabled"`) || !strings.Contains(body, `"by": "api:ann"`) || !strings.Contains(body, `"reason": "incident"`) {
		t.Errorf("events %s, want FlagDisabled by api:ann for the incident", body)
	}
}

// TestFlagSeesTheGatewaysCanaryUsers: a flag on "$aviary.track == canary" is on for exactly the users
// the gateway sends to the canary, by the same key.
func TestFlagSeesTheGatewaysCanaryUsers(t *testing.T) {
	dir := t.TempDir()
	replaceFile(t, filepath.Join(dir, "flags.json"), `{"flags": {"canary-users": {"state": "ENABLED",
		"variants": {"on": true, "off": false}, "defaultVariant": "off", "metadata": {"service": "shop"},
		"targeting": {"if": [{"==": [{"var": "$aviary.track"}, "canary"]}, "on", "off"]}}}}`)
	cfg := shop{v1: []string{upstream(t, "v1")}, v2: []string{upstream(t, "v2")}, w1: 60, w2: 40,
		service: "stickiness: {header: X-User-Id}"}.YAML() + "flags: {files: [flags.json]}\n"
	path := filepath.Join(dir, "aviary.yaml")
	replaceFile(t, path, cfg)
	a := run(t, path, server.Options{})
	on := 0
	for i := range 100 {
		user := fmt.Sprintf("user-%d", i)
		_, version := send(t, "GET", "http://"+a.gateway+"/", "", "X-User-Id", user)
		code, body := send(t, "POST", "http://"+a.gateway+"/ofrep/v1/evaluate/flags/canary-users", fmt.Sprintf(`{"context": {"targetingKey": %q}}`, user))
		var out struct{ Value bool }
		if err := json.Unmarshal([]byte(body), &out); err != nil || code != 200 {
			t.Fatalf("evaluate for %s: %d %s", user, code, body)
		}
		if out.Value != (version == "v2") {
			t.Fatalf("%s: the gateway sends it to %s, the flag says %v", user, version, out.Value)
		}
		if out.Value {
			on++
		}
	}
	if on == 0 || on == 100 {
		t.Errorf("the flag is on for %d of 100 users, want those on the canary (about 40)", on)
	}
}

// TestAppKeysTrackOnTheGateway: an application's evaluation key reports the experiments' outcome
// events at {prefix}/v1/track on the gateway listener (CORS, like evaluation), without any admin
// API token; the admin token is refused there, and no key is 401.
func TestAppKeysTrackOnTheGateway(t *testing.T) {
	a := startFlags(t, t.TempDir())
	url := "http://" + a.gateway + "/ofrep/v1/track"
	batch := `{"events": [{"id": "order-1", "unit": "user-1", "event": "purchase", "value": 40}]}`
	for _, c := range []struct {
		name   string
		header []string
		code   int
		body   string
	}{
		{"app key", []string{"X-API-Key", flagKey, "Origin", "https://shop.example"}, 200, `"added": 1`},
		{"app key, the same batch again", []string{"Authorization", "Bearer " + flagKey}, 200, `"added": 0`},
		{"admin token", []string{"Authorization", "Bearer " + flagAdmin}, 403, "admin API token"},
		{"no key", nil, 401, "needs a key"},
	} {
		code, body := send(t, "POST", url, batch, c.header...)
		if code != c.code || !strings.Contains(body, c.body) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, code, body, c.code, c.body)
		}
	}
	if code, body := send(t, "POST", url, `{"events": [{"unit": "u", "event": "aviary:errors:shop"}]}`, "X-API-Key", flagKey); code != 400 ||
		!strings.Contains(body, "events[0].id") || !strings.Contains(body, "the gateway's own records") {
		t.Errorf("a bad batch: %d %s", code, body)
	}
}
