package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/polltest"
	"aviary.dev/aviary/internal/rollout"
)

// specsYAML: shop is managed (release v1, strategy %s); plain has no release, its weights are the
// config's.
const specsYAML = testTemplates + `
services:
  - name: shop
    versions:
      - {name: v1, endpoints: ["http://127.0.0.1:9001"]}
      - {name: v2, endpoints: ["http://127.0.0.1:9101"]}
    release: v1
    strategy: %s
  - name: plain
    match: {pathPrefix: /plain}
    versions:
      - {name: a, endpoints: ["http://127.0.0.1:9301"]}
      - {name: b, endpoints: ["http://127.0.0.1:9302"]}
    traffic: [{version: a, weight: 70}, {version: b, weight: 30}]
`

// bench is a Controller wired to fakes, with a clock the test moves.
type bench struct {
	t        *testing.T
	store    *memStore
	router   *recordingRouter
	health   *healthBoard
	analysis *scriptedJudge
	gates    *scriptedJudge
	clock    *manualClock
	specs    []config.Service
	ctl      *rollout.Controller

	mu       sync.Mutex
	notified []rollout.Event
}

func newBench(t *testing.T, strategy string) *bench {
	t.Helper()
	cfg, err := config.Parse(fmt.Appendf(nil, specsYAML, strategy))
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{t: t, store: newMemStore(), router: &recordingRouter{}, health: &healthBoard{},
		analysis: newScriptedJudge(), gates: newScriptedJudge(), clock: &manualClock{t: t0}, specs: cfg.Services}
	b.ctl = b.newController()
	return b
}

// newController starts a controller on the bench's store, as a restart would.
func (b *bench) newController() *rollout.Controller {
	b.t.Helper()
	ctl, err := rollout.NewController(rollout.Options{Store: b.store, Router: b.router, Health: b.health,
		Analysis: b.analysis, Gates: b.gates, Now: b.clock.now, OnEvents: b.notify})
	if err != nil {
		b.t.Fatal(err)
	}
	return ctl
}

func (b *bench) notify(evs []rollout.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.notified = append(b.notified, evs...)
}

func (b *bench) notifiedKinds() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return kinds(b.notified)
}

// release sets shop's release and hands the specs to the controller.
func (b *bench) release(v string) error {
	b.specs[0].Release = v
	return b.ctl.SetSpecs(b.specs)
}

func (b *bench) state() rollout.State {
	b.t.Helper()
	st, ok := b.ctl.State("shop")
	if !ok {
		b.t.Fatal("shop has no state")
	}
	return st
}

func (b *bench) expect(phase rollout.Phase, weight, step int) {
	b.t.Helper()
	if st := b.state(); st.Phase != phase || st.Weight != weight || st.StepIndex != step {
		b.t.Fatalf("want %s, weight %d, step %d; got %s, weight %d, step %d (%s)", phase, weight, step, st.Phase, st.Weight, st.StepIndex, st.Message)
	}
}

// routerServes checks the traffic of the last plan the router was given.
func (b *bench) routerServes(service, want string) {
	b.t.Helper()
	svc, ok := b.router.serving(service)
	if !ok {
		b.t.Fatalf("the router serves no %s", service)
	}
	var parts []string
	for _, tr := range svc.Traffic {
		parts = append(parts, fmt.Sprintf("%s=%d", tr.Version, tr.Weight))
	}
	if got := strings.Join(parts, " "); got != want {
		b.t.Fatalf("the router serves %s as %q, want %q", service, got, want)
	}
}

func (b *bench) tick(d time.Duration) {
	b.t.Helper()
	b.clock.advance(d)
	if err := b.ctl.Tick(); err != nil {
		b.t.Fatal(err)
	}
}

