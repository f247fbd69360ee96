package rollout_test

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/rollout"
)

// The tests drive the pure core tick by tick through a run: a service spec, a clock that only
// the test moves, the health the gateway would report and the verdicts a judge would give.
//
//	r := newRun(t, `{canary: {steps: [{setWeight: 5}, {pause: {duration: 10s}}]}}`)
//	r.release("v2").expect(rollout.Paused, 5, 1)
//	r.tick(10 * time.Second).expect(rollout.Healthy, 0, 2)
//
// Every transition is checked against the invariants (see checkTransition), so each scenario is
// also a test of them.

// t0 is when every run starts; UTC, so that states survive a JSON round trip unchanged.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// serviceYAML is the service every run manages: v1 is stable, v2 and v3 are candidates. It has
// room for more of the service's settings, such as user routes (first %s), and its strategy.
const serviceYAML = testTemplates + `
services:
  - name: shop
    versions:
      - {name: v1, endpoints: ["http://127.0.0.1:9001", "http://127.0.0.1:9002"]}
      - {name: v2, endpoints: ["http://127.0.0.1:9101", "http://127.0.0.1:9102", "http://127.0.0.1:9103"]}
      - {name: v3, endpoints: ["http://127.0.0.1:9201"]}
    release: v1
    %s
    strategy: %s
`

// fataler is what parseService needs of a *testing.T or a *rapid.T.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// parseService parses a whole config and returns its only service, defaults applied.
func parseService(t fataler, yaml string) config.Service {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("config does not parse:\n%v\n%s", err, yaml)
	}
	if len(cfg.Services) != 1 {
		t.Fatalf("want one service, got %d", len(cfg.Services))
	}
	return cfg.Services[0]
}

// shopService is the shop service with the given strategy (flow YAML).
func shopService(t fataler, strategy string) config.Service {
	t.Helper()
	return parseService(t, fmt.Sprintf(serviceYAML, "", strategy))
}

type run struct {
	t        *testing.T
	svc      config.Service
	now      time.Time
	state    rollout.State
	health   map[string]rollout.Health // overrides; versions not named here are all ready
	verdicts map[string]rollout.Verdict
	last     []rollout.Event // the events of the last transition
}

// newRun starts managing the shop service with strategy; v1 serves everyone.
func newRun(t *testing.T, strategy string) *run {
	t.Helper()
	return newRunOf(t, shopService(t, strategy))
}

// newRunOf starts managing svc from its Initial state and ticks once.
func newRunOf(t *testing.T, svc config.Service) *run {
	t.Helper()
	r := &run{t: t, svc: svc, now: t0, health: map[string]rollout.Health{}, verdicts: map[string]rollout.Verdict{}}
	r.state = rollout.Initial(svc, t0)
	r.tick(0)
	return r
}

// input is what the core observes now.
func (r *run) input() rollout.Input {
	h := map[string]rollout.Health{}
	for _, v := range r.svc.Versions {
		n := len(v.Endpoints)
		h[v.Name] = rollout.Health{Endpoints: n, Available: n, Ready: n}
	}
	for v, x := range r.health {
		h[v] = x
	}
	return rollout.Input{Now: r.now, Service: r.svc, Health: h, Verdicts: maps.Clone(r.verdicts)}
}

// tick moves the clock on by d and lets the core look.
func (r *run) tick(d time.Duration) *run {
	r.t.Helper()
	r.now = r.now.Add(d)
	in := r.input()
	old := r.state
	next, events := rollout.Tick(old, in)
	r.record(old, next, events)
	// A second look at the same world changes nothing: that is what makes restarts safe.
	again, more := rollout.Tick(next, in)
	if !reflect.DeepEqual(again, next) || len(more) > 0 {
		r.t.Fatalf("a second Tick with the same input changed the state:\nfirst  %+v\nsecond %+v\nevents %v", next, again, kinds(more))
	}
	return r
}

// release changes the spec's release, as an edit of the config file would, and ticks.
func (r *run) release(v string) *run {
	r.t.Helper()
	r.svc.Release = v
	return r.tick(0)
}

// do runs a command that must fit the phase.
func (r *run) do(kind rollout.CommandKind) *run {
	r.t.Helper()
	return r.command(rollout.Command{Kind: kind, By: "alice"})
}

// command runs cmd; it must succeed.
func (r *run) command(cmd rollout.Command) *run {
	r.t.Helper()
	old := r.state
	next, events, err := rollout.Do(old, cmd, r.input())
	if err != nil {
		r.t.Fatalf("%s: %v", cmd.Kind, err)
	}
	r.record(old, next, events)
	return r
}

// conflict runs a command that must not fit the phase: it returns a *ConflictError whose message
// contains each of hints, and leaves the state as it was.
func (r *run) conflict(cmd rollout.Command, hints ...string) *run {
	r.t.Helper()
	next, events, err := rollout.Do(r.state, cmd, r.input())
	var ce *rollout.ConflictError
	if !errors.As(err, &ce) {
		r.t.Fatalf("%s in phase %s: want a *ConflictError, got %v (phase after: %s)", cmd.Kind, r.state.Phase, err, next.Phase)
	}
	for _, h := range hints {
		if !strings.Contains(ce.Msg, h) {
			r.t.Errorf("%s in phase %s: conflict message %q does not say %q", cmd.Kind, r.state.Phase, ce.Msg, h)
		}
	}
	if !reflect.DeepEqual(next, r.state) || events != nil {
		r.t.Errorf("%s: a refused command changed the state or emitted %v", cmd.Kind, kinds(events))
	}
	return r
}

