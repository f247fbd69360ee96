package api

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/experiment"
	"aviary.dev/aviary/internal/store"
)

// The experiment routes over a real Manager and store.
func TestExperimentRoutes(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "aviary.db"), store.Options{MaxEvents: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := config.Experiment{Name: "checkout", Flag: "f", Arms: []config.ExperimentArm{{Name: "off", Variant: "off"}, {Name: "on", Variant: "on"}},
		Metrics: []config.ExperimentMetric{{Name: "conversion", Event: "purchase"}}}
	e.ApplyDefaults()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	m := experiment.New(experiment.Options{Store: st, Specs: func() []config.Experiment { return []config.Experiment{e} }, Now: func() time.Time { return now }})
	var log bytes.Buffer
	srv, _ := newTestAPI(t, &Server{Experiments: m, Log: slog.New(slog.NewTextHandler(&log, nil))})

	call := func(method, path, body string, want int) string {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
		}
		return string(b)
	}
	call("GET", "/api/v1/experiments/checkout/results", "", http.StatusConflict)
	call("GET", "/api/v1/experiments/nope/results", "", http.StatusNotFound)
	call("POST", "/api/v1/experiments/checkout/start", "", http.StatusOK)
	var exps []store.Exposure
	for _, k := range []string{"a", "b", "c", "d"} {
		v := "off"
		if k > "b" {
			v = "on"
		}
		exps = append(exps, store.Exposure{Flag: "f", Variant: v, Key: k, Time: now})
	}
	if _, _, err := st.AddExposures(exps); err != nil {
		t.Fatal(err)
	}
	batch := `{"events": [{"id": "1", "unit": "c", "event": "purchase", "value": 5}, {"id": "2", "unit": "a", "event": "purchase"}]}`
	if got := call("POST", "/api/v1/track", batch, http.StatusOK); !strings.Contains(got, `"added": 2`) {
		t.Errorf("track: %s", got)
	}
	if got := call("POST", "/api/v1/track", batch, http.StatusOK); !strings.Contains(got, `"added": 0`) {
		t.Errorf("retried track: %s", got)
	}
	if got := call("POST", "/api/v1/track", `{"events": [{"unit": "c"}]}`, http.StatusBadRequest); !strings.Contains(got, "events[0].id") {
		t.Errorf("bad track: %s", got)
	}
	var res experiment.Results
	if err := json.Unmarshal([]byte(call("GET", "/api/v1/experiments/checkout/results", "", http.StatusOK)), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Arms) != 2 || res.Arms[0].Units != 2 || res.Decision.Text == "" {
		t.Errorf("results %+v", res)
	}
	csv := call("GET", "/api/v1/experiments/checkout/units.csv", "", http.StatusOK)
	if !strings.HasPrefix(csv, "unit,arm,exposed,conversion,conversion_pre\na,off,") || strings.Count(csv, "\n") != 5 {
		t.Errorf("csv:\n%s", csv)
	}
	if got := call("GET", "/api/v1/experiments", "", http.StatusOK); !strings.Contains(got, `"phase": "running"`) {
		t.Errorf("list: %s", got)
	}
	// The dashboard sends a reason with every command: taken, and logged with the caller.
	if got := call("POST", "/api/v1/experiments/checkout/conclude", `{"arm": "on", "reason": "on wins"}`, http.StatusConflict); strings.Contains(got, "not valid JSON") {
		t.Errorf("conclude with a reason: %s", got)
	}
	call("POST", "/api/v1/experiments/checkout/stop", `{"reason": "enough data"}`, http.StatusOK)
	if !strings.Contains(log.String(), `experiment=checkout action=stop by=api reason="enough data"`) {
		t.Errorf("the stop's reason was not logged:\n%s", log.String())
	}
	call("POST", "/api/v1/experiments/checkout/start", `{"reason": "again", "arm": "x"}`, http.StatusBadRequest)
	call("POST", "/api/v1/experiments/checkout/start", "", http.StatusConflict)
}
