package server_test

// Stories: Aviary end to end, as the people who run it live it. Each story starts Aviary on its own
// config file with real upstreams and real client load, acts through the admin API, and checks what
// the API reports and, above all, which version answers the clients. The words of a story are in
// story_helpers_test.go.

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/rollout"
)

// A canary walks through its steps: a share of traffic, a timed pause, a segment that reaches the
// new version whatever the share, and a pause that waits for a person, who promotes.
func TestStoryCanary(t *testing.T) {
	t.Parallel()
	s := story(t).withService(`
		name: shop
		release: v1
		versions:
		  - {name: v1, endpoints: {{v1}}}
		  - {name: v2, endpoints: {{v2}}}
		strategy:
		  canary:
		    steps:
		      - setWeight: 20
		      - pause: {duration: 600ms}
		      - setHeaderRoute: {match: {header: {name: X-Canary, value: "yes"}}}
		      - pause: {}
	`).start()
	s.load()
	s.expectAnswered("v1")

	st := s.startRollout("shop", "v2")
	s.expectStatus(st, rollout.Paused, step(1), canaryWeight(20))
	if left := st.StepRemaining; left == nil || *left <= 0 || *left > 0.6 {
		t.Errorf("stepRemainingSeconds %s, want some of the pause's 0.6", pretty(left))
	}
	s.expectWeights("shop", map[string]int{"v1": 80, "v2": 20})

	// The timed pause ends by itself; the header route takes effect and the rollout waits for a person.
	s.waitFor("shop", rollout.Paused, step(3), canaryWeight(20))
	s.expectAnswered("v2", header("X-Canary", "yes"))
	s.expectWeights("shop", map[string]int{"v1": 80, "v2": 20})

	s.promote("shop")
	s.waitFor("shop", rollout.Healthy, stable("v2"), canaryWeight(0))
	s.expectWeights("shop", map[string]int{"v1": 0, "v2": 100})
	s.expectAnswered("v2")

	got := s.answered()
	if got["v1"] == 0 || got["v2"] == 0 || got["v1"]+got["v2"] != total(got) {
		t.Errorf("during the rollout the load was answered by %v, want v1 and v2 and no failure", got)
	}
}

// A canary whose endpoints fail their health checks is aborted by itself: it gets no traffic, the
// status says why, and once it is fixed a retry takes it through its steps again.
func TestStoryBrokenCanaryIsAbortedAndRetried(t *testing.T) {
	t.Parallel()
	s := story(t).withService(`
		name: shop
		release: v1
		versions:
		  - {name: v1, endpoints: {{v1}}}
		  - {name: v2, endpoints: {{v2}}}
		healthCheck: {interval: 50ms, timeout: 5s, healthyThreshold: 1, unhealthyThreshold: 1}
		strategy:
		  abortOnUnhealthy: 300ms
		  canary:
		    steps:
		      - setWeight: 20
		      - pause: {}
	`).start()
	s.fail("v2")
	s.startRollout("shop", "v2")

	st := s.waitFor("shop", rollout.Degraded, canaryWeight(0))
	if m := missing([]string{st.Message}, "v2 has had no available endpoint", "traffic is back on v1", "aviary rollout retry shop"); len(m) > 0 {
		t.Errorf("the status message %q does not say %q", st.Message, m)
	}
	s.expectWeights("shop", map[string]int{"v1": 100, "v2": 0})
	s.expectAnswered("v1")

	s.heal("v2")
	s.waitHealthy("shop", "v2")
	st = s.retry("shop")
	s.expectStatus(st, rollout.Paused, step(1), canaryWeight(20))
	time.Sleep(500 * time.Millisecond) // longer than abortOnUnhealthy: a healthy canary stays
	s.expectStatus(s.status("shop"), rollout.Paused, step(1), canaryWeight(20))

	s.promote("shop")
	s.waitFor("shop", rollout.Healthy, stable("v2"))
	s.expectAnswered("v2")
}

