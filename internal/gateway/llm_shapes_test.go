package gateway

import (
	"net/http/httptest"
	"testing"

	"aviary.dev/aviary/internal/fakellm"
)

// Several choices (n) and tool calls are read as exactly as text: the tokens Aviary records are
// the ones the model reports.
func TestChoicesAndToolCallsAreReadExactly(t *testing.T) {
	up := httptest.NewServer(fakellm.New(fakellm.Options{OutputTokens: 6}))
	t.Cleanup(up.Close)
	front, rec := serveLLM(t, `
services:
  - name: chat
    llm: {api: auto, includeUsage: true}
    versions: [{name: v1, endpoints: ["`+up.URL+`"]}]
`)
	const tool = `"tools":[{"type":"function","function":{"name":"lookup"}}]`
	for _, tc := range []struct {
		path, body string
		output     int64
	}{
		{"/v1/chat/completions", `{"model":"m","stream":true,"n":3,"messages":[{"role":"user","content":"hi"}]}`, 18},
		{"/v1/chat/completions", `{"model":"m","n":2,"messages":[{"role":"user","content":"hi"}]}`, 12},
		{"/v1/chat/completions", `{"model":"m","stream":true,` + tool + `,"messages":[{"role":"user","content":"hi"}]}`, 6},
		{"/v1/responses", `{"model":"m","stream":true,"tools":[{"type":"function","name":"lookup"}],"input":"hi"}`, 6},
		{"/v1/messages", `{"model":"m","stream":true,"max_tokens":50,"tools":[{"name":"lookup","input_schema":{}}],"messages":[{"role":"user","content":"hi"}]}`, 6},
	} {
		sdkPost(t, front.URL+tc.path, tc.body)
		x := rec.wait(t).Exchange
		if !x.Usage.Known || x.Usage.Partial || x.Usage.Output != tc.output || !x.Complete || x.StreamError != "" {
			t.Errorf("%s %s: exchange %+v, want %d output tokens", tc.path, tc.body, x, tc.output)
		}
		if x.Stream && x.FirstToken == 0 {
			t.Errorf("%s: no first token in a stream of %d chunks", tc.path, x.ContentChunks)
		}
	}
}
