package rollout_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/rollout"
)

func TestPlanOfAHealthyService(t *testing.T) {
	t.Parallel()
	r := newRun(t, pausedCanary)
	p := rollout.PlanOf(r.state)
	if want := (rollout.Plan{Stable: "v1", Admitted: -1}); !reflect.DeepEqual(p, want) {
		t.Fatalf("plan %+v, want %+v", p, want)
	}
	// v2 and v3 are in the spec but nobody can reach them: they are not served (nor checked).
	assertEndpoints(t, r.served(), "v1", 2)
	r.serves("v1=100")
}

// userRoutesYAML is a managed service with a route and a mirror of its own, both to v3.
const userRoutesYAML = `
services:
  - name: shop
    versions:
      - {name: v1, endpoints: ["http://127.0.0.1:9001"]}
      - {name: v2, endpoints: ["http://127.0.0.1:9101"]}
      - {name: v3, endpoints: ["http://127.0.0.1:9201"]}
      - {name: v4, endpoints: ["http://127.0.0.1:9301"]}
    routes: [{match: {header: {name: X-Team, value: search}}, version: v3}]
    mirror: {version: v3, percent: 5, maxBodyBytes: 1000}
    release: v1
    strategy: {canary: {steps: [
      {setHeaderRoute: {match: {header: {name: X-Employee, value: "true"}}}}, {setWeight: 10}, {pause: {}},
      {setMirror: {percent: 30}}, {pause: {}}]}}
`

func TestPlanServiceAppendsTheSegmentRouteAndOwnsTheMirror(t *testing.T) {
	t.Parallel()
	r := newRunOf(t, parseService(t, userRoutesYAML))
	assertEndpoints(t, r.served(), "v1", 1, "v3", 1) // v3 stays: the user's route and mirror name it

	r.release("v2").expect(rollout.Paused, 10, 2).serves("v1=90 v2=10")
	svc := r.served()
	assertEndpoints(t, svc, "v1", 1, "v2", 1, "v3", 1) // v4 is nobody's
	if len(svc.Routes) != 2 || svc.Routes[0].Version != "v3" || svc.Routes[1].Version != "v2" || svc.Routes[1].Match.Header.Name != "X-Employee" {
		t.Fatalf("routes %+v: want the user's first, then the segment", svc.Routes)
	}
	if svc.Mirror == nil || svc.Mirror.Version != "v3" || svc.Mirror.Percent != 5 {
		t.Fatalf("without a mirror step the user's mirror stays: %+v", svc.Mirror)
	}
	if len(r.svc.Routes) != 1 {
		t.Fatalf("Plan.Service wrote into the spec's routes: %+v", r.svc.Routes)
	}

	r.do(rollout.Promote).expect(rollout.Paused, 10, 4)
	if m := r.served().Mirror; m == nil || *m != (config.Mirror{Version: "v2", Percent: 30, MaxBodyBytes: 1000}) {
		t.Fatalf("the mirror step mirrors to the canary, with the user's body limit: %+v", m)
	}
}

// The served service is an unmanaged, valid config service: the gateway requires that.
func TestPlanServiceIsValidConfig(t *testing.T) {
	t.Parallel()
	r := newRunOf(t, parseService(t, userRoutesYAML)).release("v2")
	svc := r.served()
	if svc.Release != "" || svc.Strategy != nil {
		t.Fatalf("served service keeps release %q / strategy %v: its weights are the plan's", svc.Release, svc.Strategy)
	}
	cfg, err := config.Parse([]byte(userRoutesYAML))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Services = []config.Service{svc}
	if errs := cfg.Validate(); len(errs) > 0 {
		t.Fatalf("served service does not validate: %v", errs)
	}
}

