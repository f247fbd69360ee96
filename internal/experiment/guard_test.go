package experiment

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"aviary.dev/aviary/internal/bucket"
	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/internal/store"
)

// judgeFake stands for the canary judge (the e2e test uses the real analyzer on the real
// gateway): it fails the runs whose canary is in fail, and records what it was asked.
type judgeFake struct {
	mu      sync.Mutex
	fail    map[string]string // canary → message
	asked   []rollout.Run
	forgot  []string
	evEnded []string
}

func (j *judgeFake) Verdict(r rollout.Run) rollout.Verdict {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.asked = append(j.asked, r)
	if msg, ok := j.fail[r.Canary]; ok {
		return rollout.Verdict{Phase: rollout.Fail, Message: msg}
	}
	return rollout.Verdict{Phase: rollout.Running}
}

func (j *judgeFake) Forget(id string)          { j.forgot = append(j.forgot, id) }
func (j *judgeFake) RolloutEnded(owner string) { j.evEnded = append(j.evEnded, owner) }

func guardedSpec() config.Experiment {
	e := config.Experiment{Name: "checkout", Service: "shop",
		Arms: []config.ExperimentArm{{Name: "control", Version: "v1"}, {Name: "green", Version: "v2"}, {Name: "blue", Version: "v3"}},
		Metrics: []config.ExperimentMetric{
			{Name: "conversion", Event: "purchase"},
			{Name: "errors", Builtin: config.BuiltinErrorRate, Guardrail: true},
		}}
	e.ApplyDefaults()
	return e
}

// A guardrail that fails stops its arm at once and for good: the state (kept in the store, so a
// restart keeps it) and the results say so, an event explains it, the arm's units' events after
// the stop do not count, and the arm cannot win.
func TestGuardrailStopsAnArm(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aviary.db")
	s, err := store.Open(path, store.Options{MaxEvents: 10})
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: t0}
	j := &judgeFake{fail: map[string]string{}}
	var changes [][]rollout.Event
	m := New(Options{Store: s, Specs: func() []config.Experiment { return []config.Experiment{guardedSpec()} }, Now: c.now,
		Judge: j, OnChange: func(evs []rollout.Event) { changes = append(changes, evs) }})
	if _, err := m.Start("checkout"); err != nil {
		t.Fatal(err)
	}
	var exps []store.Exposure
	var evs []store.TrackedEvent
	for i := 0; i < 3000; i++ {
		key := fmt.Sprintf("user-%d", i)
		exps = append(exps, store.Exposure{Flag: VersionExposures("shop"), Variant: []string{"v1", "v2", "v3"}[i%3], Key: key, Time: t0.Add(time.Second)})
		if i%3 == 1 { // green's users all buy, but only after green was stopped
			evs = append(evs, store.TrackedEvent{ID: key, Unit: key, Event: "purchase", Time: t0.Add(2 * time.Hour)})
		}
	}
	if _, _, err := s.AddExposures(exps); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Track(evs); err != nil {
		t.Fatal(err)
	}
	if err := m.Guard(); err != nil {
		t.Fatal(err)
	}
	if len(j.asked) != 2 || j.asked[0].Service != "shop" || j.asked[0].Stable != "v1" || j.asked[0].Canary != "v2" ||
		j.asked[0].Templates[0] != "experiment:checkout" || j.asked[0].Kind != rollout.BackgroundAnalysis {
		t.Fatalf("the judge was asked %+v", j.asked)
	}
	c.t = t0.Add(time.Hour)
	j.fail["v2"] = "errors: canary 3.1% vs stable 0.5% of requests (margin 1.2×); regression"
	if err := m.Guard(); err != nil {
		t.Fatal(err)
	}
	want := "green stopped: errors guardrail, canary 3.1% vs stable 0.5%"
	if len(changes) != 2 || len(changes[1]) != 1 || changes[1][0].Kind != config.EventArmStopped ||
		changes[1][0].Experiment != "checkout" || !strings.HasPrefix(changes[1][0].Reason, want) || changes[1][0].Seq == 0 {
		t.Fatalf("changes %+v", changes)
	}
	if len(j.forgot) != 1 || !strings.HasSuffix(j.forgot[0], "/green/guardrail") {
		t.Errorf("the judge forgot %v", j.forgot)
	}
	// The stopped arm is asked about no more; blue still is.
	j.asked = nil
	if err := m.Guard(); err != nil || len(j.asked) != 1 || j.asked[0].Canary != "v3" {
		t.Errorf("after the stop the judge was asked %+v (%v)", j.asked, err)
	}
	s.Close()

	// A restart: a new manager on the same store knows green is stopped.
	s, err = store.Open(path, store.Options{MaxEvents: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	m = New(Options{Store: s, Specs: func() []config.Experiment { return []config.Experiment{guardedSpec()} }, Now: c.now, Judge: j})
	res, err := m.Results("checkout")
	if err != nil {
		t.Fatal(err)
	}
	if res.Arms[1].Stopped == nil || res.Arms[1].Stopped.Metric != "errors" || res.Arms[2].Stopped != nil {
		t.Errorf("arms %+v", res.Arms)
	}
	if res.Metrics[0].Arms[0].ArmMean != 0 {
		t.Errorf("green's conversion %v counts purchases made after it was stopped", res.Metrics[0].Arms[0].ArmMean)
	}
	if res.Decision.Winner != "" || !strings.Contains(res.Decision.Text, want) {
		t.Errorf("decision %+v", res.Decision)
	}
	running, _ := m.Running()
	if len(running) != 1 || len(running[0].State.StoppedArms) != 1 {
		t.Errorf("running %+v", running)
	}
	// Stopping the experiment lets the judge drop its guardrail evidence.
	if _, err := m.Stop("checkout"); err != nil || len(j.evEnded) != 1 || j.evEnded[0] != "experiment:checkout" {
		t.Errorf("stop: %v, evidence ended %v", err, j.evEnded)
	}
	if _, err := m.StopArm("checkout", "control", "", "", "test"); err == nil {
		t.Error("control was stopped")
	}
}

// Only the experiment's traffic share is counted: the units whose traffic draw falls outside it
// got control and are not in the results, whichever arm's exposure they have.
func TestTrafficShareCountsOnlyItsUnits(t *testing.T) {
	_, s, _ := setup(t)
	e := spec()
	e.Traffic = 20
	var exps []store.Exposure
	in := 0
	for i := 0; i < 5000; i++ {
		key := fmt.Sprintf("user-%d", i)
		exps = append(exps, store.Exposure{Flag: "new-checkout", Variant: []string{"off", "on"}[i%2], Key: key, Time: t0})
		if bucket.InShare(bucket.Of(bucket.TrafficSalt(e.Name), key), 20) {
			in++
		}
	}
	if _, _, err := s.AddExposures(exps); err != nil {
		t.Fatal(err)
	}
	res, err := Compute(e, store.ExperimentState{Started: t0}, s, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Arms[0].Units + res.Arms[1].Units; got != in || in < 900 || in > 1100 {
		t.Errorf("%d units counted, %d in the 20%% share", got, in)
	}
}
