package api

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"aviary.dev/aviary/internal/rollout"
)

// eventsOf makes events 1..n of service shop.
func eventsOf(n int) []rollout.Event {
	out := make([]rollout.Event, n)
	for i := range out {
		out[i] = rollout.Event{Seq: uint64(i + 1), Service: "shop", Kind: "StepStarted"}
	}
	return out
}

func TestEventsQuery(t *testing.T) {
	f := &fakeRollouts{events: eventsOf(10)}
	srv, _ := newTestAPI(t, &Server{Rollouts: f})
	bad := map[string]string{
		"after=-1":  "after and limit must be non-negative integers",
		"limit=abc": "after and limit must be non-negative integers",
		"last=1001": "last must be an integer in 0..1000",
		"last=x":    "last must be an integer in 0..1000",
	}
	for q, says := range bad {
		code, body := do(t, srv, request{"GET", "/api/v1/events?" + q, "", nil})
		if code != http.StatusBadRequest || message(body) != says {
			t.Errorf("?%s: %d %s; want 400 %q", q, code, body, says)
		}
	}
	good := map[string]string{
		"":                      "1,2,3,4,5,6,7,8,9,10",
		"after=2&limit=3":       "3,4,5",
		"after=10":              "",
		"last=3":                "8,9,10",
		"last=3&after=1":        "8,9,10", // last wins
		"service=other&after=0": "",
	}
	for q, want := range good {
		code, body := do(t, srv, request{"GET", "/api/v1/events?" + q, "", nil})
		if code != http.StatusOK {
			t.Fatalf("?%s: %d %s", q, code, body)
		}
		if got := seqs(t, body); got != want {
			t.Errorf("?%s: events %s, want %s", q, got, want)
		}
	}
}

// seqs lists the sequence numbers of the events in an answer of GET /api/v1/events.
func seqs(t *testing.T, body string) string {
	t.Helper()
	var out []string
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), `"seq": `); ok {
			out = append(out, strings.TrimSuffix(v, ","))
		}
	}
	if !strings.Contains(body, `"events": [`) {
		t.Fatalf("no events list in %s", body)
	}
	return strings.Join(out, ",")
}

// Errors of the controller become the status their type calls for, wrapped or not.
func TestErrorStatus(t *testing.T) {
	cases := []struct {
		err    error
		status int
		says   string
	}{
		{nil, http.StatusOK, ""},
		{&rollout.ConflictError{Msg: "no rollout in flight"}, http.StatusConflict, "no rollout in flight"},
		{fmt.Errorf("promote: %w", &rollout.ConflictError{Msg: "paused"}), http.StatusConflict, "promote: paused"},
		{&rollout.NotFoundError{Msg: "no service named x"}, http.StatusNotFound, "no service named x"},
		{&BadRequest{Msg: "v9 is not a version"}, http.StatusBadRequest, "v9 is not a version"},
		{&Invalid{Errors: []string{"services[0].name: is required"}}, http.StatusUnprocessableEntity, "the spec is not valid; nothing was changed"},
		{errors.New("store closed"), http.StatusInternalServerError, "store closed"},
	}
	for _, c := range cases {
		srv, _ := newTestAPI(t, &Server{Rollouts: &fakeRollouts{err: c.err}})
		for _, r := range []request{
			{"POST", "/api/v1/services/shop/rollout/promote", `{"full": true}`, nil},
			{"POST", "/api/v1/services/shop/rollout", `{"version": "v2"}`, nil},
			{"GET", "/api/v1/services/shop/rollout", "", nil},
			{"DELETE", "/api/v1/services/shop", "", nil},
		} {
			code, body := do(t, srv, r)
			if code != c.status || !strings.Contains(message(body), c.says) {
				t.Errorf("%s %s with error %v: %d %s; want %d saying %q", r.method, r.path, c.err, code, body, c.status, c.says)
			}
		}
	}
	srv, _ := newTestAPI(t, &Server{Rollouts: &fakeRollouts{err: &Invalid{Errors: []string{"a: b", "c: d"}}}})
	if _, body := do(t, srv, request{"POST", "/api/v1/apply", "services: []", map[string]string{"Content-Type": "application/yaml"}}); !strings.Contains(body, `"a: b"`) || !strings.Contains(body, `"c: d"`) {
		t.Errorf("a 422 should list every error: %s", body)
	}
}

