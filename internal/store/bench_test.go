package store

import (
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