func (r *run) record(old, next rollout.State, events []rollout.Event) {
	r.t.Helper()
	if err := checkTransition(old, next, events, r.svc); err != nil {
		r.t.Fatal(err)
	}
	r.state, r.last = next, events
}

// setHealth overrides what the gateway reports of a version.
func (r *run) setHealth(version string, h rollout.Health) *run {
	r.health[version] = h
	return r
}

// down makes every endpoint of version unavailable; up makes them all ready again.
func (r *run) down(version string) *run {
	n := len(r.version(version).Endpoints)
	return r.setHealth(version, rollout.Health{Endpoints: n})
}

func (r *run) up(version string) *run {
	delete(r.health, version)
	return r
}

func (r *run) version(name string) config.Version {
	r.t.Helper()
	for _, v := range r.svc.Versions {
		if v.Name == name {
			return v
		}
	}
	r.t.Fatalf("no version %s", name)
	return config.Version{}
}

// verdict makes the judge answer phase for the current step's check from now on.
func (r *run) verdict(phase rollout.VerdictPhase) *run {
	r.t.Helper()
	r.verdicts[r.stepCheck().ID] = rollout.Verdict{Phase: phase, Message: "judge says " + string(phase)}
	return r
}

// background makes the judge answer phase for the background analysis from now on.
func (r *run) background(phase rollout.VerdictPhase) *run {
	r.t.Helper()
	r.verdicts[r.check(rollout.BackgroundAnalysis).ID] = rollout.Verdict{Phase: phase, Message: "judge says " + string(phase)}
	return r
}

// stepCheck is the analysis or gate the current step waits on.
func (r *run) stepCheck() rollout.Check {
	r.t.Helper()
	for _, ch := range r.state.Checks {
		if ch.Step == r.state.StepIndex && ch.Kind != rollout.BackgroundAnalysis {
			return ch
		}
	}
	r.t.Fatalf("step %d has no running check (checks: %+v)", r.state.StepIndex, r.state.Checks)
	return rollout.Check{}
}

func (r *run) check(kind string) rollout.Check {
	r.t.Helper()
	for _, ch := range r.state.Checks {
		if ch.Kind == kind {
			return ch
		}
	}
	r.t.Fatalf("no %s check running (checks: %+v)", kind, r.state.Checks)
	return rollout.Check{}
}

// expect checks the phase, the canary's weight and the current step.
func (r *run) expect(phase rollout.Phase, weight, step int) *run {
	r.t.Helper()
	s := r.state
	if s.Phase != phase || s.Weight != weight || s.StepIndex != step {
		r.t.Fatalf("at +%s: want %s, weight %d, step %d; got %s, weight %d, step %d (%s)",
			r.now.Sub(t0), phase, weight, step, s.Phase, s.Weight, s.StepIndex, s.Message)
	}
	return r
}

// versions checks the stable and canary versions.
func (r *run) versions(stable, canary string) *run {
	r.t.Helper()
	if r.state.Stable != stable || r.state.Canary != canary {
		r.t.Fatalf("want stable %q, canary %q; got %q, %q", stable, canary, r.state.Stable, r.state.Canary)
	}
	return r
}

// saw checks that the last transition emitted events of each kind.
func (r *run) saw(want ...string) *run {
	r.t.Helper()
	got := kinds(r.last)
	for _, k := range want {
		if !slices.Contains(got, k) {
			r.t.Fatalf("want a %s event; the last transition emitted %v", k, got)
		}
	}
	return r
}

// quiet checks that the last transition emitted nothing.
func (r *run) quiet() *run {
	r.t.Helper()
	if len(r.last) > 0 {
		r.t.Fatalf("want no events, got %v", kinds(r.last))
	}
	return r
}

// paused checks the pause reasons, in any order.
func (r *run) paused(reasons ...string) *run {
	r.t.Helper()
	var got []string
	for _, p := range r.state.PauseReasons {
		got = append(got, p.Kind)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(reasons))
	if !slices.Equal(got, want) {
		r.t.Fatalf("want pause reasons %v, got %v", want, got)
	}
	return r
}

// served is the service as the gateway would serve it now.
func (r *run) served() config.Service { return rollout.PlanOf(r.state).Service(r.svc) }

// weights is the served traffic as "v1=90 v2=10".
func (r *run) weights() string {
	var parts []string
	for _, t := range r.served().Traffic {
		parts = append(parts, fmt.Sprintf("%s=%d", t.Version, t.Weight))
	}
	return strings.Join(parts, " ")
}

func (r *run) serves(want string) *run {
	r.t.Helper()
	if got := r.weights(); got != want {
		r.t.Fatalf("want traffic %q, got %q", want, got)
	}
	return r
}

