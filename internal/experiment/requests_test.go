package experiment

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/experiment/stats"
	"aviary.dev/aviary/internal/store"
)

// The builtin metrics per unit, from the gateway's records: each unit's error rate and its share
// of requests slower than control's p95, attributed from its exposure on, into the results with
// intervals like any metric; apps cannot send events of the reserved names.
func TestBuiltinMetricsFromTheGatewaysRecords(t *testing.T) {
	s, err := store.Open(filepath.Join(t.TempDir(), "aviary.db"), store.Options{MaxEvents: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e := guardedSpec()
	e.Arms = e.Arms[:2]
	e.Metrics = append(e.Metrics, config.ExperimentMetric{Name: "p95", Builtin: config.BuiltinLatency, Quantile: 0.95, Guardrail: true})
	e.ApplyDefaults()
	c := &clock{t: t0}
	m := New(Options{Store: s, Specs: func() []config.Experiment { return []config.Experiment{e} }, Now: c.now})
	st, err := m.Start("checkout")
	if err != nil {
		t.Fatal(err)
	}
	rec := NewRequestRecorder(t0)
	rec.Record("shop", "early", true, time.Second, t0) // before Watch: not recorded
	rec.Watch([]Running{{Spec: e, State: st}}, func(string) string { return "" }, func(target, control string, q float64) time.Duration {
		if target != "shop" || control != "v1" || q != 0.95 {
			t.Errorf("boundary asked for %s/%s at %v", target, control, q)
		}
		return 100 * time.Millisecond
	})
	var exps []store.Exposure
	for i := 0; i < 400; i++ {
		key := fmt.Sprintf("user-%d", i)
		version := []string{"v1", "v2"}[i%2]
		exps = append(exps, store.Exposure{Flag: VersionExposures("shop"), Variant: version, Key: key, Time: t0})
		for r := 0; r < 4; r++ {
			// v1: no errors, 1 request in 4 slow; v2: every other request fails, 3 in 4 slow.
			failed := version == "v2" && r%2 == 0
			slow := r == 0 || (version == "v2" && r < 3)
			lat := 10 * time.Millisecond
			if slow {
				lat = time.Second
			}
			rec.Record("shop", key, failed, lat, t0.Add(time.Second))
		}
		rec.Record("other", key, true, time.Second, t0) // a service no experiment measures
	}
	if _, _, err := s.AddExposures(exps); err != nil {
		t.Fatal(err)
	}
	evs := rec.Flush()
	if len(evs) != 400*3 {
		t.Fatalf("%d events flushed for 400 units, want 3 each", len(evs))
	}
	if err := m.AddRecords(evs); err != nil {
		t.Fatal(err)
	}
	if got := rec.Flush(); len(got) != 0 {
		t.Errorf("a second flush gave %d events", len(got))
	}
	c.t = t0.Add(time.Hour)
	res, err := m.Results("checkout")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]float64{}
	for _, mr := range res.Metrics {
		a := mr.Arms[0]
		byName[mr.Metric+"/control"], byName[mr.Metric+"/green"] = a.ControlMean, a.ArmMean
	}
	for k, want := range map[string]float64{"errors/control": 0, "errors/green": 0.5, "p95/control": 0.25, "p95/green": 0.75} {
		if got, ok := byName[k]; !ok || got != want {
			t.Errorf("%s: %v (computed: %v), want %v; notes %v", k, got, ok, want, res.Notes)
		}
	}
	if !strings.Contains(res.Decision.Text, "guardrails moved for green") {
		t.Errorf("decision %q", res.Decision.Text)
	}
	if _, _, err := m.Track([]store.TrackedEvent{{ID: "x", Unit: "u", Event: BuiltinEvent("shop", "errors")}}); err == nil ||
		!strings.Contains(err.Error(), "names the gateway's own records") {
		t.Errorf("an app's event of a reserved name: %v", err)
	}
}

// The LLM builtins per unit, from the gateway's LLM records: each unit's mean time to first token
// over its answers that had one and its mean cost over its priced answers, attributed from its
// exposure on; records of a unit with no key or of an unwatched service do not count.
func TestLLMBuiltinsFromTheGatewaysRecords(t *testing.T) {
	s, err := store.Open(filepath.Join(t.TempDir(), "aviary.db"), store.Options{MaxEvents: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e := config.Experiment{Name: "answers", Service: "chat",
		Arms: []config.ExperimentArm{{Name: "control", Version: "v1"}, {Name: "small", Version: "v2"}},
		Metrics: []config.ExperimentMetric{
			{Name: "ttft", Builtin: config.BuiltinTTFT},
			{Name: "cost", Builtin: config.BuiltinCostPerRequest, Guardrail: true},
		}}
	e.ApplyDefaults()
	if e.Metrics[0].Goal != config.GoalDecrease || e.Metrics[1].Goal != config.GoalDecrease {
		t.Fatalf("goals %q, %q: want decrease by default", e.Metrics[0].Goal, e.Metrics[1].Goal)
	}
	c := &clock{t: t0}
	m := New(Options{Store: s, Specs: func() []config.Experiment { return []config.Experiment{e} }, Now: c.now})
	st, err := m.Start("answers")
	if err != nil {
		t.Fatal(err)
	}
	rec := NewRequestRecorder(t0)
	rec.Watch([]Running{{Spec: e, State: st}}, func(string) string { return "" }, func(string, string, float64) time.Duration { return 0 })
	var exps []store.Exposure
	end := t0.Add(time.Second)
	for i := 0; i < 300; i++ {
		key := fmt.Sprintf("user-%d", i)
		version := []string{"v1", "v2"}[i%2]
		exps = append(exps, store.Exposure{Flag: VersionExposures("chat"), Variant: version, Key: key, Time: t0})
		// v1: first tokens at 400 and 600 ms, 0.02 and 0.04 a request; v2 at 100 and 300 ms,
		// 0.001 and 0.002; one more answer of each unit with no first token and no price.
		base, price := 400*time.Millisecond, 0.02
		if version == "v2" {
			base, price = 100*time.Millisecond, 0.001
		}
		rec.RecordLLM("chat", key, base, price, true, end)
		rec.RecordLLM("chat", key, base+200*time.Millisecond, 2*price, true, end)
		rec.RecordLLM("chat", key, 0, 0, false, end)
		rec.RecordLLM("other", key, time.Hour, 100, true, end) // not watched
	}
	rec.RecordLLM("chat", "", time.Hour, 100, true, end) // no key: no unit
	if _, _, err := s.AddExposures(exps); err != nil {
		t.Fatal(err)
	}
	evs := rec.Flush()
	for _, ev := range evs {
		if ev.Unit == "" || !strings.HasSuffix(ev.Event, ":chat") {
			t.Fatalf("flushed %+v", ev)
		}
	}
	if err := m.AddRecords(evs); err != nil {
		t.Fatal(err)
	}
	c.t = t0.Add(time.Hour)
	res, err := m.Results("answers")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]float64{}
	for _, mr := range res.Metrics {
		a := mr.Arms[0]
		byName[mr.Metric+"/control"], byName[mr.Metric+"/small"] = a.ControlMean, a.ArmMean
		if a.ControlUnits != 150 || a.ArmUnits != 150 {
			t.Errorf("%s: %v and %v units, want 150 each", mr.Metric, a.ControlUnits, a.ArmUnits)
		}
	}
	for k, want := range map[string]float64{"ttft/control": 0.5, "ttft/small": 0.2, "cost/control": 0.03, "cost/small": 0.0015} {
		if got, ok := byName[k]; !ok || math.Abs(got-want) > 1e-9 {
			t.Errorf("%s: %v (computed: %v), want %v; notes %v", k, got, ok, want, res.Notes)
		}
	}
	if res.Decision.Verdict != stats.Ship || res.Decision.Winner != "small" {
		t.Errorf("a faster, cheaper arm on 150 units each: %+v", res.Decision)
	}
}
