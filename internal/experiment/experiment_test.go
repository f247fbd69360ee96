package experiment

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/experiment/stats"
	"aviary.dev/aviary/internal/store"
)

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func spec() config.Experiment {
	e := config.Experiment{Name: "checkout", Flag: "new-checkout",
		Arms: []config.ExperimentArm{{Name: "off", Variant: "off"}, {Name: "on", Variant: "on"}},
		Metrics: []config.ExperimentMetric{
			{Name: "conversion", Event: "purchase"},
			{Name: "revenue", Event: "purchase", Value: "amount"},
		}}
	e.ApplyDefaults()
	return e
}

func setup(t *testing.T) (*Manager, *store.Store, *clock) {
	t.Helper()
	s, err := store.Open(filepath.Join(t.TempDir(), "aviary.db"), store.Options{MaxEvents: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c := &clock{t: t0}
	m := New(Options{Store: s, Specs: func() []config.Experiment { return []config.Experiment{spec()} }, Now: c.now})
	return m, s, c
}

// A flag experiment end to end over the real store: 20,000 users, "on" converts 12% against 10%,
// some events before exposure (which must not count), a retried batch (which must count once).
func TestFlagExperimentFindsTheWinner(t *testing.T) {
	m, s, c := setup(t)
	if _, err := m.Results("checkout"); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("results before start: %v", err)
	}
	if _, err := m.Start("checkout"); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 8))
	var exps []store.Exposure
	var evs []store.TrackedEvent
	for i := 0; i < 20000; i++ {
		key := fmt.Sprintf("user-%05d", i)
		variant, p := "off", 0.10
		if i%2 == 1 {
			variant, p = "on", 0.12
		}
		at := t0.Add(time.Duration(i) * time.Second)
		exps = append(exps, store.Exposure{Flag: "new-checkout", Variant: variant, Key: key, Time: at})
		// Every user bought once before the experiment: it must not count.
		evs = append(evs, store.TrackedEvent{ID: key + "-pre", Unit: key, Event: "purchase", Value: 100, Time: at.Add(-time.Minute)})
		if r.Float64() < p {
			evs = append(evs, store.TrackedEvent{ID: key + "-buy", Unit: key, Event: "purchase", Value: 30, Time: at.Add(time.Minute)})
		}
	}
	if _, _, err := s.AddExposures(exps); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(evs); i += MaxTrackBatch {
		batch := evs[i:min(i+MaxTrackBatch, len(evs))]
		if _, _, err := m.Track(batch); err != nil {
			t.Fatal(err)
		}
		if added, _, _ := m.Track(batch); added != 0 { // the client retries: nothing new
			t.Fatalf("a retried batch added %d events", added)
		}
	}
	// Events of a unit never exposed do not count either.
	if _, _, err := m.Track([]store.TrackedEvent{{ID: "x", Unit: "stranger", Event: "purchase", Value: 1e6, Time: t0}}); err != nil {
		t.Fatal(err)
	}
	c.t = t0.Add(24 * time.Hour)
	res, err := m.Results("checkout")
	if err != nil {
		t.Fatal(err)
	}
	if res.Arms[0].Units != 10000 || res.Arms[1].Units != 10000 || res.SRM.Mismatch {
		t.Errorf("arms %+v, SRM %+v", res.Arms, res.SRM)
	}
	conv := res.Metrics[0].Arms[0]
	if conv.ControlMean < 0.09 || conv.ControlMean > 0.11 || conv.ArmMean < 0.11 || conv.ArmMean > 0.13 {
		t.Errorf("conversion means %v and %v: the pre-exposure purchases were counted, or the lift lost", conv.ControlMean, conv.ArmMean)
	}
	if res.Decision.Verdict != stats.Ship || res.Decision.Winner != "on" ||
		!strings.HasPrefix(res.Decision.Text, "on beats off on conversion by +") {
		t.Errorf("decision %+v", res.Decision)
	}

	var csvOut bytes.Buffer
	if err := m.Units("checkout", &csvOut); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&csvOut).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 20001 || strings.Join(rows[0], ",") != "unit,arm,exposed,conversion,conversion_pre,revenue,revenue_pre" ||
		rows[1][0] != "user-00000" || rows[1][1] != "off" || rows[1][4] != "1" || rows[1][6] != "100" {
		t.Errorf("CSV head %v, first row %v, %d rows", rows[0], rows[1], len(rows))
	}

	// A unit later given the other variant stays in its first arm, counted as crossed over.
	if _, _, err := s.AddExposures([]store.Exposure{{Flag: "new-checkout", Variant: "on", Key: "user-00000", Time: c.t}}); err != nil {
		t.Fatal(err)
	}
	if again, _ := m.Results("checkout"); again.At != res.At || again.Crossovers != 0 {
		t.Errorf("read again within %s, the results were computed anew: %v, %d crossovers", ResultsMaxAge, again.At, again.Crossovers)
	}
	c.t = c.t.Add(ResultsMaxAge)
	if res, _ := m.Results("checkout"); res.Crossovers != 1 || res.Arms[0].Units != 10000 {
		t.Errorf("crossovers %d, arms %+v", res.Crossovers, res.Arms)
	}

	// Stopped: later units and events no longer count, and it stays stopped.
	if _, err := m.Stop("checkout"); err != nil {
		t.Fatal(err)
	}
	late := store.Exposure{Flag: "new-checkout", Variant: "on", Key: "late", Time: c.t.Add(time.Hour)}
	if _, _, err := s.AddExposures([]store.Exposure{late}); err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(2 * time.Hour)
	if res2, _ := m.Results("checkout"); res2.Arms[1].Units != 10000 || res2.Phase != store.ExperimentStopped {
		t.Errorf("after stop: %+v", res2.Arms)
	}
	if _, err := m.Start("checkout"); err == nil || !strings.Contains(err.Error(), "stays stopped") {
		t.Errorf("restarting a stopped experiment: %v", err)
	}
}

