package fakellm_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/fakellm"
	"aviary.dev/aviary/internal/polltest"
)

// The server keeps the pace of its Options by its own clock: the first event is sent before the
// time to first token has passed, token i when TTFT + i*TokenEvery has, and a JSON answer when the
// last token would have been. Read from the server's clock, not from when a loaded machine lets
// the client read.
func TestStreamPacing(t *testing.T) {
	t.Parallel()
	const ttft, every, tokens = 120 * time.Millisecond, 30 * time.Millisecond, 6
	for _, a := range apis {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock(true)
			srv := serve(t, fakellm.Options{TTFT: ttft, TokenEvery: every, OutputTokens: tokens, Clock: clock})
			resp := post(t, srv.URL+a.path, a.body("m", "", true))
			// The server now waits for the time to first token, and the first event is here already.
			r := bufio.NewReader(resp.Body)
			first, err := r.ReadString('\n')
			if err != nil || first == "\n" {
				t.Fatalf("first line %q (%v), want an event before the time to first token", first, err)
			}
			if woke := clock.woke(); len(woke) != 0 {
				t.Fatalf("the server woke at %v before the test let it", woke)
			}
			close(clock.gate)
			resp.Body = io.NopCloser(io.MultiReader(strings.NewReader(first), r))
			if content := a.contents(t, readEvents(t, resp, time.Now())); len(content) != tokens {
				t.Fatalf("%d content events, want %d", len(content), tokens)
			}
			var want []time.Duration
			for i := range tokens {
				want = append(want, ttft+time.Duration(i)*every)
			}
			if got := clock.woke(); !slices.Equal(got, want) {
				t.Errorf("tokens sent at %v, want %v", got, want)
			}
		})
	}
}

// A JSON answer arrives when the stream's last token would have.
func TestJSONPacing(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(false)
	srv := serve(t, fakellm.Options{TTFT: 50 * time.Millisecond, TokenEvery: 10 * time.Millisecond, OutputTokens: 6, Clock: clock})
	resp := post(t, srv.URL+"/v1/chat/completions", apis[0].body("m", "", false))
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	if got, want := clock.woke(), []time.Duration{100 * time.Millisecond}; !slices.Equal(got, want) {
		t.Errorf("answer sent at %v, want %v (TTFT 50ms + 5 tokens × 10ms)", got, want)
	}
}

// ErrorRate fails exactly its share of requests, spread evenly, with each API's error body.
func TestErrorRate(t *testing.T) {
	t.Parallel()
	for _, a := range apis {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			srv := serve(t, fakellm.Options{ErrorRate: 0.25, OutputTokens: 1, Seed: 3})
			var failed []int
			for i := range 40 {
				resp := post(t, srv.URL+a.path, a.body("m", "", i%2 == 0))
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode == http.StatusOK {
					continue
				}
				if resp.StatusCode != http.StatusInternalServerError {
					t.Fatalf("request %d: status %d", i, resp.StatusCode)
				}
				failed = append(failed, i)
				checkErrorBody(t, a, body, "server_error", "api_error")
			}
			if len(failed) != 10 {
				t.Fatalf("%d of 40 failed, want 10: %v", len(failed), failed)
			}
			for i := 1; i < len(failed); i++ {
				if failed[i]-failed[i-1] != 4 {
					t.Errorf("failures at %v, want one every 4 requests", failed)
					break
				}
			}
			// Even requests asked for a stream; a failed one never started.
			streams := int64(20)
			for _, i := range failed {
				streams -= int64(1 - i%2)
			}
			if s := stats(t, srv); s.Requests != 40 || s.Errors != 10 || s.ByEndpoint[a.path].Errors != 10 || s.Streams != streams {
				t.Errorf("stats %+v, want 40 requests, 10 errors, %d streams", s.Counts, streams)
			}
		})
	}
}

// checkErrorBody checks the error body shape of an API: OpenAI's {"error": {"type": ...}} or
// Anthropic's {"type": "error", "error": {"type": ...}}.
func checkErrorBody(t *testing.T, a apiCase, body []byte, openAIType, anthropicType string) {
	t.Helper()
	var e struct {
		Type  string
		Error apiError
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %s: %v", body, err)
	}
	want, wantTop := openAIType, ""
	if a.name == "messages" {
		want, wantTop = anthropicType, "error"
	}
	if e.Error.Type != want || e.Type != wantTop || e.Error.Message == "" {
		t.Errorf("error body %s, want error type %q", body, want)
	}
}

