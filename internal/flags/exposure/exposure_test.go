package exposure

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"aviary.dev/aviary/internal/flags"
	"aviary.dev/aviary/internal/store"
)

// Every evaluation that gives a keyed user a variant is an exposure; the store keeps the first of
// each key and variant, from many goroutines at once, and Close flushes what is queued.
func TestEvaluationsBecomeExposuresOncePerKeyAndVariant(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "aviary.db"), store.Options{MaxEvents: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec := New(Options{Sink: st, Track: func(flag, key string) string { return "stable" }})
	set, err := flags.Parse([]byte(`{"flags": {"checkout": {"state": "ENABLED", "variants": {"on": true, "off": false},
  "defaultVariant": "off", "targeting": {"fractional": [["on", 50], ["off", 50]]}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	ev := &flags.Evaluator{Exposed: rec.Exposed}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				ev.Evaluate(set, "checkout", flags.Context{flags.TargetingKey: fmt.Sprintf("user-%d", i)})
				ev.EvaluateAll(set, flags.Context{flags.TargetingKey: fmt.Sprintf("user-%d", i+g)})
			}
		})
	}
	wg.Wait()
	ev.Evaluate(set, "checkout", flags.Context{}) // no key: no unit, no exposure
	rec.Close()
	rec.Exposed("checkout", "late", "on") // after Close: dropped, no panic
	c, err := st.Exposures("checkout", 1)
	if err != nil {
		t.Fatal(err)
	}
	if c.Units != 503 || c.ByVariant["on"]+c.ByVariant["off"] != 503 {
		t.Fatalf("exposures %+v; want 503 users, one variant each", c)
	}
	if c.ByVariant["on"] < 200 || c.ByVariant["off"] < 200 {
		t.Errorf("a 50/50 split stored as %v", c.ByVariant)
	}
	if c.Recent[0].Track != "stable" {
		t.Errorf("track not recorded: %+v", c.Recent[0])
	}
}
