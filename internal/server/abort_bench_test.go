package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/gateway"
	"aviary.dev/aviary/internal/metrics"
	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/internal/store"
)

// BenchmarkAbortToStable measures how long a canary keeps getting new requests after the decision
// to abort: real gateway, real store file (with its fsync), real upstreams, real HTTP load. Each
// iteration brings a canary to 50%, then aborts it. Reported:
//
//   - abort-p50-ms / abort-p99-ms: from the decision (the call to Controller.Do) until the abort is
//     written and the new plan is served (Do returns);
//   - leak-p50-ms / leak-p99-ms: the latest client send time, after the decision, of a request the
//     canary still received — how long new requests kept reaching it (0 when none did).
//
// Run: go test -run '^$' -bench AbortToStable -benchtime 200x ./internal/server
func BenchmarkAbortToStable(b *testing.B) {
	var lastLeak atomic.Int64 // latest X-Sent (unix ns) seen by the canary
	stable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer stable.Close()
	canary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sent, err := strconv.ParseInt(r.Header.Get("X-Sent"), 10, 64); err == nil {
			for {
				cur := lastLeak.Load()
				if sent <= cur || lastLeak.CompareAndSwap(cur, sent) {
					break
				}
			}
		}
	}))
	defer canary.Close()

	st, err := store.Open(filepath.Join(b.TempDir(), "aviary.db"), store.Options{MaxEvents: config.DefaultMaxEvents})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	base, err := config.Parse(nil) // the gateway section's defaults
	if err != nil {
		b.Fatal(err)
	}
	gw := gateway.New(gateway.Options{Gateway: base.Gateway, Metrics: metrics.NewRegistry(metrics.Options{})})
	defer gw.Close()
	ctrl, err := rollout.NewController(rollout.Options{Store: st, Router: gw, Health: gatewayHealth{gw}})
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Parse([]byte(`
services:
  - name: shop
    versions:
      - {name: v1, endpoints: ["` + stable.URL + `"]}
      - {name: v2, endpoints: ["` + canary.URL + `"]}
    release: v2
    strategy: {canary: {steps: [{setWeight: 50}, {pause: {}}]}}
`))
	if err != nil {
		b.Fatal(err)
	}
	if err := ctrl.SetSpecs(cfg.Services); err != nil {
		b.Fatal(err)
	}
	front := httptest.NewServer(gw)
	defer front.Close()

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, front.URL+"/", nil)
				req.Header.Set("X-Sent", strconv.FormatInt(time.Now().UnixNano(), 10))
				if resp, err := client.Do(req); err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()

	var abortLat, leak []time.Duration
	for b.Loop() {
		time.Sleep(5 * time.Millisecond) // the canary takes its share again
		t0 := time.Now()
		if _, err := ctrl.Do("shop", rollout.Command{Kind: rollout.Abort}); err != nil {
			b.Fatal(err)
		}
		abortLat = append(abortLat, time.Since(t0))
		time.Sleep(20 * time.Millisecond) // requests in flight at the decision land
		leak = append(leak, max(0, time.Duration(lastLeak.Load()-t0.UnixNano())))
		if _, err := ctrl.Do("shop", rollout.Command{Kind: rollout.Retry}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	report(b, "abort", abortLat)
	report(b, "leak", leak)
}

func report(b *testing.B, name string, ds []time.Duration) {
	slices.Sort(ds)
	q := func(p float64) float64 { return float64(ds[int(p*float64(len(ds)-1))]) / 1e6 }
	b.ReportMetric(q(0.5), name+"-p50-ms")
	b.ReportMetric(q(0.99), name+"-p99-ms")
}
