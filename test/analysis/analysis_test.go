//go:build e2e

// Package analysis_test runs the judge end to end: Aviary in-process (server.Run) with its real
// gateway, real upstream servers and real HTTP load on 127.0.0.1. A canary answering 10% 5xx at
// 10% weight must be rolled back within 60 s of receiving traffic, with the reason in its status;
// a healthy canary under the same load must be promoted, run after run.
package analysis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/internal/server"
)

// upstream answers 200 with its name, or 500 for errPercent of its requests (evenly spread).
func upstream(t *testing.T, name string, errPercent int) string {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		if k := n.Add(1); errPercent > 0 && k%int64(100/errPercent) == 0 {
			w.WriteHeader(http.StatusInternalServerError)
		}
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

type aviary struct {
	t            *testing.T
	gw, admin    string
	stop         func()
	requests, ok atomic.Int64
}

func start(t *testing.T, v1, v2 string) *aviary {
	return startWith(t, v1, v2, "", "[default]")
}

// startWith starts Aviary with extra top-level config and the templates of the analysis step.
func startWith(t *testing.T, v1, v2, extra, stepTemplates string) *aviary {
	dir := t.TempDir()
	cfg := fmt.Sprintf(`%s
gateway: {listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0"}
services:
  - name: shop
    versions:
      - {name: v1, endpoints: [%q]}
      - {name: v2, endpoints: [%q]}
    release: v1
    strategy:
      canary:
        steps:
          - setWeight: 10
          - analysis: {templates: %s}
          - setWeight: 50
`, extra, v1, v2, stepTemplates)
	path := filepath.Join(dir, "aviary.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	a := &aviary{t: t}
	started := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Options{ConfigPath: path, Logger: slog.New(slog.DiscardHandler), TickInterval: 100 * time.Millisecond,
			Started: func(gw, admin string) { a.gw, a.admin = "http://"+gw, "http://"+admin; close(started) }})
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("aviary did not start: %v", err)
	}
	a.stop = func() { cancel(); <-done }
	t.Cleanup(a.stop)
	return a
}

// load sends about rps requests a second until ctx ends.
func (a *aviary) load(ctx context.Context, rps int) {
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second * 4 / time.Duration(rps))
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				resp, err := http.Get(a.gw + "/")
				a.requests.Add(1)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 {
						a.ok.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
}

func (a *aviary) status() rollout.Status {
	resp, err := http.Get(a.admin + "/api/v1/services/shop/rollout")
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	var st rollout.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		a.t.Fatal(err)
	}
	return st
}

func (a *aviary) startRollout() time.Time {
	resp, err := http.Post(a.admin+"/api/v1/services/shop/rollout", "application/json", strings.NewReader(`{"version":"v2"}`))
	if err != nil || resp.StatusCode != 200 {
		a.t.Fatalf("start the rollout: %v %v", err, resp)
	}
	resp.Body.Close()
	return time.Now()
}

// waitFor polls until the status satisfies done, or fails after limit.
func (a *aviary) waitFor(limit time.Duration, done func(rollout.Status) bool) rollout.Status {
	deadline := time.Now().Add(limit)
	for {
		st := a.status()
		if done(st) {
			return st
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("after %s: phase %s, canary %q at %d%%, step %d: %s", limit, st.Phase, st.CanaryVersion, st.CanaryWeight, st.CurrentStepIndex, st.Message)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestAnErroringCanaryIsRolledBackWithinAMinute(t *testing.T) {
	t.Parallel()
	a := start(t, upstream(t, "v1", 0), upstream(t, "v2", 10))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.load(ctx, 100)
	time.Sleep(3 * time.Second) // some stable traffic first, as in life
	began := a.startRollout()
	st := a.waitFor(75*time.Second, func(s rollout.Status) bool { return s.Phase == rollout.Degraded })
	took := time.Since(began)
	t.Logf("rolled back after %s: %s", took.Round(time.Second), st.Message)
	if took > 60*time.Second {
		t.Errorf("rolled back after %s, want within 60 s", took)
	}
	if st.CanaryWeight != 0 || st.StableVersion != "v1" || !strings.Contains(st.Message, "errors") || !strings.Contains(st.Message, "evidence") {
		t.Errorf("after the rollback: weight %d, stable %s, message %q", st.CanaryWeight, st.StableVersion, st.Message)
	}
}

func TestAHealthyCanaryIsPromotedRunAfterRun(t *testing.T) {
	t.Parallel()
	for run := range 3 {
		t.Run(fmt.Sprint("run", run), func(t *testing.T) {
			t.Parallel()
			a := start(t, upstream(t, "v1", 0), upstream(t, "v2", 0))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go a.load(ctx, 100)
			time.Sleep(3 * time.Second)
			a.startRollout()
			st := a.waitFor(90*time.Second, func(s rollout.Status) bool { return s.Phase == rollout.Healthy || s.Phase == rollout.Degraded })
			if st.Phase != rollout.Healthy || st.StableVersion != "v2" {
				t.Fatalf("a healthy canary: phase %s, stable %s: %s", st.Phase, st.StableVersion, st.Message)
			}
		})
	}
}
