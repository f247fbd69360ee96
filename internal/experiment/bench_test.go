package experiment

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/store"
)

// BenchmarkResults reads the results of a flag experiment with 20,000 units and a purchase each
// for a tenth of them: computed from the store (each read after a write), and cached (the store
// unchanged since the last read).
func BenchmarkResults(b *testing.B) {
	s, err := store.Open(filepath.Join(b.TempDir(), "aviary.db"), store.Options{MaxEvents: 10})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	c := &clock{t: t0}
	m := New(Options{Store: s, Specs: func() []config.Experiment { return []config.Experiment{spec()} }, Now: c.now})
	if _, err := m.Start("checkout"); err != nil {
		b.Fatal(err)
	}
	var exps []store.Exposure
	var evs []store.TrackedEvent
	for i := 0; i < 20000; i++ {
		key := fmt.Sprintf("user-%05d", i)
		exps = append(exps, store.Exposure{Flag: "new-checkout", Variant: []string{"off", "on"}[i%2], Key: key, Time: t0})
		if i%10 == 0 {
			evs = append(evs, store.TrackedEvent{ID: key, Unit: key, Event: "purchase", Value: 30, Time: t0.Add(time.Minute)})
		}
	}
	if _, _, err := s.AddExposures(exps); err != nil {
		b.Fatal(err)
	}
	if err := m.AddRecords(evs); err != nil {
		b.Fatal(err)
	}
	b.Run("computed", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			c.t = c.t.Add(ResultsMaxAge) // and the store changed: computed again
			if _, _, err := s.AddExposures([]store.Exposure{{Flag: "other", Variant: "x", Key: fmt.Sprint(i), Time: t0}}); err != nil {
				b.Fatal(err)
			}
			if _, err := m.Results("checkout"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			c.t = c.t.Add(time.Minute) // however late: the store did not change
			if _, err := m.Results("checkout"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
