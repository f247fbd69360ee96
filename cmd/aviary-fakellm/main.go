// Command aviary-fakellm is the project's fake LLM server, for tests, benchmarks and the demo: it
// speaks OpenAI Chat Completions, OpenAI Responses and Anthropic Messages, as JSON and as streams,
// with the time to first token, token pace, token counts, errors and answer quality set by flags,
// so one process can play a good model version and another a slow, costly, flaky or poor one.
// The server itself is package aviary.dev/aviary/internal/fakellm; Go tests start it in-process.
//
// Endpoints:
//
//	POST /v1/chat/completions  OpenAI Chat Completions; "stream": true for server-sent events
//	                           (usage chunk only with stream_options.include_usage)
//	POST /v1/responses         OpenAI Responses; JSON or events ending in response.completed,
//	                           response.incomplete (max_output_tokens) or response.failed
//	POST /v1/messages          Anthropic Messages; JSON or events from message_start to message_stop
//	POST /v1/evaluate          {"input": ..., "output": ..., "model": ...} → {"scores": {"quality": Q},
//	                           "labels": ["ok" | "bad"]}, Q read back from the answer's "[q=0.83]"
//	                           first token, ±0.05 of deterministic noise; "bad" below 0.5
//	GET  /healthz              200 "OK"
//	GET  /__stats              {"name", "requests", "streams", "errors", "midStreamErrors",
//	                           "badRequests", "canceled", "evaluations", "byEndpoint": {path: counts}}
//	POST /__reset              zeroes the counters (and so restarts the error sequences)
//
// Chat honours n (one answer per choice, each token sent for every choice, all counted in the
// usage). A request that offers a function tool (and does not set tool_choice to none) is answered
// with a call of the first one, its arguments {"text": "<tokens>"} streamed a token at a time.
//
// Every LLM answer echoes what the request asked for in X-Fakellm-Model, X-Fakellm-System (the
// first system prompt, percent-encoded where not printable ASCII), X-Fakellm-Temperature and
// X-Fakellm-Max-Tokens, and says who answered in X-Aviary-Upstream (--name), so a test can see
// that the gateway rewrote a request and which version served it.
//
// Flags:
//
//	--listen ADDR               address to listen on (default 127.0.0.1:0, a free port)
//	--port-file FILE            write the bound host:port to FILE once listening
//	--name NAME                 who answers: X-Aviary-Upstream, /__stats (default fakellm)
//	--model MODEL               model reported in answers (default: the requested model)
//	--ttft D                    time to first token (default 100ms)
//	--token-every D             pace between output tokens (default 20ms)
//	--output-tokens N           visible tokens per answer (default 50)
//	--input-tokens-per-char F   input tokens per prompt character (default 0.25)
//	--cached-input-tokens N     cached input tokens reported per request
//	--reasoning-tokens N        reasoning tokens reported (and counted into output) per request
//	--error-rate F              share 0..1 of requests answered 500 before streaming
//	--midstream-error-rate F    share 0..1 of streams broken by an error event after a 200
//	--quality F                 the quality knob 0..1 that /v1/evaluate reads back (default 0.9)
//	--seed N                    seed for words, ids, error positions and evaluation noise (default 1)
//	--stamp                     put the time the first content chunk is written in its text
//	                            ("t=<Unix ns>" after the quality marker), for latency benchmarks
//	--compress CODING           send every LLM answer in gzip, deflate, br or zstd, whatever the
//	                            request's Accept-Encoding says (as some servers do)
//
// Error shares are spread evenly (a share of 0.1 fails every tenth request), not drawn at random.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"aviary.dev/aviary/internal/fakellm"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "aviary-fakellm: %v\n", err)
		}
		os.Exit(2)
	}
}

// config is what the flags say.
type config struct {
	listen, portFile string
	options          fakellm.Options
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	o := &c.options
	fs := flag.NewFlagSet("aviary-fakellm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:0", "address to listen on (port 0 picks a free port)")
	fs.StringVar(&c.portFile, "port-file", "", "if set, write the bound address (host:port) to this file")
	fs.StringVar(&o.Name, "name", "fakellm", "who answers: sent in X-Aviary-Upstream and reported by /__stats")
	fs.StringVar(&o.Model, "model", "", `model reported in answers ("" echoes the requested model)`)
	fs.DurationVar(&o.TTFT, "ttft", 100*time.Millisecond, "time from the request to the first content token")
	fs.DurationVar(&o.TokenEvery, "token-every", 20*time.Millisecond, "pace between output tokens")
	fs.IntVar(&o.OutputTokens, "output-tokens", fakellm.DefaultOutputTokens, "visible output tokens per answer (a smaller max_tokens in the request wins)")
	fs.Float64Var(&o.InputTokensPerChar, "input-tokens-per-char", fakellm.DefaultInputTokensPerChar, "input tokens counted per prompt character")
	fs.IntVar(&o.CachedInputTokens, "cached-input-tokens", 0, "cached input tokens reported per request")
	fs.IntVar(&o.ReasoningTokens, "reasoning-tokens", 0, "reasoning tokens reported per request (counted into output tokens)")
	fs.Float64Var(&o.ErrorRate, "error-rate", 0, "share 0..1 of requests answered 500 before streaming (0.05 is 5%)")
	fs.Float64Var(&o.MidStreamErrorRate, "midstream-error-rate", 0, "share 0..1 of streams ended by an error event after a 200 and some tokens")
	fs.Float64Var(&o.Quality, "quality", 0.9, "quality knob 0..1: answers carry it and /v1/evaluate scores them by it")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed for words, ids, error positions and evaluation noise")
	fs.BoolVar(&o.Stamp, "stamp", false, `put the time the first content chunk is written in its text ("t=<Unix ns>"), for latency benchmarks`)
	fs.StringVar(&o.Compress, "compress", "", "send every LLM answer in this content coding (gzip, deflate, br, zstd), whatever the request asks")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q: every setting is a flag (see -help)", fs.Args())
	}
	if err := o.Validate(); err != nil {
		return config{}, fmt.Errorf("invalid flags (see -help):\n%s", flagNames.Replace(err.Error()))
	}
	return c, nil
}

// flagNames turns the option names in fakellm's validation errors into the flags that set them.
// Each error is on a line of its own and starts with its option's name.
var flagNames = strings.NewReplacer(
	"TTFT:", "--ttft:",
	"TokenEvery:", "--token-every:",
	"OutputTokens:", "--output-tokens:",
	"InputTokensPerChar:", "--input-tokens-per-char:",
	"CachedInputTokens:", "--cached-input-tokens:",
	"ReasoningTokens:", "--reasoning-tokens:",
	"MidStreamErrorRate:", "--midstream-error-rate:",
	"ErrorRate:", "--error-rate:",
	"Quality:", "--quality:",
)

// run serves until ctx is done.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.listen, err)
	}
	if c.portFile != "" {
		if err := writePortFile(c.portFile, ln.Addr().String()); err != nil {
			_ = ln.Close()
			return err
		}
	}
	// No WriteTimeout: a slow stream is the point.
	srv := &http.Server{
		Handler:           fakellm.New(c.options),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
	}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	}
	return nil
}

// writePortFile writes to a temporary file and renames it, so a script polling for the file never
// reads a half-written address.
func writePortFile(path, addr string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(addr+"\n"), 0o644); err != nil {
		return fmt.Errorf("write port file %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write port file %s: %w", path, err)
	}
	return nil
}
