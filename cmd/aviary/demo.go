package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/internal/server"
)

// newDemo is `aviary demo`: everything in one process, on loopback, in about two minutes.
func newDemo() *cobra.Command {
	var rps int
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a demo: one rollout promoted, one rolled back by the judge, with the evidence",
		Long: `demo starts three versions of a small service on 127.0.0.1 — v1 (stable), v2 (healthy) and
v3 (a build of v2 with more errors and slower answers) — then aviary itself with its state in a
temporary directory, sends steady traffic through the gateway, and runs two canary rollouts:
v1 → v2, which the judge lets through and which is promoted, and v2 → v3, which the judge rolls back
by itself as soon as the evidence allows. It prints what happens and the evidence, and stops
everything when done (about two minutes).`,
		Example: "  aviary demo\n  aviary demo --rps 200",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalCtx(cmd.Context())
			defer stop()
			return runDemo(ctx, cmd.OutOrStdout(), rps, keep)
		},
	}
	cmd.Flags().IntVar(&rps, "rps", 100, "requests per second of demo traffic")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep aviary running after the demo (Ctrl-C stops it)")
	cmd.AddCommand(newDemoLLM(), newDemoFlags())
	return cmd
}

// demoVersion is one in-process upstream: its error rate and median latency.
type demoVersion struct {
	name    string
	errRate float64
	median  time.Duration
}

var demoVersions = []demoVersion{
	{"v1", 0.005, 20 * time.Millisecond},
	{"v2", 0.005, 20 * time.Millisecond},
	{"v3", 0.04, 32 * time.Millisecond}, // v2 with a regression: 8× the errors, 60% slower
}

func runDemo(ctx context.Context, out io.Writer, rps int, keep bool) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	urls := map[string]string{}
	for _, v := range demoVersions {
		u, closeFn, err := serveDemoVersion(v)
		if err != nil {
			return err
		}
		defer closeFn()
		urls[v.name] = u
		say("upstream %s on %s: %.1f%% errors, median %s", v.name, u, 100*v.errRate, v.median)
	}
	av, err := startDemoAviary(ctx, demoConfig(urls))
	if err != nil {
		return err
	}
	defer av.stop()
	gw, admin := av.gw, av.admin
	say("aviary: gateway %s, admin API %s (try `aviary --server %s get services` in another terminal)\n", gw, admin, admin)
	say("dashboard: %s/ui/ (open it in a browser to watch the rollouts live)\n", admin)
	c := &apiClient{base: admin, http: &http.Client{}}
	ld := &demoLoad{url: gw + "/", rps: rps}
	go ld.run(av.ctx)
	time.Sleep(5 * time.Second) // stable traffic first: the latency boundary is the stable's p99

	say("== rollout 1: v1 → v2 (healthy). Steps: 10%%, analysis (at least 30 s and 200 canary requests), 50%%, pause 10 s, 100%%.")
	if err := demoRollout(ctx, out, c, "v2", rollout.Healthy); err != nil {
		return err
	}
	say("\n== rollout 2: v2 → v3 (a build with 8× the errors and 60%% slower). Same steps; the default analysis watches from the first one.")
	if err := demoRollout(ctx, out, c, "v3", rollout.Degraded); err != nil {
		return err
	}
	sent, failed := ld.sent.Load(), ld.failed.Load()
	say("\nclients sent %d requests through the gateway; %d got a 5xx (every version fails 0.5%% of requests by design, v3 more).", sent, failed)
	say("history: %s/api/v1/services/shop/history · evidence: %s/api/v1/services/shop/analysis", admin, admin)
	if keep {
		say("aviary keeps running (Ctrl-C stops it); log: %s", av.log)
		<-ctx.Done()
	}
	return av.stop()
}

// demoAviary is aviary serving in this process, on a config and a store in a temporary directory.
type demoAviary struct {
	gw, admin string          // base URLs
	log       string          // its log file
	ctx       context.Context // ends when it stops: what the demo's load runs on
	stop      func() error    // stops it and removes the directory; safe to call twice
}

func startDemoAviary(ctx context.Context, config string) (*demoAviary, error) {
	dir, err := os.MkdirTemp("", "aviary-demo-")
	if err != nil {
		return nil, fmt.Errorf("make a directory for the demo: %w", err)
	}
	cfgPath := filepath.Join(dir, "aviary.yaml")
	logFile, err := os.Create(filepath.Join(dir, "aviary.log"))
	if err == nil {
		err = os.WriteFile(cfgPath, []byte(config), 0o644)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("write the demo config and log: %w", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	addrs := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.Run(runCtx, server.Options{ConfigPath: cfgPath, Logger: slog.New(slog.NewTextHandler(logFile, nil)),
			Started: func(gw, admin string) { addrs <- [2]string{gw, admin} }})
	}()
	var once sync.Once
	var stopErr error
	av := &demoAviary{log: logFile.Name(), ctx: runCtx, stop: func() error {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				stopErr = err
			}
			logFile.Close()
			os.RemoveAll(dir)
		})
		return stopErr
	}}
	select {
	case a := <-addrs:
		av.gw, av.admin = "http://"+a[0], "http://"+a[1]
		return av, nil
	case err := <-done:
		done <- err // for stop
		_ = av.stop()
		return nil, fmt.Errorf("start aviary: %w", err)
	}
}

