package source

import (
	"maps"
	"slices"

	"aviary.dev/aviary/internal/flags"
)

// SetOverlays makes these the overlays on the flags in force (the services the flags are bound to,
// and the flag rollouts' shares), replacing the last ones. The kill switch still wins: a disabled
// flag ignores its rollout.
func (s *Source) SetOverlays(o map[string]flags.Overlay) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if maps.EqualFunc(s.overlays, o, sameOverlay) {
		return nil
	}
	s.overlays = maps.Clone(o)
	return s.publish()
}

func sameOverlay(a, b flags.Overlay) bool {
	if a.Service != b.Service || (a.Rollout == nil) != (b.Rollout == nil) || (a.Experiment == nil) != (b.Experiment == nil) {
		return false
	}
	if x, y := a.Experiment, b.Experiment; x != nil && (x.Name != y.Name || x.Traffic != y.Traffic || x.Control != y.Control || !slices.Equal(x.Stopped, y.Stopped)) {
		return false
	}
	return a.Rollout == nil || *a.Rollout == *b.Rollout
}
