package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/rollout"
)

func TestStatusShowsStepsProgressChecksAndLastEvents(t *testing.T) {
	api := newFakeAPI(t)
	api.events = shopEvents(7)

	out, err := run(t, "--server", api.url, "rollout", "status", "shop")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Service:  shop",
		"Phase:    Paused — pausing 5m at 25%",
		"Stable:   v1",
		"Canary:   v2 [#####...............] 25%",
		"Paused:   PauseStep since",
		"; 1m30s left",
		"  ✓ 1. set weight 5%",
		"  ✓ 2. set weight 25%",
		"  ▶ 3. pause 5m  (1m30s left)",
		"    4. analysis success-rate",
		"background analysis latency (step 1): Pass — p99 212ms under 300ms over 3 samples",
		"Event3", "Event7", "reason 7 (by controller)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Event2") {
		t.Errorf("status shows more than the last %d events:\n%s", eventsShown, out)
	}
}

func TestStatusOfAnAbortedRolloutMarksTheStep(t *testing.T) {
	api := newFakeAPI(t)
	st := pausedShop()
	st.Phase, st.CanaryWeight, st.Message = rollout.Degraded, 0, "analysis success-rate failed: 91% < 99%"
	st.PauseReasons, st.StepRemaining = nil, nil
	st.Steps[2].State = "aborted"
	api.statuses = []rollout.Status{st}

	out, err := run(t, "--server", api.url, "rollout", "status", "shop")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"  ✗ 3. pause 5m", "Canary:   v2 (aborted; no traffic)", "Degraded — analysis success-rate failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

func TestStatusJSONIsTheStatusContract(t *testing.T) {
	api := newFakeAPI(t)
	out, err := run(t, "--server", api.url, "rollout", "status", "shop", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var st rollout.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("-o json is not a status: %v\n%s", err, out)
	}
	if st.Service != "shop" || st.CanaryWeight != 25 || len(st.Steps) != 5 {
		t.Errorf("-o json = %+v, want the API's status of shop", st)
	}
}

func TestActionsSendTheirRequestAndPrintOneLine(t *testing.T) {
	api := newFakeAPI(t)
	out, err := run(t, "--server", api.url, "rollout", "promote", "shop", "--full", "--reason", "hotfix")
	if err != nil {
		t.Fatal(err)
	}
	if want := "shop: Progressing, canary v2 at 5%, step 1/7\n"; out != want {
		t.Errorf("promote printed %q, want %q", out, want)
	}
	var body actionRequest
	if err := json.Unmarshal(api.sent["POST /api/v1/services/shop/rollout/promote"], &body); err != nil || !body.Full || body.Reason != "hotfix" {
		t.Errorf("promote sent %s (%v), want full and the reason", api.sent["POST /api/v1/services/shop/rollout/promote"], err)
	}

	for _, kind := range rollout.Commands {
		action := string(kind)
		if _, err := run(t, "--server", api.url, "rollout", action, "shop", "--reason", "test"); err != nil {
			t.Errorf("rollout %s: %v", action, err)
		}
		if _, ok := api.sent["POST /api/v1/services/shop/rollout/"+action]; !ok {
			t.Errorf("rollout %s sent nothing to .../rollout/%s", action, action)
		}
	}
}

func TestStartSendsTheVersionAndItsEndpoints(t *testing.T) {
	api := newFakeAPI(t)
	out, err := run(t, "--server", api.url, "rollout", "start", "shop", "--version", "v2",
		"--endpoint", "http://10.0.0.7:8080", "--endpoint", "http://10.0.0.8:8080", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var body startRequest
	_ = json.Unmarshal(api.sent["POST /api/v1/services/shop/rollout"], &body)
	if body.Version != "v2" || len(body.Endpoints) != 2 || api.types["POST /api/v1/services/shop/rollout"] != "application/json" {
		t.Errorf("start sent %+v, want v2 with two endpoints as JSON", body)
	}
	if !strings.Contains(out, `"canaryWeight": 5`) {
		t.Errorf("start -o json printed %s, want the status", out)
	}
	if _, err := run(t, "--server", api.url, "rollout", "start", "shop"); err == nil || !strings.Contains(err.Error(), "--version") {
		t.Errorf("start without --version: %v, want an error naming --version", err)
	}
}

func TestErrorsSayWhatToDo(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	api := newFakeAPI(t)
	api.conflict["resume"] = "shop is not paused; pause it first, or promote to go on"
	garbled := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	t.Cleanup(garbled.Close)

	for _, tc := range []struct {
		name  string
		args  []string
		token string
		want  []string
	}{
		{"nothing listens", []string{"--server", dead.URL, "rollout", "status", "shop"}, "",
			[]string{"cannot reach aviary at " + dead.URL, `is "aviary serve" running? set --server or AVIARY_SERVER`}},
		{"no token", []string{"--server", api.url, "get", "services"}, "secret",
			[]string{"list services: not authorized (401: this API needs a bearer token); set --token or AVIARY_TOKEN"}},
		{"wrong token", []string{"--server", api.url, "--token", "guess", "rollout", "abort", "shop"}, "secret",
			[]string{"abort shop: forbidden", "set --token or AVIARY_TOKEN"}},
		{"conflict", []string{"--server", api.url, "rollout", "resume", "shop"}, "",
			[]string{"resume shop: shop is not paused; pause it first, or promote to go on"}},
		{"no such service", []string{"--server", api.url, "rollout", "status", "cart"}, "",
			[]string{"read the rollout of cart: no service named cart; GET /api/v1/services lists them"}},
		{"not the API", []string{"--server", garbled.URL, "rollout", "history", "shop"}, "",
			[]string{"read the history of shop: HTTP 502: <html>bad gateway</html>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AVIARY_TOKEN", "")
			api.mu.Lock()
			api.token = tc.token
			api.mu.Unlock()
			_, err := run(t, tc.args...)
			wantError(t, tc.name, err, tc.want...)
		})
	}
}

func TestTokenAndServerComeFromTheEnvironment(t *testing.T) {
	api := newFakeAPI(t)
	api.token = "secret"
	api.services = `{"services": []}`
	t.Setenv("AVIARY_SERVER", api.url)
	t.Setenv("AVIARY_TOKEN", "secret")
	if _, err := run(t, "get", "services"); err != nil {
		t.Errorf("with AVIARY_SERVER and AVIARY_TOKEN set: %v", err)
	}
	if _, err := run(t, "--token", "guess", "get", "services"); err == nil {
		t.Error("--token does not win over AVIARY_TOKEN")
	}
}

func TestGetServicesIsATable(t *testing.T) {
	api := newFakeAPI(t)
	api.services = `{"services": [
	  {"name": "shop", "stableVersion": "v1", "versions": [
	    {"name": "v1", "weight": 75, "healthyEndpoints": 3, "endpoints": [{"url": "a"}, {"url": "b"}, {"url": "c"}]},
	    {"name": "v2", "weight": 25, "healthyEndpoints": 1, "endpoints": [{"url": "d"}, {"url": "e"}]}],
	   "rollout": {"service": "shop", "managed": true, "phase": "Paused", "stableVersion": "v1", "canaryVersion": "v2", "canaryWeight": 25}},
	  {"name": "cart", "stableVersion": "v7", "versions": [{"name": "v7", "weight": 100, "healthyEndpoints": 2, "endpoints": [{}, {}]}]}]}`

	// Through newRoot, as the binary runs.
	out, _, err := execute(t, newRoot(), "", "--server", api.url, "get", "services")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := [][]string{
		{"NAME", "PHASE", "STABLE", "CANARY", "WEIGHT", "VERSIONS"},
		{"shop", "Paused", "v1", "v2", "25%", "v1", "3/3,", "v2", "1/2"},
		{"cart", "unmanaged", "v7", "-", "-", "v7", "2/2"},
	}
	if len(lines) != len(want) {
		t.Fatalf("get services printed %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, w := range want {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("line %d = %q, want %q", i, got, w)
		}
	}

	out, err = run(t, "--server", api.url, "get", "services", "-o", "json")
	if err != nil || !json.Valid([]byte(out)) || !strings.Contains(out, `"healthyEndpoints": 3`) {
		t.Errorf("get services -o json = %v\n%s, want the API's JSON", err, out)
	}
}

func TestHistoryIsATable(t *testing.T) {
	api := newFakeAPI(t)
	api.history = `{"history": [
	  {"revision": 1, "time": "2025-03-01T12:00:00Z", "kind": "Completed", "stableVersion": "v1", "reason": "first release", "by": "config"},
	  {"revision": 2, "time": "2025-03-01T13:00:00Z", "kind": "Aborted", "stableVersion": "v1", "canaryVersion": "v2", "reason": "error rate", "by": "alice"}]}`
	out, err := run(t, "--server", api.url, "rollout", "history", "shop")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"REVISION", "Completed", "first release", "Aborted", "alice", "error rate"} {
		if !strings.Contains(out, want) {
			t.Errorf("history lacks %q:\n%s", want, out)
		}
	}
}

