package store

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/flags"
	"aviary.dev/aviary/internal/rollout"
)

// TestFlagsSurviveReopen: flags set through the API, their kill-switch states and the events that
// explain them are all there after the store is closed and opened again, and a removal removes.
func TestFlagsSurviveReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "aviary.db")
	s := open(t, path, Options{MaxEvents: 10})
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	def := json.RawMessage(`{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off"}`)
	evs, err := s.ChangeFlags(FlagChange{
		Put:    []StoredFlag{{Key: "new-checkout", Flag: def, SetAt: at, By: "api:ann"}, {Key: "old", Flag: def, SetAt: at, By: "api"}},
		States: []FlagState{{Key: "banner", State: flags.StateDisabled, At: at, By: "api:bob"}},
		Events: []rollout.Event{{Time: at, Flag: "banner", Kind: config.EventFlagDisabled, By: "api:bob"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Seq == 0 {
		t.Fatalf("events = %+v, want one numbered event", evs)
	}
	if _, err := s.ChangeFlags(FlagChange{Delete: []string{"old"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path, Options{MaxEvents: 10})
	stored, states, err := s.Flags()
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 1 || string(stored["new-checkout"].Flag) != string(def) || stored["new-checkout"].By != "api:ann" {
		t.Errorf("flags after reopen = %+v, want new-checkout only, as written", stored)
	}
	if st := states["banner"]; len(states) != 1 || st.State != flags.StateDisabled || st.By != "api:bob" || !st.At.Equal(at) {
		t.Errorf("states after reopen = %+v, want banner DISABLED by api:bob", states)
	}
	got, err := s.Events(EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Flag != "banner" || got[0].Kind != config.EventFlagDisabled || got[0].By != "api:bob" {
		t.Errorf("events after reopen = %+v, want the FlagDisabled event of banner by api:bob", got)
	}

	if _, err := s.ChangeFlags(FlagChange{States: []FlagState{{Key: "banner"}}}); err != nil {
		t.Fatal(err)
	}
	if _, states, _ = s.Flags(); len(states) != 0 {
		t.Errorf("states after removal = %+v, want none", states)
	}
}

// TestFlagChangeRefusesBadInput: an empty key or a definition that is not JSON changes nothing.
func TestFlagChangeRefusesBadInput(t *testing.T) {
	t.Parallel()
	s := open(t, filepath.Join(t.TempDir(), "aviary.db"), Options{MaxEvents: 10})
	for _, c := range []FlagChange{
		{Put: []StoredFlag{{Key: "", Flag: json.RawMessage(`{}`)}}},
		{Put: []StoredFlag{{Key: "a", Flag: json.RawMessage(`{`)}}},
		{States: []FlagState{{State: flags.StateDisabled}}},
	} {
		if _, err := s.ChangeFlags(c); err == nil {
			t.Errorf("ChangeFlags(%+v) = nil error, want one", c)
		}
	}
	if stored, states, _ := s.Flags(); len(stored)+len(states) != 0 {
		t.Errorf("after refused changes: %v %v, want nothing stored", stored, states)
	}
}