// A person aborts a paused canary: the answer to the abort already says Degraded, and no request
// sent after that answer reaches the canary.
func TestStoryAbortByAPerson(t *testing.T) {
	t.Parallel()
	s := story(t).withService(`
		name: shop
		release: v1
		versions:
		  - {name: v1, endpoints: {{v1}}}
		  - {name: v2, endpoints: {{v2}}}
		strategy:
		  canary:
		    steps:
		      - setWeight: 50
		      - pause: {}
	`).start()
	s.load()
	s.startRollout("shop", "v2")
	s.waitFor("shop", rollout.Paused, step(1), canaryWeight(50))
	eventually(t, within, "the load to reach v2", func() bool { return s.answered()["v2"] > 0 })

	st := s.abort("shop", "checkout errors")
	abortedAt := time.Now()
	s.expectStatus(st, rollout.Degraded, canaryWeight(0))
	if !strings.Contains(st.Message, "aborted by api: checkout errors") {
		t.Errorf("the status message %q does not say who aborted and why", st.Message)
	}
	s.expectWeights("shop", map[string]int{"v1": 100, "v2": 0})
	s.expectAnswered("v1")
	eventually(t, within, "20 requests answered after the abort", func() bool { return total(s.answeredSince(abortedAt)) >= 20 })
	if got := s.answeredSince(abortedAt); got["v1"] == 0 || got["v1"] != total(got) {
		t.Errorf("requests sent after the abort were answered by %v, want v1 alone", got)
	}
}

// Blue-green: the new version is previewed by those who ask for it, a person promotes, all traffic
// switches at once, and an abort while the post-promotion analysis runs switches it all back at once.
func TestStoryBlueGreen(t *testing.T) {
	t.Parallel()
	s := story(t).withService(`
		name: shop
		release: v1
		versions:
		  - {name: v1, endpoints: {{v1}}}
		  - {name: v2, endpoints: {{v2}}}
		strategy:
		  blueGreen:
		    previewRoute: {header: {name: X-Preview, value: "yes"}}
		    postPromotionAnalysis: {templates: [error-rate], duration: 1m}
	`).start()
	s.load()

	s.startRollout("shop", "v2")
	s.waitFor("shop", rollout.Paused, step(1), canaryWeight(0))
	s.expectAnswered("v2", header("X-Preview", "yes"))
	s.expectAnswered("v1")

	st := s.promote("shop")
	s.expectStatus(st, rollout.Progressing, step(3), canaryWeight(100))
	s.expectWeights("shop", map[string]int{"v1": 0, "v2": 100})
	s.expectAnswered("v2")

	st = s.abort("shop", "post-promotion checks look bad")
	s.expectStatus(st, rollout.Degraded, canaryWeight(0))
	s.expectWeights("shop", map[string]int{"v1": 100, "v2": 0})
	s.expectAnswered("v1")
	s.expectAnswered("v1", header("X-Preview", "yes"))
}

// Blue-green with auto-promotion needs nobody: it switches after its preview and completes, and an
// undo while the old version is still warm switches back at once.
func TestStoryBlueGreenPromotesItself(t *testing.T) {
	t.Parallel()
	s := story(t).withService(`
		name: shop
		release: v1
		versions:
		  - {name: v1, endpoints: {{v1}}}
		  - {name: v2, endpoints: {{v2}}}
		strategy:
		  blueGreen:
		    autoPromotionSeconds: 1
		    scaleDownDelay: 1m
	`).start()
	s.startRollout("shop", "v2")
	s.expectAnswered("v1")

	s.waitFor("shop", rollout.Healthy, stable("v2"))
	s.expectWeights("shop", map[string]int{"v1": 0, "v2": 100})
	s.expectAnswered("v2")

	st := s.undo("shop")
	s.expectStatus(st, rollout.Healthy, stable("v1"))
	s.expectAnswered("v1")
}

// Recreate switches everything once the new version is ready, and waits for a version that starts
// slowly: while it takes no traffic, failing health checks are not a reason to abort
// (strategy.abortOnUnhealthy counts only "while it should be taking traffic", as config.Strategy
// documents it).
func TestStoryRecreateWaitsForASlowVersion(t *testing.T) {
	t.Parallel()
	s := story(t).withService(`
		name: shop
		release: v1
		versions:
		  - {name: v1, endpoints: {{v1}}}
		  - {name: v2, endpoints: {{v2*2}}}
		healthCheck: {interval: 50ms, timeout: 5s, healthyThreshold: 1, unhealthyThreshold: 1}
		strategy:
		  abortOnUnhealthy: 300ms
		  recreate: {}
	`).start()
	s.fail("v2") // still starting up
	s.startRollout("shop", "v2")
	time.Sleep(600 * time.Millisecond)
	s.expectStatus(s.status("shop"), rollout.Progressing, step(0), canaryWeight(0))
	s.expectAnswered("v1")

	s.heal("v2")
	s.waitFor("shop", rollout.Healthy, stable("v2"))
	s.expectWeights("shop", map[string]int{"v1": 0, "v2": 100})
	s.expectAnswered("v2")
}

