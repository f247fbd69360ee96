package rollout_test

import (
	"errors"
	"strings"
	"testing"

	"aviary.dev/aviary/internal/rollout"
)

// Every answer to `aviary rollout start`: a retry, a start, a change of the spec, or a conflict,
// by the spec's release, the rollout's phase and versions, and whether endpoints come along.
func TestDecideStart(t *testing.T) {
	t.Parallel()
	state := func(p rollout.Phase, stable, canary string) rollout.State {
		return rollout.State{Service: "shop", Phase: p, Stable: stable, Canary: canary}
	}
	const spec, cmd, conflict = "spec", "cmd", "conflict"
	for _, tc := range []struct {
		name        string
		specRelease string
		st          rollout.State
		managed     bool
		version     string
		endpoints   bool
		want        string              // spec, cmd or conflict
		kind        rollout.CommandKind // the command's kind, when cmd
	}{
		{"a new release", "v1", state(rollout.Healthy, "v1", ""), true, "v2", false, spec, ""},
		{"a new release while one is in flight", "v2", state(rollout.Paused, "v1", "v2"), true, "v3", false, spec, ""},
		{"a service with no rollout yet", "", rollout.State{}, false, "v1", false, spec, ""},
		{"the release with new endpoints", "v2", state(rollout.Progressing, "v1", "v2"), true, "v2", true, spec, ""},
		{"the aborted release", "v2", state(rollout.Degraded, "v1", "v2"), true, "v2", false, cmd, rollout.Retry},
		{"the release after an undo", "v2", state(rollout.Healthy, "v1", ""), true, "v2", false, cmd, rollout.StartCmd},
		{"the release after an abort of another", "v2", state(rollout.Degraded, "v1", "v3"), true, "v2", false, cmd, rollout.StartCmd},
		{"the release in flight", "v2", state(rollout.Progressing, "v1", "v2"), true, "v2", false, conflict, ""},
		{"the paused release", "v2", state(rollout.Paused, "v1", "v2"), true, "v2", false, conflict, ""},
		{"the stable release", "v1", state(rollout.Healthy, "v1", ""), true, "v1", false, conflict, ""},
	} {
		got, err := rollout.DecideStart(tc.specRelease, tc.st, tc.managed,
			rollout.StartRequest{Service: "shop", Version: tc.version, Endpoints: tc.endpoints, By: "ann"})
		var ce *rollout.ConflictError
		switch tc.want {
		case spec:
			if got != nil || err != nil {
				t.Errorf("%s: %+v, %v; want the spec to change", tc.name, got, err)
			}
		case cmd:
			if err != nil || got == nil || got.Kind != tc.kind || got.By != "ann" ||
				(tc.kind == rollout.StartCmd && got.Version != tc.version) {
				t.Errorf("%s: %+v, %v; want a %s by ann", tc.name, got, err, tc.kind)
			}
		case conflict:
			if got != nil || !errors.As(err, &ce) || !strings.Contains(ce.Msg, tc.version+" is already the release of shop") ||
				!strings.Contains(ce.Msg, "aviary rollout status shop") {
				t.Errorf("%s: %+v, %v; want a conflict that says where to look", tc.name, got, err)
			}
		}
	}
}
