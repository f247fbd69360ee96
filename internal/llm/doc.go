// Package llm understands the traffic of LLM APIs as it passes through the gateway, so that
// versions of a model, a prompt or a serving stack can be judged on what their users feel:
// time to first token, the pace of tokens, tokens per request, and errors that arrive in the
// middle of a stream after a 200.
//
// It knows three wire formats, each as a JSON body and as a stream of server-sent events:
// OpenAI Chat Completions ([OpenAIChat]), the OpenAI Responses API ([OpenAIResponses]) and
// Anthropic Messages ([Anthropic]). [Detect] tells which one a request speaks, [ParseRequest]
// reads the model and stream options of a request body, and a [ResponseParser] sits as a tee
// beside the response bytes the gateway forwards and reports an [Exchange] when the body ends.
// [AddIncludeUsage] and [UsageChunkFilter] let the gateway ask a chat stream for its token
// usage when the client did not, and take the extra usage chunk out again before the client
// sees it.
//
// What it must never do: block, fail, or change the bytes the client receives, or hold more
// than a bounded amount of memory per request. A ResponseParser's Write always accepts all
// bytes and never waits; what it cannot understand it skips and counts. An event larger than
// 1 MiB is skipped, never buffered without limit; a JSON body is read up to 4 MiB and then
// given up on. The UsageChunkFilter removes exactly one kind of event, writes every other
// event through as soon as it is complete, and holds at most one incomplete event (64 KiB).
//
// The parsing is written by hand. No maintained Go library parses these streams
// incrementally as a tee: the providers' SDKs (openai-go, anthropic-sdk-go) own the HTTP
// client and decode a response they read themselves, and SSE libraries are clients too. A
// tee must accept bytes split anywhere (inside a UTF-8 rune, inside a JSON string) and must
// cost little per chunk, so the SSE framing is a small state machine and the JSON of each
// event is walked by a scanner that picks out the few fields needed without allocating;
// encoding/json is used only to unescape the rare strings that are kept and to confirm a
// usage chunk before the filter removes it.
package llm