func TestPlanServiceTrimsEndpoints(t *testing.T) {
	t.Parallel()
	svc := shopService(t, pausedCanary) // v1: 2 endpoints, v2: 3
	tests := []struct {
		plan rollout.Plan
		want []any
	}{
		{rollout.Plan{Stable: "v1", Canary: "v2", Admitted: -1}, []any{"v1", 2, "v2", 3}},
		{rollout.Plan{Stable: "v1", Canary: "v2", Admitted: 2, Withdrawn: 1}, []any{"v1", 1, "v2", 2}},
		// A canary always keeps an endpoint (weight 0 then), and so does the stable.
		{rollout.Plan{Stable: "v1", Canary: "v2", Admitted: 0, Withdrawn: 5}, []any{"v1", 1, "v2", 1}},
		{rollout.Plan{Stable: "v1", Canary: "v2", Admitted: 9}, []any{"v1", 2, "v2", 3}},
	}
	for _, tt := range tests {
		got := tt.plan.Service(svc)
		assertEndpoints(t, got, tt.want...)
		if len(svc.Versions[0].Endpoints) != 2 || len(svc.Versions[1].Endpoints) != 3 {
			t.Fatal("Plan.Service trimmed the spec's own endpoint lists")
		}
	}
}

// A version that left the spec is left out; the stable then takes all the traffic.
func TestPlanServiceWithAVersionMissingFromTheSpec(t *testing.T) {
	t.Parallel()
	svc := shopService(t, pausedCanary)
	got := rollout.Plan{Stable: "v1", Canary: "v9", Weight: 40, Admitted: -1, Warm: "v8"}.Service(svc)
	assertEndpoints(t, got, "v1", 2)
	if len(got.Traffic) != 1 || got.Traffic[0] != (config.Traffic{Version: "v1", Weight: 100}) {
		t.Fatalf("traffic %+v", got.Traffic)
	}
	if err := servedValidates(got); err != nil {
		t.Fatal(err)
	}
}

// The previous stable stays routable (served, checked, without traffic) until WarmUntil; then a
// tick scales it down.
func TestWarmPreviousUntilScaleDown(t *testing.T) {
	t.Parallel()
	r := newRun(t, `{scaleDownDelay: 5m, canary: {steps: [{setWeight: 50}, {pause: {}}]}}`).release("v2").do(rollout.Promote)
	r.expect(rollout.Healthy, 0, 2).serves("v2=100")
	if p := rollout.PlanOf(r.state); p.Warm != "v1" || p.Canary != "" {
		t.Fatalf("plan %+v", p)
	}
	assertEndpoints(t, r.served(), "v2", 3, "v1", 2)
	r.tick(5*time.Minute - time.Second).quiet()
	r.tick(time.Second).saw("ScaledDown").serves("v2=100")
	assertEndpoints(t, r.served(), "v2", 3)
	if !r.state.WarmUntil.IsZero() || r.state.Previous != "v1" {
		t.Fatalf("after scale-down: warm until %v, previous %q (undo still knows it)", r.state.WarmUntil, r.state.Previous)
	}
}

// The warm window ends when it ends, whatever the rollout does meanwhile: a version nobody can
// reach is not kept serving by a rollout that started or aborted since.
func TestWarmPreviousScaledDownWhileAnotherRolloutRuns(t *testing.T) {
	t.Parallel()
	for _, then := range []string{"in flight", "aborted"} {
		r := newRun(t, `{scaleDownDelay: 5m, canary: {steps: [{setWeight: 50}, {pause: {}}]}}`).release("v2").do(rollout.Promote)
		r.release("v3")
		if then == "aborted" {
			r.do(rollout.Abort)
		}
		assertEndpoints(t, r.served(), "v2", 3, "v3", 1, "v1", 2)
		r.tick(5 * time.Minute).saw("ScaledDown")
		assertEndpoints(t, r.served(), "v2", 3, "v3", 1)
	}
}

// PlanOf is a function of the stored state: a state read back from the store serves the same.
func TestPlanSurvivesAStoreRoundTrip(t *testing.T) {
	t.Parallel()
	r := newRunOf(t, parseService(t, userRoutesYAML)).release("v2").do(rollout.Promote)
	b, err := json.Marshal(r.state)
	if err != nil {
		t.Fatal(err)
	}
	var back rollout.State
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rollout.PlanOf(back), rollout.PlanOf(r.state)) {
		t.Fatalf("plan after a round trip %+v, before %+v", rollout.PlanOf(back), rollout.PlanOf(r.state))
	}
	if next, events := rollout.Tick(back, r.input()); next.Generation != back.Generation || len(events) > 0 {
		t.Fatalf("a restored state moved on a tick that saw nothing new: %v", kinds(events))
	}
}
