package server_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"aviary.dev/aviary/internal/logtest"
	"aviary.dev/aviary/internal/server"
)

// TestCredentialsGoUpstreamAndShowNowhere: credentials in an endpoint's URL go to the endpoint as
// basic auth (requests and health checks), and neither they nor a webhook's secret path show on
// /metrics, in /api/v1/services, in the gateway's error answers, in reload and apply errors, or in
// the log.
func TestCredentialsGoUpstreamAndShowNowhere(t *testing.T) {
	const user, pass = "deployer-user", "s3cret-pw"
	var authorized, refused atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			refused.Add(1)
			http.Error(w, "who are you?", http.StatusUnauthorized)
			return
		}
		authorized.Add(1)
		_, _ = io.WriteString(w, "v1")
	}))
	t.Cleanup(up.Close)
	hook := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(hook.Close)
	withCreds := func(raw, u, p string) string { return strings.Replace(raw, "://", "://"+u+":"+p+"@", 1) }
	v1 := withCreds(up.URL, user, pass)
	v2 := withCreds(deadURL(t), "dead-user", "dead-pw")
	hookURL := hook.URL + "/services/T000/B000/hook-secret-path"
	secrets := []string{pass, user, "dead-pw", "dead-user", "hook-secret-path", base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}

	cfg := shop{v1: []string{v1}, v2: []string{v2}, w1: 50, w2: 50,
		service: "healthCheck: {path: /healthz, interval: 50ms, timeout: 1s}"}.YAML() +
		fmt.Sprintf("notifications:\n  webhooks: [{url: %q}]\n", hookURL)
	var logs logtest.Buffer
	a := run(t, configFile(t, cfg), server.Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})

	eventually(t, 5*time.Second, "the endpoint with credentials to pass its health checks", func() bool {
		code, body := a.do("GET", "http://"+a.admin+"/api/v1/services")
		return code == http.StatusOK && strings.Contains(body, `"readyEndpoints": 1`)
	})
	var shown []string // every answer a user or a scraper can read
	served := 0
	for range 40 {
		code, body := a.get("/")
		shown = append(shown, body)
		if code == http.StatusOK && body == "v1" {
			served++
		}
	}
	if served == 0 || authorized.Load() == 0 {
		t.Fatalf("no request reached v1 with its credentials (%d authorized, %d refused)", authorized.Load(), refused.Load())
	}
	if refused.Load() > 0 {
		t.Errorf("v1 refused %d requests or health checks for missing credentials", refused.Load())
	}
	for _, path := range []string{"/metrics", "/api/v1/services", "/api/v1/services/shop"} {
		code, body := a.do("GET", "http://"+a.admin+path)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		shown = append(shown, body)
	}
	if !strings.Contains(shown[len(shown)-3], `aviary_endpoint_up{endpoint="`+up.URL+`"`) {
		t.Errorf("/metrics does not show the endpoint as %s", up.URL)
	}

	// A spec with credentials in a URL that is not valid: the errors say what is wrong, without them.
	bad := strings.Replace(cfg, v1, v1+"/?debug=1", 1)
	replaceFile(t, a.configPath, bad)
	code, res := a.reload()
	if code != http.StatusUnprocessableEntity || !strings.Contains(strings.Join(res.Errors, "\n"), "must not have a query") {
		t.Fatalf("reload of a bad config: %d %v; want 422 with the query error", code, res.Errors)
	}
	_, cfgStatus := a.do("GET", "http://"+a.admin+"/api/v1/config")
	_, applied := a.send("POST", "/api/v1/apply", "application/yaml", bad)
	_, started := a.send("POST", "/api/v1/services/shop/rollout", "application/json",
		fmt.Sprintf(`{"version": "v3", "endpoints": [%q]}`, withCreds("ftp://h", user, pass)))
	shown = append(shown, strings.Join(res.Errors, "\n"), cfgStatus, applied, started)

	for _, s := range secrets {
		for _, text := range shown {
			if strings.Contains(text, s) {
				t.Errorf("%q shows in an answer:\n%s", s, text)
			}
		}
		if strings.Contains(logs.String(), s) {
			t.Errorf("%q shows in the log:\n%s", s, logs.String())
		}
	}
}

// send sends body with a content type to the admin API and returns the status and body.
func (a *aviary) send(method, path, contentType, body string) (int, string) {
	a.t.Helper()
	req, err := http.NewRequest(method, "http://"+a.admin+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := a.client.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