func demoConfig(urls map[string]string) string {
	// The step's template says what a pass must rule out, in the demo's terms: at 10 canary
	// requests a second, ruling out the default effects (errors above max(2×, +1.5 points), a
	// p99 50% slower: thousands of requests, as slow requests are 1 in 100) takes minutes; three
	// times the errors or a p90 twice as slow takes about half a minute. The background analysis is
	// the default one, which rolls v3 back.
	return fmt.Sprintf(`gateway: {listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0"}
analysis:
  templates:
    - name: demo
      metrics:
        - {name: errors, builtin: errorRate, critical: true, detectableEffect: {ratio: 3, points: 3}}
        - {name: latency, builtin: latency, quantile: 0.9, critical: true, detectableEffect: {slowdown: 1}}
services:
  - name: shop
    versions:
      - {name: v1, endpoints: [%q]}
      - {name: v2, endpoints: [%q]}
      - {name: v3, endpoints: [%q]}
    release: v1
    healthCheck: {interval: 1s}
    strategy:
      canary:
        steps:
          - setWeight: 10
          - analysis: {templates: [demo]}
          - setWeight: 50
          - pause: {duration: 10s}
`, urls["v1"], urls["v2"], urls["v3"])
}

// demoRollout starts a rollout to version and reports until it reaches want (or another end).
func demoRollout(ctx context.Context, out io.Writer, c *apiClient, version string, want rollout.Phase) error {
	return demoRolloutOf(ctx, out, c, "shop", version, want, []string{"errors", "latency"})
}

// demoRolloutOf starts a rollout of service to version and reports until it reaches want (or
// another end), with the live evidence of the named metrics.
func demoRolloutOf(ctx context.Context, out io.Writer, c *apiClient, service, version string, want rollout.Phase, metrics []string) error {
	if _, _, err := c.start(ctx, service, startRequest{Version: version}); err != nil {
		return err
	}
	return demoFollow(ctx, out, c, service, want, metrics)
}

// demoFollow reports a rollout in flight until it reaches want (or another end).
func demoFollow(ctx context.Context, out io.Writer, c *apiClient, service string, want rollout.Phase, metrics []string) error {
	began := time.Now()
	var last string
	var shown time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		st, _, err := c.status(ctx, service)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%4.0fs  %-11s canary %-3s %s  step %d/%d", time.Since(began).Seconds(), st.Phase,
			dash(st.CanaryVersion), progressBar(st.CanaryWeight), min(st.CurrentStepIndex+1, len(st.Steps)), len(st.Steps))
		// A line when the phase, weight or step moves, and the judge's evidence every five seconds.
		if moved := line[6:]; moved != last || time.Since(shown) >= 5*time.Second {
			fmt.Fprintln(out, line)
			for _, ev := range liveEvidence(st, metrics) {
				fmt.Fprintln(out, "       "+ev)
			}
			last, shown = moved, time.Now()
		}
		if st.Phase == rollout.Healthy || st.Phase == rollout.Degraded {
			verdict := "promoted: " + st.StableVersion + " is stable"
			if st.Phase == rollout.Degraded {
				verdict = "rolled back by itself after " + time.Since(began).Round(time.Second).String() + "; " + st.StableVersion + " serves everyone"
			}
			fmt.Fprintf(out, "=> %s\n   %s\n", verdict, strings.ReplaceAll(st.Message, "; ", "\n   "))
			if st.Phase != want {
				return fmt.Errorf("the demo expected %s and got %s: %s", want, st.Phase, st.Message)
			}
			return nil
		}
	}
}

// liveEvidence is the running analyses' evidence on the named metrics, a line per metric.
func liveEvidence(st rollout.Status, metrics []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, ch := range st.Checks {
		if ch.Last == nil {
			continue
		}
		for _, part := range strings.Split(ch.Last.Message, "; ") {
			for _, m := range metrics {
				if strings.HasPrefix(part, m+": ") && !seen[m] {
					seen[m] = true
					out = append(out, part)
				}
			}
		}
	}
	return out
}

// serveDemoVersion starts an upstream that fails errRate of its requests (evenly spread) and
// answers after a lognormal delay around median.
func serveDemoVersion(v demoVersion) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listen for demo upstream %s: %w", v.name, err)
	}
	var n atomic.Uint64
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		time.Sleep(time.Duration(float64(v.median) * math.Exp(0.3*rand.NormFloat64())))
		w.Header().Set("X-Aviary-Upstream", v.name)
		if float64(n.Add(1)*6181%10000) < v.errRate*10000 {
			w.WriteHeader(http.StatusInternalServerError)
		}
		fmt.Fprintln(w, v.name)
	})}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// demoLoad sends steady traffic through the gateway; with users, each request comes from one of
// that many users (X-User), as a sticky service's flags need.
type demoLoad struct {
	url          string
	rps, users   int
	sent, failed atomic.Int64
}

func (l *demoLoad) run(ctx context.Context) {
	const workers = 8
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			tick := time.NewTicker(time.Second * workers / time.Duration(max(1, l.rps)))
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				l.send(ctx, client, rng)
			}
		})
	}
	wg.Wait()
}

func (l *demoLoad) send(ctx context.Context, client *http.Client, rng *rand.Rand) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, l.url, nil)
	if l.users > 0 {
		req.Header.Set("X-User", fmt.Sprintf("user-%d", rng.IntN(l.users)))
	}
	resp, err := client.Do(req)
	l.sent.Add(1)
	if err != nil {
		l.failed.Add(1)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		l.failed.Add(1)
	}
}

// signalCtx ends on SIGINT or SIGTERM.
func signalCtx(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}