// Rolling replaces endpoints one at a time as the new ones pass their health checks: the new
// version's share rises with its ready endpoints, the old version's endpoints are withdrawn, and no
// request fails on the way.
func TestStoryRolling(t *testing.T) {
	t.Parallel()
	s := story(t).withService(`
		name: shop
		release: v1
		versions:
		  - {name: v1, endpoints: {{v1*3}}}
		  - {name: v2, endpoints: {{v2*3}}}
		healthCheck: {interval: 50ms, timeout: 5s, healthyThreshold: 1, unhealthyThreshold: 1}
		strategy:
		  rolling: {maxUnavailable: 1}
	`).start()
	s.load()
	s.startRollout("shop", "v2")
	s.waitFor("shop", rollout.Healthy, stable("v2"))

	var weights []int
	var reasons []string
	for _, e := range s.events("shop") {
		if e.Kind == "Rolled" && strings.Contains(e.Reason, "withdrawn") {
			weights = append(weights, e.Weight)
			reasons = append(reasons, e.Reason)
		}
	}
	if !slices.Equal(weights, []int{33, 67, 100}) {
		t.Errorf("the share of v2 rose through %v, want 33, 67, 100", weights)
	}
	if m := missing(reasons, "1 of 3 endpoints of v1 withdrawn", "2 of 3 endpoints of v1 withdrawn", "3 of 3 endpoints of v1 withdrawn"); len(m) > 0 {
		t.Errorf("the rolling events do not say %q:\n%s", m, strings.Join(reasons, "\n"))
	}
	s.expectWeights("shop", map[string]int{"v1": 0, "v2": 100})
	for _, v := range s.served("shop").Versions {
		if v.Name == "v2" && len(v.Endpoints) != 3 {
			t.Errorf("v2 is served by %d endpoints, want all 3", len(v.Endpoints))
		}
	}
	s.expectAnswered("v2")
	if got := s.answered(); got["v1"]+got["v2"] != total(got) || got["v2"] == 0 {
		t.Errorf("during the rolling update the load was answered by %v, want v1 and v2 and no failure", got)
	}
}

// Shadow: the new version gets copies of every request while clients get the stable version's
// answers only; after the shadow's duration the traffic switches.
func TestStoryShadow(t *testing.T) {
	t.Parallel()
	s := story(t).withService(`
		name: shop
		release: v1
		versions:
		  - {name: v1, endpoints: {{v1}}}
		  - {name: v2, endpoints: {{v2}}}
		strategy:
		  shadow: {percent: 100, duration: 800ms}
	`).start()
	st := s.startRollout("shop", "v2")
	s.expectStatus(st, rollout.Paused, step(1), canaryWeight(0))
	if st.MirrorPercent != 100 {
		t.Errorf("mirrorPercent %g, want 100", st.MirrorPercent)
	}
	s.expectAnswered("v1")
	v2 := s.version("v2")
	eventually(t, within, "v2 to receive mirrored copies", func() bool { return v2.mirrored.Load() >= 20 })
	if n := v2.served.Load(); n != 0 {
		t.Errorf("v2 answered %d requests itself during the shadow, want none", n)
	}

	s.waitFor("shop", rollout.Healthy, stable("v2"))
	mirrored := v2.mirrored.Load()
	s.expectAnswered("v2")
	if n := v2.mirrored.Load(); n != mirrored {
		t.Errorf("v2 received %d more mirrored copies after the switch, want none", n-mirrored)
	}
}

// Undo while the old stable is still warm is instant, and stays done; the history lists the start,
// the completion and the undo as revisions.
func TestStoryUndoAndHistory(t *testing.T) {
	t.Parallel()
	s := story(t).withService(`
		name: shop
		release: v1
		versions:
		  - {name: v1, endpoints: {{v1}}}
		  - {name: v2, endpoints: {{v2}}}
		strategy:
		  scaleDownDelay: 1m
		  canary: {steps: [{setWeight: 50}, {pause: {duration: 200ms}}]}
	`).start()
	s.startRollout("shop", "v2")
	st := s.waitFor("shop", rollout.Healthy, stable("v2"))
	if st.PreviousVersion != "v1" || st.WarmUntil == nil {
		t.Errorf("after completion previousVersion %q, warmUntil %v; want v1, kept warm", st.PreviousVersion, st.WarmUntil)
	}
	s.expectAnswered("v2")

	st = s.undo("shop")
	s.expectStatus(st, rollout.Healthy, stable("v1"))
	s.expectAnswered("v1")
	time.Sleep(200 * time.Millisecond) // ten ticks: the release (still v2) does not roll out again
	s.expectStatus(s.status("shop"), rollout.Healthy, stable("v1"))

	var got []string
	for i, h := range s.history("shop") {
		if h.Revision != int64(i+1) {
			t.Errorf("history entry %d has revision %d, want %d", i, h.Revision, i+1)
		}
		got = append(got, string(h.Kind)+" "+h.Stable)
	}
	if want := []string{"RolloutStarted v1", "Completed v2", "Undone v1"}; !slices.Equal(got, want) {
		t.Errorf("history: %q, want %q", got, want)
	}
}

