package store

import (
	"path/filepath"
	"testing"
	"time"
)

// The first exposure of a key to a variant is kept once, across reopening the store; counts are by
// variant and by distinct key.
func TestExposuresAreKeptOncePerKeyAndVariant(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aviary.db")
	s, err := Open(path, Options{MaxEvents: 100})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	added, _, err := s.AddExposures([]Exposure{
		{Flag: "checkout", Variant: "off", Key: "u1", Time: t0},
		{Flag: "checkout", Variant: "off", Key: "u1", Time: t0.Add(time.Second)}, // again: not new
		{Flag: "checkout", Variant: "on", Key: "u1", Time: t0.Add(2 * time.Second)},
		{Flag: "checkout", Variant: "off", Key: "u2", Time: t0.Add(3 * time.Second)},
		{Flag: "other", Variant: "a", Key: "u1", Time: t0},
		{Flag: "checkout", Variant: "off", Key: ""}, // no key: no unit
	})
	if err != nil || added != 4 {
		t.Fatalf("added %d, err %v; want 4", added, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path, Options{MaxEvents: 100}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if added, _, _ := s.AddExposures([]Exposure{{Flag: "checkout", Variant: "on", Key: "u1", Time: t0}}); added != 0 {
		t.Fatalf("an exposure kept before the restart was added again")
	}
	c, err := s.Exposures("checkout", 2)
	if err != nil {
		t.Fatal(err)
	}
	if c.Units != 2 || c.ByVariant["off"] != 2 || c.ByVariant["on"] != 1 {
		t.Errorf("counts %+v", c)
	}
	if len(c.Recent) != 2 || c.Recent[0].Key != "u2" || c.Recent[1].Variant != "on" {
		t.Errorf("recent %+v; want u2's off, then u1's on", c.Recent)
	}
	if c, _ := s.Exposures("nope", 5); c.Units != 0 || len(c.Recent) != 0 {
		t.Errorf("unknown flag: %+v", c)
	}
}