// Requests the API cannot serve as asked say what was wrong.
func TestBadRequests(t *testing.T) {
	srv, f := newTestAPI(t, &Server{})
	cases := []struct {
		req    request
		status int
		says   string
	}{
		{request{"POST", "/api/v1/services/shop/rollout/launch", "", nil}, http.StatusNotFound, `no rollout action "launch"; use one of promote, pause`},
		{request{"POST", "/api/v1/services/shop/rollout", `{}`, nil}, http.StatusBadRequest, `"version" is required`},
		{request{"POST", "/api/v1/services/shop/rollout", `{"version": 2}`, nil}, http.StatusBadRequest, "not valid JSON for this request"},
		{request{"POST", "/api/v1/services/shop/rollout/abort", `{"reson": "typo"}`, nil}, http.StatusBadRequest, `unknown field "reson"`},
		{request{"DELETE", "/api/v1/services/shop?force=yes-please", "", nil}, http.StatusBadRequest, "force must be true or false"},
		{request{"GET", "/api/v1/services/nosuch", "", nil}, http.StatusNotFound, "no service named nosuch"},
	}
	for _, c := range cases {
		code, body := do(t, srv, c.req)
		if code != c.status || !strings.Contains(message(body), c.says) {
			t.Errorf("%s %s %s: %d %s; want %d saying %q", c.req.method, c.req.path, c.req.body, code, body, c.status, c.says)
		}
	}
	if ch := f.changed(); len(ch) > 0 {
		t.Errorf("bad requests changed %v", ch)
	}
}

// sseClient reads a live event stream.
type sseClient struct {
	t    *testing.T
	resp *http.Response
	sc   *bufio.Scanner
}

func openStream(t *testing.T, url string, header map[string]string) (*sseClient, int) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &sseClient{t: t, resp: resp, sc: bufio.NewScanner(resp.Body)}, resp.StatusCode
}

// next returns the id of the next event.
func (c *sseClient) next() uint64 {
	c.t.Helper()
	for c.sc.Scan() {
		if v, ok := strings.CutPrefix(c.sc.Text(), "id: "); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				c.t.Fatalf("id %q", v)
			}
			return n
		}
	}
	c.t.Fatalf("the stream ended: %v", c.sc.Err())
	return 0
}

// The stream replays what came after Last-Event-ID (or ?after=) from the store, page after page,
// then goes on live without sending twice what the replay sent.
func TestStreamReplayBoundary(t *testing.T) {
	f := &fakeRollouts{events: eventsOf(1203)} // more than two pages of replay (500 each)
	hub := NewHub()
	srv, _ := newTestAPI(t, &Server{Rollouts: f, Hub: hub})

	if _, code := openStream(t, srv.URL+"/api/v1/events/stream", map[string]string{"Last-Event-ID": "x"}); code != http.StatusBadRequest {
		t.Errorf("Last-Event-ID x: %d, want 400", code)
	}
	s, code := openStream(t, srv.URL+"/api/v1/events/stream?service=shop", map[string]string{"Last-Event-ID": "1"})
	if code != http.StatusOK {
		t.Fatalf("stream: %d", code)
	}
	for want := uint64(2); want <= 1203; want++ {
		if got := s.next(); got != want {
			t.Fatalf("replay sent event %d, want %d", got, want)
		}
	}
	// The replay is over, so the stream is subscribed: events the replay sent are not sent again.
	hub.Publish([]rollout.Event{{Seq: 1202, Service: "shop"}, {Seq: 1203, Service: "shop"},
		{Seq: 1204, Service: "other"}, {Seq: 1205, Service: "shop"}})
	if got := s.next(); got != 1205 {
		t.Errorf("live event %d, want 1205 (1202 and 1203 were replayed, 1204 is another service's)", got)
	}

	a, _ := openStream(t, srv.URL+"/api/v1/events/stream?after=1200", nil)
	for want := uint64(1201); want <= 1203; want++ {
		if got := a.next(); got != want {
			t.Fatalf("?after=1200 replayed %d, want %d", got, want)
		}
	}
}
