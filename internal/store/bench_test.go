package store

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/rollout"
)

// BenchmarkCommit is one durable transition (state and one event, fsynced): the floor under the
// time from an abort decision to the gateway serving stable only.
func BenchmarkCommit(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "aviary.db"), Options{MaxEvents: config.DefaultMaxEvents})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	st := rollout.State{Service: "shop", Phase: rollout.Degraded, Stable: "v1", Canary: "v2"}
	ev := []rollout.Event{{Service: "shop", Kind: "Aborted", Time: time.Now()}}
	for b.Loop() {
		st.Generation++
		if _, err := s.Commit("shop", st, ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLastEventsOfOneService reads one service's last 100 events among 10,000 of 50 services
// (the dashboard's first read of a rollout page).
func BenchmarkLastEventsOfOneService(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "aviary.db"), Options{MaxEvents: 20000})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := range 200 {
		for svc := range 50 {
			name := fmt.Sprintf("svc-%d", svc)
			ev := rollout.Event{Service: name, Kind: "StepStarted", Time: time.Now(), Reason: fmt.Sprintf("step %d of %s", i, name)}
			if _, err := s.Commit(name, rollout.State{Service: name, Generation: int64(i + 1)}, []rollout.Event{ev}); err != nil {
				b.Fatal(err)
			}
		}
	}
	for b.Loop() {
		evs, err := s.LastEvents("svc-7", 100)
		if err != nil || len(evs) != 100 {
			b.Fatalf("%d events, %v", len(evs), err)
		}
	}
}