func TestMidStreamErrorRate(t *testing.T) {
	t.Parallel()
	for _, a := range apis {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			srv := serve(t, fakellm.Options{MidStreamErrorRate: 0.5, OutputTokens: 4})
			for range 10 {
				stream(t, srv.URL+a.path, a.body("m", "", true))
			}
			// JSON answers never break in the middle.
			post(t, srv.URL+a.path, a.body("m", "", false))
			if s := stats(t, srv); s.Streams != 10 || s.MidStreamErrors != 5 || s.Requests != 11 || s.Errors != 0 {
				t.Errorf("stats %+v, want 10 streams, 5 broken", s.Counts)
			}
		})
	}
}

// The server says what it received, so a test can see that the gateway rewrote the request.
func TestHeaderEcho(t *testing.T) {
	t.Parallel()
	const system = "Réponds en français.\nSois bref: 100%."
	for _, a := range apis {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			srv := serve(t, fakellm.Options{Name: "v2"})
			body := a.body("model-b", system, false)
			body["temperature"] = 0.25
			resp := post(t, srv.URL+a.path, body)
			h := resp.Header
			gotSystem, err := url.PathUnescape(h.Get("X-Fakellm-System"))
			if err != nil || gotSystem != system {
				t.Errorf("X-Fakellm-System %q decodes to %q (%v), want %q", h.Get("X-Fakellm-System"), gotSystem, err, system)
			}
			if h.Get("X-Fakellm-Model") != "model-b" || h.Get("X-Fakellm-Temperature") != "0.25" || h.Get("X-Aviary-Upstream") != "v2" {
				t.Errorf("headers %v", h)
			}
			if a.name == "messages" && h.Get("X-Fakellm-Max-Tokens") != "1024" {
				t.Errorf("X-Fakellm-Max-Tokens %q, want 1024", h.Get("X-Fakellm-Max-Tokens"))
			}
			// Absent fields are not echoed.
			resp = post(t, srv.URL+a.path, a.body("model-b", "", false))
			for _, k := range []string{"X-Fakellm-System", "X-Fakellm-Temperature"} {
				if v, ok := resp.Header[k]; ok {
					t.Errorf("%s: %q for a request without it", k, v)
				}
			}
		})
	}
	// A plain prompt reads as it is.
	srv := serve(t, fakellm.Options{})
	resp := post(t, srv.URL+apis[0].path, apis[0].body("m", "Be brief, be kind.", false))
	if got := resp.Header.Get("X-Fakellm-System"); got != "Be brief, be kind." {
		t.Errorf("X-Fakellm-System %q", got)
	}
}

// The reported model is Options.Model, else the requested one.
func TestReportedModel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ model, want string }{{"", "asked"}, {"served", "served"}} {
		srv := serve(t, fakellm.Options{Model: tc.model})
		for _, a := range apis {
			m := decode[struct{ Model string }](t, post(t, srv.URL+a.path, a.body("asked", "", false)), http.StatusOK)
			if m.Model != tc.want {
				t.Errorf("%s with Model %q: model %q, want %q", a.name, tc.model, m.Model, tc.want)
			}
		}
	}
}

