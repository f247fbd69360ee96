package admin

import (
	"encoding/json"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/k8s/api/v1alpha1"
	"aviary.dev/aviary/internal/rollout"
)

// withState is a Rollout shop/web whose status holds st.
func withState(t *testing.T, st rollout.State) *v1alpha1.Rollout {
	t.Helper()
	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	ro := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}
	ro.Status.State = &apiextensionsv1.JSON{Raw: raw}
	ro.Status.Phase = string(st.Phase)
	return ro
}

func TestAStatusChangeBecomesTheEventOfWhatTheCoreDid(t *testing.T) {
	healthy := rollout.State{Phase: rollout.Healthy, Stable: "a", SpecRelease: "a", Generation: 1}
	started := rollout.State{Phase: rollout.Paused, Stable: "a", Canary: "b", SpecRelease: "b", Weight: 20, Attempt: 1, Generation: 2}
	at := func(mod func(*rollout.State)) rollout.State {
		s := started
		s.Generation++
		mod(&s)
		return s
	}
	for _, tc := range []struct {
		name     string
		was, now rollout.State
		want     config.EventKind
	}{
		{"a new template", healthy, started, config.EventRolloutStarted},
		{"the next step", started, at(func(s *rollout.State) { s.StepIndex, s.Phase = 1, rollout.Progressing }), config.EventStepStarted},
		{"a pause", at(func(s *rollout.State) { s.Phase = rollout.Progressing }), at(func(s *rollout.State) { s.Generation++ }), config.EventPaused},
		{"a resume", started, at(func(s *rollout.State) { s.Phase = rollout.Progressing }), config.EventResumed},
		{"an abort", started, at(func(s *rollout.State) { s.Phase, s.Weight = rollout.Degraded, 0 }), config.EventAborted},
		{"a retry", at(func(s *rollout.State) { s.Phase = rollout.Degraded }), at(func(s *rollout.State) { s.Generation++; s.Attempt = 2 }), config.EventRetried},
		{"a restart", started, at(func(s *rollout.State) { s.Attempt = 2 }), config.EventRestarted},
		{"the end", started, rollout.State{Phase: rollout.Healthy, Stable: "b", Previous: "a", Generation: 9}, config.EventCompleted},
		{"an undo", rollout.State{Phase: rollout.Healthy, Stable: "b", Previous: "a", Generation: 9},
			rollout.State{Phase: rollout.Healthy, Stable: "a", Generation: 10}, config.EventUndone},
		{"the release set back", started, rollout.State{Phase: rollout.Healthy, Stable: "a", SpecRelease: "a", Generation: 9}, config.EventAborted},
		{"the release set back after an abort", at(func(s *rollout.State) { s.Phase = rollout.Degraded }),
			rollout.State{Phase: rollout.Healthy, Stable: "a", SpecRelease: "a", Generation: 9}, config.EventAborted},
		{"only the message", started, at(func(s *rollout.State) { s.Message = "waiting for pods" }), ""},
	} {
		evs := transitions(withState(t, tc.was), withState(t, tc.now), time.Unix(100, 0))
		if tc.want == "" {
			if len(evs) != 0 {
				t.Errorf("%s: events %+v, want none", tc.name, evs)
			}
			continue
		}
		if len(evs) != 1 || evs[0].Kind != tc.want {
			t.Errorf("%s: events %+v, want one %s", tc.name, evs, tc.want)
			continue
		}
		e := evs[0]
		by := "controller"
		if tc.now.SpecRelease != tc.was.SpecRelease {
			by = "deployment"
		}
		if e.Service != "shop/web" || e.Phase != tc.now.Phase || e.Stable != tc.now.Stable || e.Canary != tc.now.Canary ||
			e.Weight != tc.now.Weight || e.By != by {
			t.Errorf("%s: event %+v, want service shop/web with the new state, by %s", tc.name, e, by)
		}
	}
}