// With tokens, the API reads with either token and changes only with the admin token; without a
// token it says how to give one. Probes stay open.
func TestStoryAPITokens(t *testing.T) {
	t.Parallel()
	s := story(t).withAdmin(`token: admin-secret, readToken: read-secret`).withService(`
		name: shop
		release: v1
		versions:
		  - {name: v1, endpoints: {{v1}}}
		  - {name: v2, endpoints: {{v2}}}
		strategy: {canary: {steps: [{setWeight: 10}, {pause: {}}]}}
	`).start()
	const rolloutPath, start = "/api/v1/services/shop/rollout", `{"version": "v2"}`
	cases := []struct {
		who, token, method, body string
		want                     int
		says                     string
	}{
		{"no token", "", "GET", "", http.StatusUnauthorized, "needs a bearer token: pass --token or set AVIARY_TOKEN"},
		{"a wrong token", "guess", "GET", "", http.StatusUnauthorized, "the token is not valid here"},
		{"the read token", "read-secret", "GET", "", http.StatusOK, `"phase": "Healthy"`},
		{"the read token", "read-secret", "POST", start, http.StatusForbidden, "changes need the admin token"},
		{"the admin token", "admin-secret", "POST", start, http.StatusOK, `"canaryVersion": "v2"`},
	}
	for _, c := range cases {
		code, body := s.sendAs(c.token, c.method, rolloutPath, c.body)
		if code != c.want || !strings.Contains(body, c.says) {
			t.Errorf("%s with %s: %d %s\nwant %d and a body that says %q", c.method, c.who, code, body, c.want, c.says)
		}
	}
	if code, _ := s.sendAs("", "GET", "/healthz", ""); code != http.StatusOK {
		t.Errorf("GET /healthz without a token: %d, want 200", code)
	}

	// With the admin token, the rollout that it started goes on as in any other story.
	s.withToken("admin-secret")
	s.waitFor("shop", rollout.Paused, step(1), canaryWeight(10))
	s.promote("shop")
	s.waitFor("shop", rollout.Healthy, stable("v2"))
	s.expectAnswered("v2")
}

// An admin API that anyone on the network could change is refused at start: Run names admin.token.
// Not parallel: it clears the token variables of the environment.
func TestStoryExposedAdminNeedsAToken(t *testing.T) {
	t.Setenv("AVIARY_ADMIN_TOKEN", "")
	t.Setenv("AVIARY_READ_TOKEN", "")
	path := configFile(t, `
gateway: {listen: "127.0.0.1:0"}
admin: {listen: "0.0.0.0:0"}
`)
	err, started := runToEnd(t, path)
	if err == nil || started {
		t.Fatalf("Run on a non-loopback admin.listen without a token: started %v, error %v; want a refusal", started, err)
	}
	if m := missing([]string{err.Error()}, "0.0.0.0:0", "set admin.token"); len(m) > 0 {
		t.Errorf("Run's error %q does not say %q", err, m)
	}
}