// A stream stops when its client goes away, and is counted as canceled.
func TestClientGoesAway(t *testing.T) {
	t.Parallel()
	for _, a := range apis {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			srv := serve(t, fakellm.Options{TokenEvery: 20 * time.Millisecond, OutputTokens: 1000})
			ctx, cancel := context.WithCancel(context.Background())
			resp := postCtx(t, ctx, srv.URL+a.path, a.body("m", "", true))
			buf := make([]byte, 1)
			if _, err := resp.Body.Read(buf); err != nil {
				t.Fatalf("read: %v", err)
			}
			cancel()
			if !polltest.Until(10*time.Second, polltest.Every, func() bool { return stats(t, srv).Canceled == 1 }) {
				t.Fatalf("stream not stopped 10s after its client went away: %+v", stats(t, srv).Counts)
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	srv := serve(t, fakellm.Options{})
	for _, tc := range []struct {
		a    apiCase
		body any
		want string
	}{
		{apis[0], map[string]any{"messages": []any{map[string]any{"role": "user", "content": "hi"}}}, "model"},
		{apis[0], map[string]any{"model": "m"}, "messages"},
		{apis[0], map[string]any{"model": "m", "messages": "hi"}, "JSON"},
		{apis[1], map[string]any{"model": "m"}, "input"},
		{apis[1], map[string]any{"model": "m", "input": "hi", "max_output_tokens": 0}, "max_output_tokens"},
		{apis[2], map[string]any{"model": "m", "messages": []any{map[string]any{"role": "user", "content": "hi"}}}, "max_tokens"},
	} {
		resp := post(t, srv.URL+tc.a.path, tc.body)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s %v: %d %s, want 400 naming %s", tc.a.name, tc.body, resp.StatusCode, body, tc.want)
			continue
		}
		checkErrorBody(t, tc.a, body, "invalid_request_error", "invalid_request_error")
	}
	if s := stats(t, srv); s.BadRequests != 6 || s.Requests != 6 {
		t.Errorf("stats %+v, want 6 bad requests", s.Counts)
	}
}

// The same Options and requests give the same answers; another seed gives others.
func TestDeterministic(t *testing.T) {
	t.Parallel()
	texts := func(seed uint64) string {
		srv := serve(t, fakellm.Options{Seed: seed})
		var all []string
		for range 3 {
			all = append(all, answer(t, srv.URL, "hi"))
		}
		return strings.Join(all, "|")
	}
	if a, b := texts(1), texts(1); a != b {
		t.Errorf("seed 1 gave\n%s\nthen\n%s", a, b)
	}
	if a, b := texts(1), texts(2); a == b {
		t.Errorf("seeds 1 and 2 gave the same answers")
	}
}

func TestHealthStatsReset(t *testing.T) {
	t.Parallel()
	srv := serve(t, fakellm.Options{Name: "v1"})
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	answer(t, srv.URL, "hi")
	if s := stats(t, srv); s.Name != "v1" || s.Requests != 1 || s.ByEndpoint["/v1/chat/completions"].Requests != 1 || s.ByEndpoint["/v1/messages"].Requests != 0 {
		t.Errorf("stats %+v", s)
	}
	resp = post(t, srv.URL+"/__reset", nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("POST /__reset: %d", resp.StatusCode)
	}
	if s := stats(t, srv); s.Requests != 0 {
		t.Errorf("stats after reset %+v", s)
	}
	resp, err = http.Get(srv.URL + "/v1/chat/completions")
	if err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/chat/completions: %v %v, want 405", resp, err)
	}
	_ = resp.Body.Close()
}

func TestValidate(t *testing.T) {
	t.Parallel()
	err := fakellm.Options{TTFT: -1, OutputTokens: -1, ErrorRate: 2, Quality: -0.1}.Validate()
	for _, field := range []string{"TTFT", "OutputTokens", "ErrorRate", "Quality"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("Validate: %v, want it to name %s", err, field)
		}
	}
	if err := (fakellm.Options{}).Validate(); err != nil {
		t.Errorf("zero Options: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Errorf("New with invalid options did not panic")
		}
	}()
	fakellm.New(fakellm.Options{ErrorRate: -1})
}

// With Stamp, a stream's first content chunk says when it was written, after the quality marker;
// the other chunks do not change.
func TestTheFirstChunkCarriesItsStamp(t *testing.T) {
	t.Parallel()
	for _, a := range apis {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			srv := serve(t, fakellm.Options{OutputTokens: 3, Quality: 0.5, Stamp: true})
			before := time.Now().UnixNano()
			evs, _ := stream(t, srv.URL+a.path, a.body("m", "", true))
			after := time.Now().UnixNano()
			content := a.contents(t, evs)
			first, _ := a.content(t, content[0])
			text, ok := strings.CutPrefix(first, "[q=0.50] "+fakellm.StampPrefix)
			ns, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
			if !ok || err != nil || ns < before || ns > after {
				t.Errorf("first chunk %q: want \"[q=0.50] t=<ns between %d and %d>\"", first, before, after)
			}
			for _, e := range content[1:] {
				if s, _ := a.content(t, e); strings.Contains(s, fakellm.StampPrefix) {
					t.Errorf("a later chunk is stamped too: %q", s)
				}
			}
		})
	}
}
