package server_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"aviary.dev/aviary/internal/rollout"
)

// DELETE /api/v1/services/{name} drops a spec applied through the API: the file's spec of the
// service takes over, or a service that lives only in the store is no longer served, also after a
// restart. A rollout in flight is refused unless forced; a service of the file cannot be deleted.
func TestStoryDeleteAnAppliedSpec(t *testing.T) {
	t.Parallel()
	s := story(t).withService(`
		name: shop
		release: v1
		versions:
		  - {name: v1, endpoints: {{v1}}}
	`).start()
	s.apply(`
		name: shop
		release: v2
		versions:
		  - {name: v1, endpoints: {{v1}}}
		  - {name: v2, endpoints: {{v2}}}
		strategy: {canary: {steps: [{setWeight: 30}, {pause: {}}]}}
	`, `
		name: extra
		match: {pathPrefix: /extra}
		versions:
		  - {name: v1, endpoints: {{v1}}}
	`)
	s.waitFor("shop", rollout.Paused, step(1), canaryWeight(30))

	refusals := []struct {
		path   string
		status int
		says   []string
	}{
		{"/api/v1/services/shop", http.StatusConflict, []string{"in flight", "Paused", "aviary rollout abort shop", "--force"}},
		{"/api/v1/services/nosuch", http.StatusNotFound, []string{"no service named nosuch"}},
		{"/api/v1/services/shop?force=maybe", http.StatusBadRequest, []string{"force must be true or false"}},
	}
	for _, r := range refusals {
		code, body := s.send("DELETE", r.path, "")
		if code != r.status {
			t.Errorf("DELETE %s: %d %s; want %d", r.path, code, body, r.status)
		}
		if m := missing([]string{body}, r.says...); len(m) > 0 {
			t.Errorf("DELETE %s answered %s; it does not say %q", r.path, body, m)
		}
	}
	s.expectStatus(s.status("shop"), rollout.Paused, step(1), canaryWeight(30))

	var res struct {
		Deleted  string `json:"deleted"`
		FileSpec bool   `json:"fileSpec"`
	}
	s.call("DELETE", "/api/v1/services/shop?force=true", "", &res)
	if res.Deleted != "shop" || !res.FileSpec {
		t.Errorf("DELETE shop answered %+v, want deleted shop and the file's spec in force", res)
	}
	st := s.waitFor("shop", rollout.Healthy, stable("v1"))
	if st.Release != "v1" {
		t.Errorf("release %q after the applied spec was deleted, want the file's v1", st.Release)
	}
	s.expectAnswered("v1")
	if !slices.ContainsFunc(s.events("shop"), func(e rollout.Event) bool {
		return e.Kind == "Aborted" && strings.Contains(e.Reason, "deleted")
	}) {
		t.Errorf("no Aborted event says the forced delete aborted the rollout: %+v", s.events("shop"))
	}
	if code, body := s.send("DELETE", "/api/v1/services/shop", ""); code != http.StatusConflict || len(missing([]string{body}, "comes from the config file")) > 0 {
		t.Errorf("DELETE of the file's shop: %d %s; want 409 that says it comes from the file", code, body)
	}

	s.call("DELETE", "/api/v1/services/extra", "", &res)
	if res.Deleted != "extra" || res.FileSpec {
		t.Errorf("DELETE extra answered %+v, want deleted extra and no spec left", res)
	}
	s.restart()
	if code, body := s.send("GET", "/api/v1/services/extra", ""); code != http.StatusNotFound {
		t.Errorf("after the restart, GET extra: %d %s; want 404", code, body)
	}
}