func TestACommandsEventNamesWhoSentItAndAVerdictComesFirst(t *testing.T) {
	was := withState(t, rollout.State{Phase: rollout.Paused, Stable: "a", Canary: "b", Weight: 20, Generation: 2})
	was.Status.Analysis = []v1alpha1.CheckStatus{{ID: "c1", Kind: rollout.StepAnalysis, Phase: string(rollout.Running)}}
	now := withState(t, rollout.State{Phase: rollout.Degraded, Stable: "a", Canary: "b", Generation: 3, Message: "aborted"})
	now.Status.Analysis = []v1alpha1.CheckStatus{{ID: "c1", Kind: rollout.StepAnalysis, Phase: string(rollout.Fail), Message: "errors 3x"}}
	now.Status.LastCommand = &v1alpha1.CommandStatus{ID: "x", Kind: "abort", By: "api:ana"}
	evs := transitions(was, now, time.Unix(100, 0))
	if len(evs) != 2 || evs[0].Kind != config.EventAnalysisFailed || evs[0].Reason != "errors 3x" || evs[0].By != "controller" ||
		evs[1].Kind != config.EventAborted || evs[1].By != "api:ana" || evs[1].Reason != "aborted" {
		t.Fatalf("events %+v, want AnalysisFailed by the controller, then Aborted by api:ana", evs)
	}
	// The same status again (a resync) is no news.
	if evs := transitions(now, now, time.Unix(101, 0)); len(evs) != 0 {
		t.Errorf("a resync made events %+v", evs)
	}
	// A Rollout the controller has not written yet makes none.
	if evs := transitions(&v1alpha1.Rollout{}, now, time.Unix(101, 0)); len(evs) != 0 {
		t.Errorf("a first status made events %+v", evs)
	}
}

func TestTheEventLogNumbersKeepsTheLastAndFilters(t *testing.T) {
	var l eventLog
	for i := range maxEvents + 5 {
		svc := "a/x"
		if i%2 == 1 {
			svc = "b/y"
		}
		l.add([]rollout.Event{{Service: svc}})
	}
	if n := len(l.events); n != maxEvents || l.events[0].Seq != 6 {
		t.Fatalf("%d events kept from seq %d, want %d from 6", n, l.events[0].Seq, maxEvents)
	}
	got := l.after("b/y", maxEvents, 3) // two of b/y are left after that
	if len(got) != 2 || got[0].Seq != maxEvents+2 || got[1].Seq != maxEvents+4 {
		t.Errorf("after: %+v", got)
	}
	if got := l.after("", maxEvents+5, 10); len(got) != 0 {
		t.Errorf("after the last: %+v", got)
	}
	last := l.last("a/x", 2)
	if len(last) != 2 || last[0].Seq != maxEvents+3 || last[1].Seq != maxEvents+5 {
		t.Errorf("last: %+v", last)
	}
}

func TestAServiceNameIsNamespaceSlashName(t *testing.T) {
	if k, err := keyOf("shop/web"); err != nil || k.Namespace != "shop" || k.Name != "web" {
		t.Errorf("shop/web: %v %v", k, err)
	}
	for _, bad := range []string{"web", "/web", "shop/", "a/b/c"} {
		if _, err := keyOf(bad); err == nil {
			t.Errorf("%q was taken", bad)
		}
	}
}

func TestACommandNamesTheEventOfWhatItDid(t *testing.T) {
	inFlight := rollout.State{Phase: rollout.Paused, Stable: "a", Canary: "b", Weight: 20, Generation: 2}
	for _, tc := range []struct {
		cmd      rollout.CommandKind
		was, now rollout.State
		want     config.EventKind
	}{
		{rollout.Promote, inFlight, rollout.State{Phase: rollout.Progressing, Stable: "a", Canary: "b", Weight: 50, StepIndex: 1, Generation: 3}, config.EventPromoted},
		{rollout.Promote, inFlight, rollout.State{Phase: rollout.Healthy, Stable: "b", Previous: "a", Generation: 3}, config.EventCompleted},
		// An undo whose old stable is no longer warm rolls it out again: the core's event is Undone.
		{rollout.Undo, rollout.State{Phase: rollout.Healthy, Stable: "b", Previous: "a", Generation: 5},
			rollout.State{Phase: rollout.Progressing, Stable: "b", Canary: "a", Generation: 6}, config.EventUndone},
		{rollout.PauseCmd, inFlight, rollout.State{Phase: rollout.Paused, Stable: "a", Canary: "b", Weight: 20, Generation: 3}, config.EventPaused},
	} {
		was, now := withState(t, tc.was), withState(t, tc.now)
		now.Status.LastCommand = &v1alpha1.CommandStatus{ID: "c", Kind: string(tc.cmd), By: "cli:ana"}
		evs := transitions(was, now, time.Unix(100, 0))
		if len(evs) != 1 || evs[0].Kind != tc.want || evs[0].By != "cli:ana" {
			t.Errorf("%s: events %+v, want one %s by cli:ana", tc.cmd, evs, tc.want)
		}
	}
}