func TestTrackRefusesBadEventsAllAtOnce(t *testing.T) {
	m, _, _ := setup(t)
	_, _, err := m.Track([]store.TrackedEvent{{Unit: "u", Event: "e"}, {ID: "1", Event: "e"}})
	for _, w := range []string{"events[0].id", "events[1].unit"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("want %q in %v", w, err)
		}
	}
	if _, _, err := m.Track(nil); err == nil {
		t.Error("an empty batch was accepted")
	}
	if _, err := m.Start("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("start of an unknown experiment: %v", err)
	}
}

// Arms that are versions read the exposures the gateway reported under VersionExposures.
func TestVersionArmsReadTheGatewaysExposures(t *testing.T) {
	_, s, _ := setup(t)
	e := spec()
	e.Flag, e.Service = "", "shop"
	e.Arms = []config.ExperimentArm{{Name: "control", Version: "v1", Weight: 1}, {Name: "green", Version: "v2", Weight: 1}}
	var exps []store.Exposure
	for i := 0; i < 300; i++ {
		exps = append(exps, store.Exposure{Flag: VersionExposures("shop"), Variant: []string{"v1", "v2"}[i%2], Key: fmt.Sprint(i), Time: t0})
	}
	if _, _, err := s.AddExposures(exps); err != nil {
		t.Fatal(err)
	}
	res, err := Compute(e, store.ExperimentState{Started: t0}, s, t0.Add(time.Hour))
	if err != nil || res.Arms[0].Units != 150 || res.Arms[1].Units != 150 {
		t.Errorf("arms %+v, %v", res.Arms, err)
	}
}

// Conclude ships a version arm through the rollout API (a recording Ship here; the e2e test uses
// the server's), refuses flag arms with what to do, and happens once.
func TestConcludeShipsTheVersion(t *testing.T) {
	s, err := store.Open(filepath.Join(t.TempDir(), "aviary.db"), store.Options{MaxEvents: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	svc := spec()
	svc.Name, svc.Flag, svc.Service = "button", "", "shop"
	svc.Arms = []config.ExperimentArm{{Name: "control", Version: "v1", Weight: 1}, {Name: "green", Version: "v2", Weight: 1}}
	var shipped []string
	m := New(Options{Store: s, Specs: func() []config.Experiment { return []config.Experiment{spec(), svc} }, Now: func() time.Time { return t0 },
		Ship: func(service, version, by string) error {
			shipped = append(shipped, service+"/"+version+" by "+by)
			return nil
		}})
	if err := m.StartAll(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Conclude("checkout", "on"); !errors.Is(err, ErrCannotConclude) || !strings.Contains(err.Error(), "aviary flag set") {
		t.Errorf("concluding a flag experiment: %v", err)
	}
	if _, err := m.Conclude("button", "blue"); !errors.Is(err, ErrCannotConclude) {
		t.Errorf("concluding with an unknown arm: %v", err)
	}
	st, err := m.Conclude("button", "green")
	if err != nil || st.Phase != store.ExperimentConcluded || st.Shipped != "green" || len(shipped) != 1 || shipped[0] != "shop/v2 by experiment button" {
		t.Errorf("conclude: %+v %v, shipped %v", st, err, shipped)
	}
	if _, err := m.Conclude("button", "green"); !errors.Is(err, ErrCannotConclude) || len(shipped) != 1 {
		t.Errorf("a second conclude: %v, shipped %v", err, shipped)
	}
}

// Conclude of a flag experiment ships the variant by a flag rollout (a recording ShipFlag here;
// the e2e test uses the server's); shipping control starts nothing.
func TestConcludeShipsTheFlagVariant(t *testing.T) {
	s, err := store.Open(filepath.Join(t.TempDir(), "aviary.db"), store.Options{MaxEvents: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	other := spec()
	other.Name = "other"
	var shipped []string
	m := New(Options{Store: s, Specs: func() []config.Experiment { return []config.Experiment{spec(), other} }, Now: func() time.Time { return t0 },
		ShipFlag: func(flag, variant, by string) error {
			shipped = append(shipped, flag+"="+variant+" by "+by)
			return nil
		}})
	if err := m.StartAll(); err != nil {
		t.Fatal(err)
	}
	st, err := m.Conclude("checkout", "on")
	if err != nil || st.Phase != store.ExperimentConcluded || len(shipped) != 1 || shipped[0] != "new-checkout=on by experiment checkout" {
		t.Errorf("conclude: %+v %v, shipped %v", st, err, shipped)
	}
	if _, err := m.Conclude("other", "off"); err != nil || len(shipped) != 1 {
		t.Errorf("shipping control: %v, shipped %v", err, shipped)
	}
}
