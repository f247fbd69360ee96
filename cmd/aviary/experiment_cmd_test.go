package main

import (
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"aviary.dev/aviary/internal/api"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/experiment"
	"aviary.dev/aviary/internal/store"
)

// The experiment commands against the real admin API over a real store.
func TestExperimentCommands(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "aviary.db"), store.Options{MaxEvents: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := config.Experiment{Name: "checkout", Flag: "f", Arms: []config.ExperimentArm{{Name: "off", Variant: "off"}, {Name: "on", Variant: "on"}},
		Metrics: []config.ExperimentMetric{{Name: "conversion", Event: "purchase"}}}
	e.ApplyDefaults()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	m := experiment.New(experiment.Options{Store: st, Specs: func() []config.Experiment { return []config.Experiment{e} }, Now: func() time.Time { return t0.Add(time.Hour) }})
	srv := httptest.NewUnstartedServer(nil)
	srv.Config.Handler = (&api.Server{Experiments: m, Gatherer: prometheus.NewRegistry(), Hub: api.NewHub(),
		Browser: api.BrowserGuard{Listen: srv.Listener.Addr().String()}}).Handler()
	srv.Start()
	t.Cleanup(srv.Close)

	out, err := run(t, "--server", srv.URL, "experiment", "list")
	if err != nil || !strings.Contains(out, "checkout  flag f  off,on  not started") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if out, err := run(t, "--server", srv.URL, "experiment", "start", "checkout"); err != nil || out != "checkout: running\n" {
		t.Fatalf("start: %v %q", err, out)
	}
	var exps []store.Exposure
	var evs []store.TrackedEvent
	for i := 0; i < 400; i++ {
		k, v := fmt.Sprint(i), "off"
		if i%2 == 1 {
			v = "on"
		}
		exps = append(exps, store.Exposure{Flag: "f", Variant: v, Key: k, Time: t0})
		if i%5 == 0 || (v == "on" && i%3 == 0) {
			evs = append(evs, store.TrackedEvent{ID: k, Unit: k, Event: "purchase", Time: t0.Add(time.Minute)})
		}
	}
	if _, _, err := st.AddExposures(exps); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Track(evs); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, "--server", srv.URL, "experiment", "results", "checkout")
	for _, w := range []string{"Arm:        off, 200 units", "Decision:", "conversion  on", "ANYTIME-VALID"} {
		if err != nil || !strings.Contains(out, w) {
			t.Errorf("results lack %q: %v\n%s", w, err, out)
		}
	}
	out, err = run(t, "--server", srv.URL, "experiment", "status", "checkout", "-o", "json")
	if err != nil || !strings.Contains(out, `"decision"`) {
		t.Errorf("status -o json: %v\n%s", err, out)
	}
	_, err = run(t, "--server", srv.URL, "experiment", "results", "nope")
	wantError(t, "results of an unknown experiment", err, "no such experiment")
	_, err = run(t, "--server", srv.URL, "experiment", "conclude", "checkout", "on")
	wantError(t, "conclude a flag experiment", err, "aviary flag set")
	if out, err := run(t, "--server", srv.URL, "experiment", "stop", "checkout"); err != nil || out != "checkout: stopped\n" {
		t.Errorf("stop: %v %q", err, out)
	}
}
