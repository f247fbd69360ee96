package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"aviary.dev/aviary/internal/fakellm"
)

// sdkClient sends what the OpenAI and Anthropic SDKs send: Accept-Encoding with every coding it
// can read, and reads the answer itself (no transparent decoding by Go's transport).
func sdkPost(t *testing.T, url, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	req.Header.Set("anthropic-version", "2023-06-01")
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// An upstream that compresses its answers whatever it was asked (gzip, deflate, br, zstd; JSON and
// streams) is read all the same: tokens, model and completion are known, nothing counts as a
// stream error, the client gets the answer decoded, and the usage chunk Aviary asked for stays
// hidden from a client that did not.
func TestACompressedAnswerIsReadAndDecodedForTheClient(t *testing.T) {
	for _, coding := range fakellm.Codings {
		t.Run(coding, func(t *testing.T) {
			up := httptest.NewServer(fakellm.New(fakellm.Options{OutputTokens: 7, Compress: coding, Model: "served-model"}))
			t.Cleanup(up.Close)
			front, rec := serveLLM(t, `
services:
  - name: chat
    llm: {api: auto, includeUsage: true}
    versions: [{name: v1, endpoints: ["`+up.URL+`"]}]
`)
			for _, tc := range []struct{ path, body string }{
				{"/v1/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`},
				{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`},
				{"/v1/responses", `{"model":"m","stream":true,"input":"hi"}`},
				{"/v1/responses", `{"model":"m","input":"hi"}`},
				{"/v1/messages", `{"model":"m","stream":true,"max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`},
				{"/v1/messages", `{"model":"m","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`},
			} {
				name := fmt.Sprintf("%s %s stream=%v", coding, tc.path, strings.Contains(tc.body, `"stream"`))
				resp, got := sdkPost(t, front.URL+tc.path, tc.body)
				if ce := resp.Header.Get("Content-Encoding"); ce != "" || !strings.Contains(got, "served-model") {
					t.Errorf("%s: the client got Content-Encoding %q and %.80q, want the answer decoded", name, ce, got)
				}
				if strings.Contains(got, `"choices":[]`) {
					t.Errorf("%s: the usage chunk Aviary asked for reached the client", name)
				}
				x := rec.wait(t).Exchange
				if !x.Usage.Known || x.Usage.Output != 7 || x.ResponseModel != "served-model" || !x.Complete || x.StreamError != "" {
					t.Errorf("%s: exchange %+v", name, x)
				}
			}
		})
	}
}

// The gateway asks the upstream for identity, whatever the client accepts: the answer must be read.
func TestAnLLMCallAsksTheUpstreamForIdentity(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	fake := fakellm.New(fakellm.Options{OutputTokens: 2})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Accept-Encoding"))
		mu.Unlock()
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	front, rec := serveLLM(t, `
services:
  - name: chat
    llm: {api: openai, maxRequestBytes: 100}
    versions: [{name: v1, endpoints: ["`+up.URL+`"]}]
`)
	small := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	large := `{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("x", 200) + `"}]}`
	for _, body := range []string{small, large} {
		sdkPost(t, front.URL+"/v1/chat/completions", body)
		rec.wait(t)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] != "identity" || seen[1] != "identity" {
		t.Errorf("the upstream was asked for %q, want identity for a read request and for one over maxRequestBytes", seen)
	}
}

// A coding the gateway cannot decode passes to the client untouched; the exchange says it was not
// read, rather than counting the bytes it could not understand as a broken stream.
func TestAnAnswerInAnUnknownCodingPassesUnread(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "compress")
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte("\x1f\x9d\x90opaque"))
	}))
	t.Cleanup(up.Close)
	front, rec := serveLLM(t, `
services:
  - name: chat
    llm: {api: openai, includeUsage: true}
    versions: [{name: v1, endpoints: ["`+up.URL+`"]}]
`)
	resp, got := sdkPost(t, front.URL+"/v1/chat/completions", `{"model":"m","stream":true,"messages":[]}`)
	if resp.Header.Get("Content-Encoding") != "compress" || got != "\x1f\x9d\x90opaque" {
		t.Errorf("the client got %q in %q, want the upstream's bytes as they were", got, resp.Header.Get("Content-Encoding"))
	}
	x := rec.wait(t).Exchange
	if x.Unread != "content coding compress" || x.Usage.Known || x.StreamError != "" || x.RequestModel != "m" {
		t.Errorf("exchange %+v, want it marked unread (content coding compress) and nothing else", x)
	}
}

// A shadow copy's compressed answer is read too.
func TestACompressedAnswerToAShadowCopyIsRead(t *testing.T) {
	v1 := httptest.NewServer(fakellm.New(fakellm.Options{OutputTokens: 3}))
	v2 := httptest.NewServer(fakellm.New(fakellm.Options{OutputTokens: 5, Compress: "zstd"}))
	t.Cleanup(v1.Close)
	t.Cleanup(v2.Close)
	front, rec := serveLLM(t, `
services:
  - name: chat
    llm: {api: openai, includeUsage: true}
    versions:
      - {name: v1, endpoints: ["`+v1.URL+`"]}
      - {name: v2, endpoints: ["`+v2.URL+`"]}
    mirror: {version: v2, percent: 100}
`)
	sdkPost(t, front.URL+"/v1/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	for range 2 {
		if r := rec.wait(t); r.Mirror && (r.Exchange.Usage.Output != 5 || !r.Exchange.Complete) {
			t.Errorf("mirror exchange %+v", r.Exchange)
		}
	}
}
