package gateway

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/fakellm"
)

// A client that stops a stream (a "stop generating" button) is a client abort, not a failed stream,
// and what was streamed until then is counted.
func TestAClientThatStopsAStreamIsAClientAbort(t *testing.T) {
	front, rec := llmGateway(t, "", fakellm.Options{OutputTokens: 200, TokenEvery: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, front.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	content := 0
	for content < 3 && sc.Scan() {
		if l := sc.Text(); strings.Contains(l, `"content":"`) && !strings.Contains(l, `"content":""`) {
			content++
		}
	}
	cancel()
	resp.Body.Close()
	x := rec.wait(t).Exchange
	if !x.ClientAborted || x.StreamError != "" || x.Complete {
		t.Errorf("exchange %+v, want a client abort and no error", x)
	}
	if !x.Usage.Known || !x.Usage.Partial || x.Usage.Output < 3 || x.Usage.Output >= 200 {
		t.Errorf("usage %+v, want the tokens streamed until the client left (3 or more, fewer than 200)", x.Usage)
	}
}

// An upstream that breaks off a stream is the version's failure, not a client abort; what it sent
// is counted all the same.
func TestAnUpstreamThatCutsAStreamIsNoClientAbort(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: {\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"w%d \"}}]}\n\n", i)
			_ = http.NewResponseController(w).Flush()
		}
		panic(http.ErrAbortHandler) // the connection is cut
	}))
	t.Cleanup(up.Close)
	front, rec := serveLLM(t, `
services:
  - name: chat
    llm: {api: openai}
    versions: [{name: v1, endpoints: ["`+up.URL+`"]}]
`)
	resp, err := http.Post(front.URL+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err == nil {
		_, _ = bufio.NewReader(resp.Body).WriteTo(new(strings.Builder))
		resp.Body.Close()
	}
	x := rec.wait(t).Exchange
	if x.ClientAborted || x.Complete || x.Usage.Output != 3 || !x.Usage.Partial {
		t.Errorf("exchange %+v, want a cut stream of 3 tokens, not a client abort", x)
	}
}