func TestControllerStartsARolloutWhenTheReleaseChanges(t *testing.T) {
	t.Parallel()
	b := newBench(t, pausedCanary)
	if err := b.ctl.SetSpecs(b.specs); err != nil {
		t.Fatal(err)
	}
	b.expect(rollout.Healthy, 0, 0)
	b.routerServes("shop", "v1=100")
	b.routerServes("plain", "a=70 b=30") // not managed: served as written

	if err := b.ctl.SetSpecsBy(withRelease(b.specs, "v2"), "dave"); err != nil {
		t.Fatal(err)
	}
	b.expect(rollout.Paused, 10, 1)
	b.routerServes("shop", "v1=90 v2=10")
	if got := b.store.stored("shop"); got.Generation != b.state().Generation || got.Phase != rollout.Paused {
		t.Fatalf("stored state %s gen %d, in force gen %d", got.Phase, got.Generation, b.state().Generation)
	}
	if got := strings.Join(b.notifiedKinds(), " "); got != "RolloutStarted StepStarted StepStarted" {
		t.Fatalf("notified %s", got)
	}
	b.mu.Lock()
	first := b.notified[0]
	b.mu.Unlock()
	if first.Seq == 0 || first.By != "dave" {
		t.Errorf("notified events carry the store's sequence and the caller: %+v", first)
	}
	if served := b.ctl.Served(); len(served) != 2 || served[1].Name != "plain" {
		t.Errorf("served %+v", served)
	}
}

func withRelease(specs []config.Service, v string) []config.Service {
	out := append([]config.Service(nil), specs...)
	out[0].Release = v
	return out
}

// Nothing is served that is not on disk: a failed commit leaves the old state in force, and the
// router is not given the new plan.
func TestControllerFailedCommitKeepsTheOldState(t *testing.T) {
	t.Parallel()
	b := newBench(t, pausedCanary)
	if err := b.ctl.SetSpecs(b.specs); err != nil {
		t.Fatal(err)
	}
	before := b.state()

	b.store.setFail(errDiskFull)
	err := b.release("v2")
	if !errors.Is(err, errDiskFull) || !strings.Contains(err.Error(), "save rollout state of shop") {
		t.Fatalf("SetSpecs: %v", err)
	}
	if got := b.state(); got.Generation != before.Generation || got.Phase != rollout.Healthy {
		t.Fatalf("a state that was not saved is in force: %s gen %d", got.Phase, got.Generation)
	}
	b.routerServes("shop", "v1=100")
	if len(b.notifiedKinds()) != 0 {
		t.Fatalf("events of an unsaved transition went out: %v", b.notifiedKinds())
	}
	applies := b.router.applies()
	b.clock.advance(time.Second)
	if err := b.ctl.Tick(); !errors.Is(err, errDiskFull) {
		t.Fatalf("Tick: %v", err)
	}
	if b.router.applies() != applies {
		t.Fatal("a tick whose commit failed applied a plan")
	}

	// The disk recovers: the next tick does what the failed ones could not.
	b.store.setFail(nil)
	b.tick(time.Second)
	b.expect(rollout.Paused, 10, 1)
	b.routerServes("shop", "v1=90 v2=10")

	// A command whose commit fails changes nothing either.
	b.store.setFail(errDiskFull)
	applies = b.router.applies()
	if _, err := b.ctl.Do("shop", rollout.Command{Kind: rollout.Promote}); !errors.Is(err, errDiskFull) {
		t.Fatalf("Do: %v", err)
	}
	b.expect(rollout.Paused, 10, 1)
	if b.router.applies() != applies {
		t.Fatal("a command whose commit failed applied a plan")
	}
}

