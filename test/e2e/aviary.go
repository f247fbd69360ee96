//go:build e2e

// Package e2e runs Aviary in-process for the end-to-end suites: server.Run on a config written to
// the test's temporary directory, ports chosen by the kernel, and the admin API's rollout calls.
package e2e

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/internal/server"
)

// Aviary is one running aviary; it stops when the test ends.
type Aviary struct {
	t         testing.TB
	GW, Admin string // base URLs
}

// Start runs aviary on config (its listeners should be on 127.0.0.1:0).
func Start(t testing.TB, config string) *Aviary {
	t.Helper()
	path := filepath.Join(t.TempDir(), "aviary.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	a := &Aviary{t: t}
	started := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Options{ConfigPath: path, Logger: slog.New(slog.DiscardHandler), TickInterval: 100 * time.Millisecond,
			Started: func(gw, admin string) { a.GW, a.Admin = "http://"+gw, "http://"+admin; close(started) }})
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("aviary did not start: %v", err)
	}
	t.Cleanup(func() { cancel(); <-done })
	return a
}

// Status is a service's rollout status.
func (a *Aviary) Status(service string) rollout.Status {
	resp, err := http.Get(a.Admin + "/api/v1/services/" + service + "/rollout")
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

// StartRollout rolls service out to version and returns when it asked.
func (a *Aviary) StartRollout(service, version string) time.Time {
	resp, err := http.Post(a.Admin+"/api/v1/services/"+service+"/rollout", "application/json", strings.NewReader(`{"version":"`+version+`"}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		a.t.Fatalf("start the rollout of %s to %s: %v %v", service, version, err, resp)
	}
	resp.Body.Close()
	return time.Now()
}

// WaitFor polls until the status satisfies done, or fails the test after limit with the last one.
func (a *Aviary) WaitFor(service string, limit time.Duration, done func(rollout.Status) bool) rollout.Status {
	deadline := time.Now().Add(limit)
	for {
		st := a.Status(service)
		if done(st) {
			return st
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("after %s: phase %s, canary %q at %d%%, step %d: %s", limit, st.Phase, st.CanaryVersion, st.CanaryWeight, st.CurrentStepIndex, st.Message)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Ended says a rollout is over, one way or the other.
func Ended(s rollout.Status) bool { return s.Phase == rollout.Healthy || s.Phase == rollout.Degraded }
