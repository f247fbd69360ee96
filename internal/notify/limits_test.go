package notify

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/rollout"
)

// retries: 0 in the config makes one attempt; left out, the default (3) makes four.
func TestWebhookRetriesAsWritten(t *testing.T) {
	zero := newHookServer(t, func(int) int { return http.StatusInternalServerError })
	unset := newHookServer(t, func(int) int { return http.StatusInternalServerError })
	cfg, err := config.Parse(fmt.Appendf(nil, `
notifications:
  webhooks:
    - {url: %q, retries: 0}
    - {url: %q}
`, zero.URL, unset.URL))
	if err != nil {
		t.Fatal(err)
	}
	w := newTestWebhooks(t, nil, cfg.Notifications.Webhooks...)
	w.Send([]rollout.Event{event(1, "Aborted")})
	w.Close()
	if n := len(zero.requests()); n != 1 {
		t.Errorf("retries: 0 made %d attempts, want 1", n)
	}
	if n := len(unset.requests()); n != 1+config.DefaultWebhookRetries {
		t.Errorf("no retries made %d attempts, want %d", n, 1+config.DefaultWebhookRetries)
	}
}

// redirector answers every request with a 307 to target.
func redirector(t *testing.T, target string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(s.Close)
	return s
}

// A hook that answers with a redirect fails, and the request never goes where it points.
func TestWebhookFollowsNoRedirect(t *testing.T) {
	var followed atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { followed.Add(1) }))
	t.Cleanup(target.Close)
	hook := redirector(t, target.URL+"/latest/meta-data?token=x")
	w := newTestWebhooks(t, nil, config.Webhook{URL: hook.URL})
	status, err := w.workers[0].post(event(2, "Aborted"), []byte(`{}`))
	if status != http.StatusTemporaryRedirect || err == nil || !strings.Contains(err.Error(), "redirecting to "+target.URL+"/latest/meta-data; redirects are not followed") {
		t.Errorf("post = %d, %v; want the 307 reported with where it pointed (no query)", status, err)
	}
	w.Send([]rollout.Event{event(1, "Aborted")})
	w.Close()
	if n := followed.Load(); n != 0 {
		t.Errorf("the redirect's target got %d requests, want none", n)
	}
	if failed := deliveries(t, w, hook.URL, resultFailed); failed != 1 {
		t.Errorf("failed deliveries = %d, want 1", failed)
	}
}

// A gate that answers with a redirect fails its checks, says so, and is never followed.
func TestGateFollowsNoRedirect(t *testing.T) {
	target := newGateServer(t, func(int) (int, string) { return http.StatusOK, `{}` })
	gate := redirector(t, target.URL+"/approve")
	g := newTestGates(t)
	r := gateRun("gate-redirect", gate.URL, 2)
	v := await(t, g, r, rollout.Fail, "failed 2 checks in a row")
	if !strings.Contains(v.Message, "307") || !strings.Contains(v.Message, "redirects are not followed") {
		t.Errorf("verdict %q should report the redirect", v.Message)
	}
	if n := target.calls.Load(); n != 0 {
		t.Errorf("the redirect's target got %d requests, want none", n)
	}
}