func TestApplyPrintsWhatChangedOrEveryError(t *testing.T) {
	api := newFakeAPI(t)
	out, _, err := aviary(t, time.Minute, "services: [{name: shop}]\n", "--server", api.url, "apply", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	if out != "shop: applied\ncart: unchanged\n" {
		t.Errorf("apply printed %q", out)
	}
	if got := api.types["POST /api/v1/apply"]; got != "application/yaml" || string(api.sent["POST /api/v1/apply"]) != "services: [{name: shop}]\n" {
		t.Errorf("apply sent %q as %q, want stdin as application/yaml", api.sent["POST /api/v1/apply"], got)
	}

	_, stderr, err := aviary(t, time.Minute, "weight: 150\n", "--server", api.url, "apply", "-f", "-")
	var code exitCode
	if !errors.As(err, &code) || code != 1 {
		t.Errorf("apply of an invalid file: %v, want exit code 1", err)
	}
	for _, want := range []string{"2 error(s)", "services[0].traffic[1].weight: must be 0..100", "services[0].release: no version named v9"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("apply's errors lack %q:\n%s", want, stderr)
		}
	}
}

func TestRecentEventsFindsTheNewestWhateverTheServer(t *testing.T) {
	for _, lastOK := range []bool{true, false} {
		api := newFakeAPI(t)
		api.lastOK = lastOK
		api.events = shopEvents(450) // more than two pages
		c := &apiClient{base: api.url, http: http.DefaultClient}
		evs, err := c.recentEvents(context.Background(), "shop", nil, 5)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 5 || evs[0].Seq != 446 || evs[4].Seq != 450 {
			t.Errorf("server knows last=N: %v; recent events = %v, want seq 446..450", lastOK, evs)
		}
		api.mu.Lock()
		api.events = append(api.events, shopEvents(451)[450])
		api.mu.Unlock()
		if evs, _ = c.recentEvents(context.Background(), "shop", evs, 5); len(evs) != 5 || evs[4].Seq != 451 || evs[0].Seq != 447 {
			t.Errorf("server knows last=N: %v; recent events after a new one = %v, want seq 447..451", lastOK, evs)
		}
	}
}

func TestReadSSE(t *testing.T) {
	stream := ": ping\n\nid: 4\nevent: rollout\ndata: {\"a\":\ndata: 1}\n\n: ping\n\nid: 5\nevent: other\ndata: x\n\nid: 6\ndata: y\n"
	var got []string
	err := readSSE(strings.NewReader(stream), func(id, event, data string) error {
		got = append(got, id+"|"+event+"|"+data)
		return nil
	})
	want := []string{"4|rollout|{\"a\":\n1}", "5|other|x"} // 6 has no blank line after it: incomplete
	if err != nil || strings.Join(got, ";") != strings.Join(want, ";") {
		t.Errorf("readSSE = %q, %v; want %q", got, err, want)
	}
}

func TestTokenAdviceIsGivenOnce(t *testing.T) {
	e := &apiError{Op: "list services", Status: http.StatusUnauthorized, Message: "needs a token: pass --token or set AVIARY_TOKEN"}
	if got := e.Error(); strings.Count(got, "AVIARY_TOKEN") != 1 {
		t.Errorf("error = %q, want the advice once", got)
	}
}