// Specs applied through the API and the config file: the last change wins. An applied spec starts a
// rollout and survives reloads of an unchanged file; an edit of the file's service makes the file
// win again; a reload that would pull the stable version from under its traffic is refused.
func TestStoryConfigFileAndAPI(t *testing.T) {
	t.Parallel()
	s := story(t).withService(`
		name: shop
		release: v1
		versions:
		  - {name: v1, endpoints: {{v1}}}
	`).start()
	s.expectAnswered("v1")

	applied := s.apply(`
		name: shop
		release: v2
		versions:
		  - {name: v1, endpoints: {{v1}}}
		  - {name: v2, endpoints: {{v2}}}
		strategy: {canary: {steps: [{setWeight: 30}, {pause: {}}]}}
	`)
	if !slices.Equal(applied, []string{"shop"}) {
		t.Errorf("apply answered applied %q, want [shop]", applied)
	}
	s.waitFor("shop", rollout.Paused, step(1), canaryWeight(30))

	if code, res := s.reload(); code != http.StatusOK || !res.Accepted {
		t.Fatalf("reload of the unchanged file: %d %+v, want 200 and accepted", code, res)
	}
	s.expectStatus(s.status("shop"), rollout.Paused, step(1), canaryWeight(30))

	// Someone edits the file's service (adds v2, keeps release v1): the file wins, and its release
	// sends everyone back to v1.
	s.editConfig(`
		name: shop
		release: v1
		versions:
		  - {name: v1, endpoints: {{v1}}}
		  - {name: v2, endpoints: {{v2}}}
	`)
	if code, res := s.reload(); code != http.StatusOK || !res.Accepted {
		t.Fatalf("reload of the edited file: %d %+v, want 200 and accepted", code, res)
	}
	st := s.waitFor("shop", rollout.Healthy, stable("v1"))
	if st.Release != "v1" {
		t.Errorf("release %q after the file was edited, want the file's v1", st.Release)
	}
	s.expectAnswered("v1")

	// A file without the stable version is refused, naming the field; the config in force stays.
	s.editConfig(`
		name: shop
		release: v2
		versions:
		  - {name: v2, endpoints: {{v2}}}
	`)
	code, res := s.reload()
	if code != http.StatusUnprocessableEntity || res.Accepted {
		t.Fatalf("reload without the stable version: %d %+v, want 422 and refused", code, res)
	}
	if m := missing(res.Errors, "services[0].versions", "v1 is the stable version of shop"); len(m) > 0 {
		t.Errorf("the refusal %q does not say %q", res.Errors, m)
	}
	s.expectStatus(s.status("shop"), rollout.Healthy, stable("v1"))
	s.expectAnswered("v1")
}

// The live event stream sends each transition as a server-sent event; a client that reconnects with
// Last-Event-ID gets what it missed.
func TestStoryLiveEventStream(t *testing.T) {
	t.Parallel()
	s := story(t).withService(`
		name: shop
		release: v1
		versions:
		  - {name: v1, endpoints: {{v1}}}
		  - {name: v2, endpoints: {{v2}}}
		strategy: {canary: {steps: [{setWeight: 20}, {pause: {}}]}}
	`).start()
	es := s.stream("shop", "")
	s.startRollout("shop", "v2")

	frames := es.until("StepStarted")
	if got := kinds(frames); got[0] != "RolloutStarted" {
		t.Errorf("the stream sent %q first, want RolloutStarted", got)
	}
	for _, f := range frames {
		if f.event != "rollout" || f.id == "" || f.id != strconv.FormatUint(f.data.Seq, 10) || f.data.Service != "shop" {
			t.Errorf("a frame without a matching id, event and data:\n%s", f.raw)
		}
	}
	frames = es.until("StepStarted") // the pause
	last := frames[len(frames)-1].id
	es.close()

	s.promote("shop") // while nobody listens
	s.waitFor("shop", rollout.Healthy, stable("v2"))

	replayed := s.stream("shop", last).until("Completed")
	if got := kinds(replayed); !slices.Equal(got, []string{"Promoted", "Completed"}) {
		t.Errorf("after Last-Event-ID %s the stream replayed %q, want Promoted, Completed", last, got)
	}
}

// A restart in the middle of a paused rollout picks it up where it was: the same phase, step and
// weights from the first request on, and it goes on from there.
func TestStoryRestartKeepsTheRollout(t *testing.T) {
	t.Parallel()
	s := story(t).withService(`
		name: shop
		release: v1
		versions:
		  - {name: v1, endpoints: {{v1}}}
		  - {name: v2, endpoints: {{v2}}}
		strategy:
		  canary:
		    steps:
		      - setWeight: 30
		      - setHeaderRoute: {match: {header: {name: X-Canary, value: "yes"}}}
		      - pause: {}
	`).start()
	s.startRollout("shop", "v2")
	before := s.waitFor("shop", rollout.Paused, step(2), canaryWeight(30))

	s.restart()
	after := s.status("shop")
	s.expectStatus(after, rollout.Paused, step(2), canaryWeight(30), stable("v1"))
	if after.Generation != before.Generation || after.CanaryVersion != "v2" {
		t.Errorf("after the restart: generation %d, canary %q; want %d and v2", after.Generation, after.CanaryVersion, before.Generation)
	}
	s.expectWeights("shop", map[string]int{"v1": 70, "v2": 30})
	s.expectAnswered("v2", header("X-Canary", "yes"))

	s.promote("shop")
	s.waitFor("shop", rollout.Healthy, stable("v2"))
	s.expectAnswered("v2")
}

// total counts every answer, whoever gave it.
func total(answers map[string]int) int {
	n := 0
	for _, c := range answers {
		n += c
	}
	return n
}
