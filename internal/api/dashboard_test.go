package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/metrics"
)

// TestWhoamiSaysWhoMayChange: the dashboard shows controls only to a caller that may change
// things, so whoami must tell the admin token from the read token, and say so for an open API.
func TestWhoamiSaysWhoMayChange(t *testing.T) {
	srv, _ := newTestAPI(t, &Server{Tokens: Tokens{Admin: "adm", Read: "rd"}})
	for _, c := range []struct {
		token  string
		status int
		want   Whoami
	}{
		{"adm", http.StatusOK, Whoami{Role: RoleAdmin, CanChange: true}},
		{"rd", http.StatusOK, Whoami{Role: RoleRead, CanChange: false}},
		{"wrong", http.StatusUnauthorized, Whoami{}},
	} {
		code, body := do(t, srv, request{"GET", "/api/v1/whoami", "", map[string]string{"Authorization": "Bearer " + c.token}})
		if code != c.status {
			t.Fatalf("token %q: status %d, want %d: %s", c.token, code, c.status, body)
		}
		if code != http.StatusOK {
			continue
		}
		var got Whoami
		if err := json.Unmarshal([]byte(body), &got); err != nil || got != c.want {
			t.Errorf("token %q: %s, want %+v", c.token, body, c.want)
		}
	}
	open, _ := newTestAPI(t, &Server{})
	if code, body := do(t, open, request{"GET", "/api/v1/whoami", "", nil}); code != http.StatusOK || !strings.Contains(body, `"canChange": true`) {
		t.Errorf("open API: %d %s, want canChange true", code, body)
	}
}

// TestUIIsServedWithoutAToken: the page itself holds no secret; it signs in to /api/v1 with the
// token the user types. The API behind it still wants the token.
func TestUIIsServedWithoutAToken(t *testing.T) {
	ui := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("the page")) })
	srv, _ := newTestAPI(t, &Server{Tokens: Tokens{Admin: "adm"}, UI: ui})
	if code, body := do(t, srv, request{"GET", "/ui/", "", nil}); code != http.StatusOK || body != "the page" {
		t.Errorf("GET /ui/ without a token: %d %q", code, body)
	}
	if code, _ := do(t, srv, request{"GET", "/api/v1/services", "", nil}); code != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/services without a token: %d, want 401", code)
	}
	resp, err := srv.Client().Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/ui/" {
		t.Errorf("GET / ends at %s, want the dashboard at /ui/", resp.Request.URL.Path)
	}
}

// TestSeriesPerVersionAndSlot: requests, errors and quantiles land in the slot they ended in, for
// each version; a slot without requests has null rates (missing data is not zero errors).
func TestSeriesPerVersionAndSlot(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 55, 0, time.UTC)
	reg := metrics.NewRegistry(metrics.Options{Now: func() time.Time { return now }})
	v1 := reg.Series("shop", "v1", metrics.Primary)
	for i := range 10 {
		v1.Begin()
		code := 200
		if i == 0 {
			code = 500
		}
		v1.End(metrics.Observation{Code: code, Duration: time.Duration(i+1) * time.Millisecond, End: now.Add(-15 * time.Second)})
	}
	v2 := reg.Series("shop", "v2", metrics.Routed)
	v2.Begin()
	v2.End(metrics.Observation{Code: 200, Duration: 40 * time.Millisecond, End: now})

	view := seriesOf(reg, "shop", []string{"v1", "v2"}, time.Minute, now)
	if len(view.Times) != 6 || view.SlotSeconds != 10 {
		t.Fatalf("%d slots of %gs, want 6 of 10s", len(view.Times), view.SlotSeconds)
	}
	if last := time.Unix(view.Times[5], 0); !last.Equal(now.Truncate(10 * time.Second)) {
		t.Errorf("the last slot starts at %s, want the slot of now (%s)", last, now.Truncate(10*time.Second))
	}
	s1, s2 := view.Versions[0], view.Versions[1]
	if s1.Requests[4] != 10 || s1.Errors[4] != 1 || *s1.ErrorRate[4] != 0.1 {
		t.Errorf("v1's slot before now: %d requests, %d errors, rate %v; want 10, 1, 0.1", s1.Requests[4], s1.Errors[4], *s1.ErrorRate[4])
	}
	if p := *s1.P50Ms[4]; p < 4.8 || p > 5.2 {
		t.Errorf("v1's median %.2f ms, want about 5", p)
	}
	if s1.ErrorRate[5] != nil || s1.P95Ms[5] != nil {
		t.Errorf("v1's empty slot has rate %v and p95 %v, want null", s1.ErrorRate[5], s1.P95Ms[5])
	}
	if s2.Requests[5] != 1 || *s2.P99Ms[5] < 39 {
		t.Errorf("v2's routed request: %d in the last slot, p99 %v; want 1 at about 40 ms", s2.Requests[5], *s2.P99Ms[5])
	}
}

func TestSeriesRefusesBadInput(t *testing.T) {
	srv, _ := newTestAPI(t, &Server{Windows: metrics.NewRegistry(metrics.Options{})})
	for path, want := range map[string]int{
		"/api/v1/services/shop/series":             http.StatusOK,
		"/api/v1/services/shop/series?minutes=16":  http.StatusBadRequest,
		"/api/v1/services/shop/series?minutes=x":   http.StatusBadRequest,
		"/api/v1/services/nosuch/series?minutes=1": http.StatusNotFound,
	} {
		if code, body := do(t, srv, request{"GET", path, "", nil}); code != want {
			t.Errorf("GET %s: %d, want %d: %s", path, code, want, body)
		}
	}
}