func TestControllerDo(t *testing.T) {
	t.Parallel()
	b := newBench(t, pausedCanary)
	if err := b.release("v2"); err != nil {
		t.Fatal(err)
	}
	st, err := b.ctl.Do("shop", rollout.Command{Kind: rollout.Promote, By: "erin"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != rollout.Paused || st.CanaryWeight != 50 || st.Release != "v2" || st.Generation != b.state().Generation {
		t.Fatalf("status after promote %+v", st)
	}
	b.routerServes("shop", "v1=50 v2=50")
	if got, _ := b.ctl.Status("shop"); got.Generation != st.Generation {
		t.Errorf("Status %+v", got)
	}

	var nf *rollout.NotFoundError
	if _, err := b.ctl.Do("nope", rollout.Command{Kind: rollout.Abort}); !errors.As(err, &nf) || !strings.Contains(nf.Msg, "aviary get services") {
		t.Errorf("unknown service: %v", err)
	}
	if _, err := b.ctl.Do("plain", rollout.Command{Kind: rollout.Abort}); !errors.As(err, &nf) || !strings.Contains(nf.Msg, "set release") {
		t.Errorf("unmanaged service: %v", err)
	}
	if _, err := b.ctl.Status("plain"); !errors.As(err, &nf) {
		t.Errorf("status of an unmanaged service: %v", err)
	}
	var ce *rollout.ConflictError
	if _, err := b.ctl.Do("shop", rollout.Command{Kind: rollout.Retry}); !errors.As(err, &ce) {
		t.Errorf("retry in flight: %v", err)
	}
	b.expect(rollout.Paused, 50, 3)
}

// The judges are asked about the checks that run, each by its kind, and told to forget each
// check once it is over, however it ended.
func TestControllerAsksJudgesAndForgetsEndedChecks(t *testing.T) {
	t.Parallel()
	b := newBench(t, `{canary: {steps: [{setWeight: 10}, {analysis: {templates: [errors]}}, {gate: {url: "http://127.0.0.1:7000/ok"}},
		{analysis: {templates: [latency]}}, {pause: {}}], analysis: {templates: [bg]}}}`)
	if err := b.release("v2"); err != nil {
		t.Fatal(err)
	}
	b.tick(time.Second)
	var analysisID, backgroundID string
	for _, ch := range b.state().Checks {
		switch ch.Kind {
		case rollout.StepAnalysis:
			analysisID = ch.ID
		case rollout.BackgroundAnalysis:
			backgroundID = ch.ID
		}
	}
	run, ok := b.analysis.wasAsked(analysisID)
	if !ok || run.Kind != rollout.StepAnalysis || run.Service != "shop" || run.Stable != "v1" || run.Canary != "v2" || run.Templates[0] != "errors" {
		t.Fatalf("analysis judge asked %+v (%v)", run, ok)
	}
	if _, ok := b.analysis.wasAsked(backgroundID); !ok {
		t.Fatal("the background analysis was not judged")
	}
	if _, ok := b.gates.wasAsked(analysisID); ok {
		t.Fatal("the gate judge was asked about an analysis")
	}

	b.analysis.say(analysisID, rollout.Pass)
	b.tick(time.Second)
	b.expect(rollout.Progressing, 10, 2)
	if !b.analysis.forgot(analysisID) || b.analysis.forgot(backgroundID) {
		t.Fatalf("forgotten %v: want the passed analysis, not the background one", b.analysis.forgotten)
	}
	gateID := b.state().Checks[len(b.state().Checks)-1].ID
	b.tick(time.Second)
	if run, ok := b.gates.wasAsked(gateID); !ok || run.Gate == nil || run.Gate.URL != "http://127.0.0.1:7000/ok" {
		t.Fatalf("gate judge asked %+v (%v)", run, ok)
	}

	b.gates.say(gateID, rollout.Pass)
	b.tick(time.Second)
	b.expect(rollout.Progressing, 10, 3)
	if !b.gates.forgot(gateID) {
		t.Fatal("the passed gate was not forgotten")
	}

	// A promote ends a check as well; an abort ends the background one.
	second := b.state().Checks[len(b.state().Checks)-1].ID
	b.tick(time.Second)
	if _, err := b.ctl.Do("shop", rollout.Command{Kind: rollout.Promote}); err != nil {
		t.Fatal(err)
	}
	if !b.analysis.forgot(second) {
		t.Fatal("the check a promote ended was not forgotten")
	}
	if _, err := b.ctl.Do("shop", rollout.Command{Kind: rollout.Abort}); err != nil {
		t.Fatal(err)
	}
	if !b.analysis.forgot(backgroundID) {
		t.Fatal("the background check an abort ended was not forgotten")
	}
}

// Without an analysis judge an analysis never passes: it waits for its deadline, then for a
// person.
func TestControllerWithoutAJudge(t *testing.T) {
	t.Parallel()
	b := newBench(t, analysisCanary)
	ctl, err := rollout.NewController(rollout.Options{Store: newMemStore(), Router: b.router, Health: b.health, Now: b.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	b.ctl = ctl
	if err := b.release("v2"); err != nil {
		t.Fatal(err)
	}
	b.tick(59 * time.Second)
	b.expect(rollout.Progressing, 10, 1)
	b.tick(time.Second)
	b.expect(rollout.Paused, 10, 1)
}

func TestControllerAbortsAnUnhealthyCanary(t *testing.T) {
	t.Parallel()
	b := newBench(t, pausedCanary)
	if err := b.release("v2"); err != nil {
		t.Fatal(err)
	}
	b.health.set("shop", "v2", rollout.Health{Endpoints: 1})
	b.tick(time.Second)
	b.tick(10 * time.Second)
	b.expect(rollout.Degraded, 0, 1)
	b.routerServes("shop", "v1=100 v2=0")
}

// A tick that changes nothing gives the router nothing to do.
func TestControllerAppliesOnlyChanges(t *testing.T) {
	t.Parallel()
	b := newBench(t, pausedCanary)
	if err := b.release("v2"); err != nil {
		t.Fatal(err)
	}
	n := b.router.applies()
	b.tick(time.Minute)
	b.tick(time.Minute)
	if b.router.applies() != n {
		t.Fatalf("router applied %d times on ticks that changed nothing", b.router.applies()-n)
	}
}

// A restarted controller serves exactly what was stored, and moves on from there.
func TestControllerRestoresItsStates(t *testing.T) {
	t.Parallel()
	b := newBench(t, `{canary: {steps: [{setWeight: 10}, {pause: {duration: 1m}}, {setWeight: 50}, {pause: {}}]}}`)
	if err := b.release("v2"); err != nil {
		t.Fatal(err)
	}
	b.tick(30 * time.Second)
	before, served := b.state(), b.ctl.Served()

	b.ctl = b.newController() // the process restarts
	if err := b.ctl.SetSpecs(b.specs); err != nil {
		t.Fatal(err)
	}
	if after := b.state(); after.Generation != before.Generation {
		t.Fatalf("a restart changed the state: gen %d → %d (%s)", before.Generation, after.Generation, after.Message)
	}
	if got := b.ctl.Served(); fmt.Sprint(got) != fmt.Sprint(served) {
		t.Fatalf("a restart serves %+v, before %+v", got, served)
	}
	b.tick(30 * time.Second)
	b.expect(rollout.Paused, 50, 3)

	b.store.setFail(errDiskFull)
	if _, err := rollout.NewController(rollout.Options{Store: b.store, Router: b.router, Health: b.health}); !errors.Is(err, errDiskFull) {
		t.Fatalf("NewController with a failing store: %v", err)
	}
}

func TestControllerValidate(t *testing.T) {
	t.Parallel()
	b := newBench(t, pausedCanary)
	b.specs[0].Versions = append(b.specs[0].Versions, config.Version{Name: "v3", Endpoints: []string{"http://127.0.0.1:9201"}})
	if err := b.release("v2"); err != nil {
		t.Fatal(err)
	}
	if errs := b.ctl.Validate(b.specs); len(errs) > 0 {
		t.Fatalf("the specs in force are valid: %v", errs)
	}
	dropV1 := withRelease(b.specs, "v2")
	dropV1[0].Versions = dropV1[0].Versions[1:]
	if errs := b.ctl.Validate(dropV1); len(errs) != 1 || errs[0].Path != "services[0].versions" || !strings.Contains(errs[0].Msg, "v1 is the stable version") {
		t.Errorf("dropping the stable: %v", errs)
	}
	dropV2 := withRelease(b.specs, "v3")
	dropV2[0].Versions = []config.Version{dropV2[0].Versions[0], dropV2[0].Versions[2]}
	if errs := b.ctl.Validate(dropV2); len(errs) != 1 || !strings.Contains(errs[0].Msg, "aviary rollout abort shop") {
		t.Errorf("dropping the canary in flight: %v", errs)
	}
}

// Run ticks until its context ends.
func TestControllerRun(t *testing.T) {
	t.Parallel()
	b := newBench(t, `{canary: {steps: [{setWeight: 10}, {pause: {duration: 1m}}, {setWeight: 50}, {pause: {}}]}}`)
	if err := b.release("v2"); err != nil {
		t.Fatal(err)
	}
	b.clock.advance(time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		b.ctl.Run(ctx, time.Millisecond)
		close(done)
	}()
	polltest.Wait(t, 10*time.Second, "Run to tick to step 3", func() bool { return b.state().StepIndex == 3 })
	cancel()
	<-done
	b.routerServes("shop", "v1=50 v2=50")
}