func kinds(evs []rollout.Event) []string {
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		out = append(out, string(e.Kind))
	}
	return out
}

// checkTransition checks the invariants of one transition old → next with its events. It is
// shared by the scenarios and the property test.
func checkTransition(old, next rollout.State, events []rollout.Event, svc config.Service) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	s := next
	if s.Weight < 0 || s.Weight > 100 {
		bad("canaryWeight %d is not in 0..100", s.Weight)
	}
	switch s.Phase {
	case rollout.Healthy:
		if s.Canary != "" || s.Weight != 0 || s.Route != nil || s.Mirror != 0 || len(s.Checks) > 0 {
			bad("Healthy with canary %q weight %d route %v mirror %g checks %d", s.Canary, s.Weight, s.Route, s.Mirror, len(s.Checks))
		}
	case rollout.Degraded:
		if s.Weight != 0 || s.Route != nil || s.Mirror != 0 || len(s.Checks) > 0 || s.Canary == "" {
			bad("Degraded with canary %q weight %d route %v mirror %g checks %d", s.Canary, s.Weight, s.Route, s.Mirror, len(s.Checks))
		}
	case rollout.Progressing, rollout.Paused:
		if s.StepIndex >= len(s.Steps) {
			bad("in flight at step %d of %d", s.StepIndex, len(s.Steps))
		}
		if (s.Phase == rollout.Paused) != (len(s.PauseReasons) > 0) {
			bad("phase %s with pause reasons %v", s.Phase, s.PauseReasons)
		}
		if s.Canary == "" || s.Canary == s.Stable {
			bad("in flight with canary %q over stable %q", s.Canary, s.Stable)
		}
	default:
		bad("unknown phase %q", s.Phase)
	}
	if s.StepIndex < 0 || s.StepIndex > len(s.Steps) {
		bad("step %d of %d", s.StepIndex, len(s.Steps))
	}
	if !s.PausedAt.IsZero() != slices.ContainsFunc(s.PauseReasons, func(p rollout.PauseReason) bool { return p.Kind == rollout.UserPauseReason }) {
		bad("pausedAt %v disagrees with pause reasons %v", s.PausedAt, s.PauseReasons)
	}
	// Generation moves exactly when something changed.
	same := reflect.DeepEqual(old, next)
	switch {
	case next.Generation < old.Generation:
		bad("generation went back from %d to %d", old.Generation, next.Generation)
	case same && len(events) > 0:
		bad("events %v without a change of state", kinds(events))
	case same && next.Generation != old.Generation:
		bad("generation moved without a change")
	case !same && next.Generation != old.Generation+1:
		bad("state changed but generation went from %d to %d", old.Generation, next.Generation)
	}
	for _, e := range events {
		if !slices.Contains(config.EventKinds, e.Kind) {
			bad("event kind %q is not in config.EventKinds", e.Kind)
		}
		if e.Service != s.Service || e.Reason == "" || e.By == "" {
			bad("event %+v lacks service, reason or by", e)
		}
	}
	if err := servedValidates(rollout.PlanOf(s).Service(svc)); err != nil {
		bad("the plan of %s (weight %d, canary %q) does not validate: %v", s.Phase, s.Weight, s.Canary, err)
	}
	return errors.Join(errs...)
}

// baseConfig is an empty config with its defaults, for validating services.
var baseConfig = sync.OnceValue(func() *config.Config {
	cfg, err := config.Parse([]byte("services: []"))
	if err != nil {
		panic(err)
	}
	return cfg
})

// servedValidates checks a served service as the gateway requires it: valid config, and the
// traffic of a managed service owned by the plan.
func servedValidates(svc config.Service) error {
	cfg := *baseConfig()
	cfg.Services = []config.Service{svc}
	if errs := cfg.Validate(); len(errs) > 0 {
		return errs
	}
	sum := 0
	for _, t := range svc.Traffic {
		sum += t.Weight
	}
	if len(svc.Traffic) == 0 || svc.Traffic[0].Version != svc.Versions[0].Name || sum != 100 {
		return fmt.Errorf("traffic %+v: want the stable (the first version) first and a sum of 100", svc.Traffic)
	}
	return nil
}

// testTemplates defines the analysis templates the tests name; the judge behind them is scripted.
const testTemplates = `
analysis:
  templates:
    - {name: a, metrics: [{name: errors, builtin: errorRate}]}
    - {name: b, metrics: [{name: errors, builtin: errorRate}]}
    - {name: bg, metrics: [{name: errors, builtin: errorRate}]}
    - {name: diff, metrics: [{name: errors, builtin: errorRate}]}
    - {name: e, metrics: [{name: errors, builtin: errorRate}]}
    - {name: error-rate, metrics: [{name: errors, builtin: errorRate}]}
    - {name: errors, metrics: [{name: errors, builtin: errorRate}]}
    - {name: latency, metrics: [{name: errors, builtin: errorRate}]}
    - {name: smoke, metrics: [{name: errors, builtin: errorRate}]}
    - {name: slo, metrics: [{name: errors, builtin: errorRate}]}
`
