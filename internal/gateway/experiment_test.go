package gateway

import (
	"fmt"
	"sync"
	"testing"

	"aviary.dev/aviary/internal/bucket"
)

const experimentYAML = `
services:
  - name: shop
    match: {pathPrefix: /}
    versions: [{name: v1, endpoints: ["{{v1}}"]}, {name: v2, endpoints: ["{{v2}}"]}, {name: v3, endpoints: ["{{v3}}"]}]
    traffic: [{version: v1, weight: 100}]
    stickiness: {header: X-User}
`

// An experiment places sticky users by its own draws: only its traffic share sees an arm other
// than control, by the arms' weights; a stopped arm's users go back to control; the placement
// reported to Placed is the one served.
func TestExperimentPlacesStickyUsers(t *testing.T) {
	var mu sync.Mutex
	placed := map[string]string{}
	v1, v2, v3 := newUpstream(t, "v1", nil), newUpstream(t, "v2", nil), newUpstream(t, "v3", nil)
	f := newFixtureWith(t, Options{Gateway: defaultGateway(t), Placed: func(_, version, key string) {
		mu.Lock()
		placed[key] = version
		mu.Unlock()
	}}, experimentYAML, v1, v2, v3)
	x := Experiment{Name: "checkout", Service: "shop", Traffic: 40,
		Arms: []ExperimentArm{{Version: "v1", Weight: 1}, {Version: "v2", Weight: 2}, {Version: "v3", Weight: 1}}}
	f.gw.SetExperiments([]Experiment{x})
	const users = 2000
	served := map[string]int{}
	for i := 0; i < users; i++ {
		key := fmt.Sprint("user-", i)
		_, up := f.get(t, "/", "X-User: "+key)
		served[up]++
		in := bucket.InShare(bucket.Of(bucket.TrafficSalt("checkout"), key), 40)
		if !in && up != "v1" {
			t.Fatalf("%s is outside the experiment's 40%% and got %s, not control", key, up)
		}
		if placed[key] != up {
			t.Fatalf("%s was served by %s and reported on %q", key, up, placed[key])
		}
	}
	// 40% in: 10% control by weight, 20% v2, 10% v3; the other 60% control.
	for v, want := range map[string]float64{"v1": 0.7, "v2": 0.2, "v3": 0.1} {
		if got := float64(served[v]) / users; got < want-0.04 || got > want+0.04 {
			t.Errorf("%s served %.3f of the users, want about %.2f (%v)", v, got, want, served)
		}
	}

	// v2's arm is stopped: its users go back to control, the others keep their arm.
	x.Arms[1].Stopped = true
	f.gw.SetExperiments([]Experiment{x})
	for i := 0; i < users; i++ {
		key := fmt.Sprint("user-", i)
		before := placed[key]
		_, up := f.get(t, "/", "X-User: "+key)
		switch {
		case before == "v2" && up != "v1":
			t.Fatalf("%s of the stopped arm got %s, not control", key, up)
		case before != "v2" && up != before:
			t.Fatalf("%s moved from %s to %s when another arm stopped", key, before, up)
		}
	}
	if v, _, _ := f.gw.PlaceKey("shop", "user-1"); v != placed["user-1"] {
		t.Errorf("PlaceKey says %s, the request went to %s", v, placed["user-1"])
	}

	// Without the experiment the service's weights place everyone again.
	f.gw.SetExperiments(nil)
	if _, up := f.get(t, "/", "X-User: user-1"); up != "v1" {
		t.Errorf("after the experiment, user-1 got %s", up)
	}
}

// BenchmarkExperimentPlacement is the experiment's part of a sticky request's placement: two
// bucket draws and the arm's version. It must not allocate.
func BenchmarkExperimentPlacement(b *testing.B) {
	g, r := benchGateway(b, "    stickiness: {header: X-User-Id}\n")
	g.SetExperiments([]Experiment{{Name: "checkout", Service: "shop", Traffic: 50,
		Arms: []ExperimentArm{{Version: "v1", Weight: 1}, {Version: "v2", Weight: 1}}}})
	svc := g.snap.Load().find(r)
	b.ReportAllocs()
	for b.Loop() {
		if g.experimentVersion(svc, "user-42") == nil {
			b.Fatal("no version")
		}
	}
}
