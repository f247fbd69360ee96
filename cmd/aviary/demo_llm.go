package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"aviary.dev/aviary/internal/fakellm"
	"aviary.dev/aviary/internal/rollout"
)

// newDemoLLM is `aviary demo llm`: a model rollout judged on what LLM users feel.
func newDemoLLM() *cobra.Command {
	var workers int
	cmd := &cobra.Command{
		Use:   "llm",
		Short: "Run the LLM demo: a model promoted on its signals, another rolled back on them",
		Long: `demo llm starts three fake OpenAI-compatible model servers on 127.0.0.1 — v1 (the stable model),
v2 (a new model: as fast, as good) and v3 (a bigger model: slower to its first token, more tokens and
so more cost) — and aviary in front of them with an evaluator scoring half of the answers. It streams
chat completions through the gateway and rolls out v2, judged on time to first token, errors in the
middle of streams, cost per request and evaluation scores, then v3, which the judge rolls back by
itself. About a minute.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalCtx(cmd.Context())
			defer stop()
			return runDemoLLM(ctx, cmd.OutOrStdout(), workers)
		},
	}
	cmd.Flags().IntVar(&workers, "workers", 12, "concurrent streaming clients")
	return cmd
}

type demoModel struct {
	name  string
	model string
	o     fakellm.Options
}

var demoModels = []demoModel{
	{"v1", "m-1", fakellm.Options{TTFT: 150 * time.Millisecond, TokenEvery: 3 * time.Millisecond, OutputTokens: 40, Quality: 0.85, Seed: 1}},
	{"v2", "m-2", fakellm.Options{TTFT: 140 * time.Millisecond, TokenEvery: 3 * time.Millisecond, OutputTokens: 40, Quality: 0.86, Seed: 2}},
	{"v3", "m-3", fakellm.Options{TTFT: 230 * time.Millisecond, TokenEvery: 3 * time.Millisecond, OutputTokens: 55, Quality: 0.88, Seed: 3}},
}

func runDemoLLM(ctx context.Context, out io.Writer, workers int) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	urls := map[string]string{}
	for _, m := range demoModels {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("listen for the fake model %s: %w", m.name, err)
		}
		srv := &http.Server{Handler: fakellm.New(m.o), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		urls[m.name] = "http://" + ln.Addr().String()
		say("model %s (%s) on %s: first token after %s, %d tokens, quality %.2f", m.name, m.model, urls[m.name], m.o.TTFT, m.o.OutputTokens, m.o.Quality)
	}
	av, err := startDemoAviary(ctx, demoLLMConfig(urls))
	if err != nil {
		return err
	}
	defer av.stop()
	gw, admin := av.gw, av.admin
	say("aviary: gateway %s, admin API %s; an evaluator scores half of the answers\n", gw, admin)
	say("dashboard: %s/ui/ (open it in a browser to watch the rollouts live)\n", admin)
	c := &apiClient{base: admin, http: &http.Client{}}
	ld := &chatLoad{url: gw + "/v1/chat/completions", workers: workers}
	go ld.run(av.ctx)
	time.Sleep(4 * time.Second) // the stable's first tokens set the boundary

	metrics := []string{"ttft", "stream-errors", "cost", "quality"}
	say("== rollout 1: v1 → v2 (a new model). Steps: 20%%, analysis (at least 20 s, 60 canary calls, 30 evaluations each side), 50%%, 100%%.")
	if err := demoRolloutOf(ctx, out, c, "chat", "v2", rollout.Healthy, metrics); err != nil {
		return err
	}
	say("\n== rollout 2: v2 → v3 (a bigger model: +60%% to the first token, +37%% tokens and cost).")
	if err := demoRolloutOf(ctx, out, c, "chat", "v3", rollout.Degraded, metrics); err != nil {
		return err
	}
	say("\nclients streamed %d chat completions through the gateway (%d failed).", ld.sent.Load(), ld.failed.Load())
	say("per-version LLM metrics: %s/metrics (gen_ai_*, aviary_llm_*) · evidence: %s/api/v1/services/chat/analysis", admin, admin)
	return av.stop()
}

func demoLLMConfig(urls map[string]string) string {
	return fmt.Sprintf(`gateway: {listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0"}
llm:
  prices:
    - {model: m-1, input: 0.5, output: 1.5}
    - {model: m-2, input: 0.5, output: 1.5}
    - {model: m-3, input: 0.5, output: 1.5}
analysis:
  templates:
    - name: llm
      minimum: {duration: 20s, requests: 60}
      metrics:
        - {name: ttft, builtin: ttft, quantile: 0.9, critical: true}
        - {name: stream-errors, builtin: streamErrorRate, critical: true}
        - {name: cost, builtin: costPerRequest, margin: 1.1, critical: true}
        - {name: quality, builtin: evaluation, score: quality, margin: 0.95, critical: true}
services:
  - name: chat
    llm: {api: openai, includeUsage: true, evaluator: {url: %q, percent: 50}}
    stickiness: {header: X-Conversation-Id}
    versions:
      - {name: v1, endpoints: [%q], llm: {model: m-1}}
      - {name: v2, endpoints: [%q], llm: {model: m-2}}
      - {name: v3, endpoints: [%q], llm: {model: m-3}}
    release: v1
    strategy:
      defaultAnalysis: false
      canary:
        steps:
          - setWeight: 20
          - analysis: {templates: [llm]}
          - setWeight: 50
`, urls["v1"]+"/v1/evaluate", urls["v1"], urls["v2"], urls["v3"])
}

// chatLoad streams chat completions through the gateway, one conversation per request.
type chatLoad struct {
	url          string
	workers      int
	sent, failed atomic.Int64
}

func (l *chatLoad) run(ctx context.Context) {
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for w := range max(1, l.workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				body := fmt.Sprintf(`{"model":"m-1","stream":true,"messages":[{"role":"user","content":"question %d from user %d"}]}`, i, w)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, l.url, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Conversation-Id", fmt.Sprintf("c-%d-%d", w, i))
				resp, err := client.Do(req)
				l.sent.Add(1)
				if err != nil {
					if ctx.Err() == nil {
						l.failed.Add(1)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 400 {
					l.failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
}
