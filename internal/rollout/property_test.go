package rollout_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/rollout"
)

// Random ticks (time steps, health, verdicts), release changes, spec edits and commands, over
// random strategies, keep the invariants of checkTransition; a tick repeated with the same input
// changes nothing, and neither does one on a state read back from the store.
func TestInvariantsUnderRandomOperation(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	rapid.Check(t, func(t *rapid.T) {
		m := &machine{svc: randomService(t), now: t0, seen: seen}
		m.state = rollout.Initial(m.svc, t0)
		m.tick(t, 0)
		t.Repeat(map[string]func(*rapid.T){
			"tick": func(t *rapid.T) {
				m.tick(t, rapid.SampledFrom([]time.Duration{0, time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second,
					2 * time.Minute, 11 * time.Minute}).Draw(t, "dt"))
			},
			"release": func(t *rapid.T) {
				m.svc.Release = rapid.SampledFrom([]string{"v1", "v2", "v3"}).Draw(t, "release")
				m.tick(t, 0)
			},
			"edit strategy": func(t *rapid.T) {
				m.svc.Strategy = parseService(t, fmt.Sprintf(serviceYAML, "", randomStrategy(t))).Strategy
			},
			"command": func(t *rapid.T) {
				kind := rapid.SampledFrom(append(slices.Clone(rollout.Commands), "bogus")).Draw(t, "command")
				m.do(t, rollout.Command{Kind: kind, Full: rapid.Bool().Draw(t, "full")})
			},
		})
	})
	// The generator must reach the main corners, or the invariants were checked on too little;
	// rarer ones (a failed gate, say) are only reported.
	for _, k := range []string{"Healthy", "Progressing", "Paused", "Degraded", "Completed", "Aborted", "Promoted", "StepStarted"} {
		if !seen[k] {
			t.Errorf("random operation never reached %s", k)
		}
	}
	for _, k := range config.EventKinds {
		if !seen[string(k)] {
			t.Logf("random operation did not reach %s this time", k)
		}
	}
}

type machine struct {
	svc   config.Service
	now   time.Time
	state rollout.State
	seen  map[string]bool
}

func randomService(t *rapid.T) config.Service {
	extra := rapid.SampledFrom([]string{"",
		`routes: [{match: {header: {name: X-Team, value: a}}, version: v3}]`,
		`mirror: {version: v3, percent: 5}`,
	}).Draw(t, "user routes")
	return parseService(t, fmt.Sprintf(serviceYAML, extra, randomStrategy(t)))
}

// randomStrategy draws a valid strategy, in flow YAML.
func randomStrategy(t *rapid.T) string {
	var fields []string
	pick := func(label string, options ...string) string { return rapid.SampledFrom(options).Draw(t, label) }
	if d := pick("abortOnUnhealthy", "", "5s", "-1s"); d != "" {
		fields = append(fields, "abortOnUnhealthy: "+d)
	}
	if d := pick("scaleDownDelay", "", "1m"); d != "" {
		fields = append(fields, "scaleDownDelay: "+d)
	}
	shadow := func() string {
		s := "duration: " + pick("shadow duration", "10s", "1m")
		if p := pick("shadow percent", "", "30"); p != "" {
			s += ", percent: " + p
		}
		if rapid.Bool().Draw(t, "shadow analysis") {
			s += ", analysis: {templates: [diff]}"
		}
		return "shadow: {" + s + "}"
	}
	switch pick("kind", "canary", "blueGreen", "rolling", "recreate", "shadow", "shadow+canary") {
	case "canary":
		fields = append(fields, randomCanary(t))
	case "shadow+canary":
		fields = append(fields, shadow(), randomCanary(t))
	case "shadow":
		fields = append(fields, shadow())
	case "blueGreen":
		var bg []string
		if rapid.Bool().Draw(t, "preview") {
			bg = append(bg, `previewRoute: {header: {name: X-Preview, value: "1"}}`)
		}
		if s := pick("autoPromotionSeconds", "0", "20"); s != "0" {
			bg = append(bg, "autoPromotionSeconds: "+s)
		}
		if rapid.Bool().Draw(t, "pre") {
			bg = append(bg, "prePromotionAnalysis: {templates: [smoke], duration: "+pick("pre duration", "0s", "30s")+"}")
		}
		if rapid.Bool().Draw(t, "post") {
			bg = append(bg, "postPromotionAnalysis: {templates: [errors]}")
		}
		fields = append(fields, "blueGreen: {"+strings.Join(bg, ", ")+"}")
	case "rolling":
		fields = append(fields, fmt.Sprintf("rolling: {maxUnavailable: %d}", rapid.IntRange(1, 3).Draw(t, "maxUnavailable")))
	case "recreate":
		fields = append(fields, "recreate: {}")
	}
	return "{" + strings.Join(fields, ", ") + "}"
}

func randomCanary(t *rapid.T) string {
	n := rapid.IntRange(0, 6).Draw(t, "steps")
	steps := make([]string, n)
	for i := range steps {
		switch rapid.IntRange(0, 5).Draw(t, "step") {
		case 0:
			steps[i] = fmt.Sprintf("{setWeight: %d}", rapid.IntRange(0, 100).Draw(t, "weight"))
		case 1:
			steps[i] = "{pause: {duration: " + rapid.SampledFrom([]string{"0s", "5s", "30s"}).Draw(t, "pause") + "}}"
		case 2:
			steps[i] = rapid.SampledFrom([]string{`{setHeaderRoute: {match: {cookie: {name: beta, value: "1"}}}}`, `{setHeaderRoute: {}}`}).Draw(t, "route")
		case 3:
			steps[i] = fmt.Sprintf("{setMirror: {percent: %d}}", rapid.SampledFrom([]int{0, 10, 100}).Draw(t, "mirror"))
		case 4:
			steps[i] = "{analysis: {templates: [errors], duration: " + rapid.SampledFrom([]string{"0s", "20s"}).Draw(t, "deadline") + "}}"
		case 5:
			steps[i] = `{gate: {url: "http://127.0.0.1:7000/gate"}}`
		}
	}
	s := "canary: {steps: [" + strings.Join(steps, ", ") + "]"
	if rapid.Bool().Draw(t, "background") {
		s += fmt.Sprintf(", analysis: {templates: [bg], startingStep: %d}", rapid.IntRange(0, n).Draw(t, "startingStep"))
	}
	return s + "}"
}

// observe draws what the gateway and the judges report now. The gateway reports the versions it
// serves under the current plan, with the endpoints it serves of them; or, as it may while a new
// plan is on its way, what it served before (here: every version of the spec, whole).
func (m *machine) observe(t *rapid.T) rollout.Input {
	in := rollout.Input{Now: m.now, Service: m.svc, Health: map[string]rollout.Health{}, Verdicts: map[string]rollout.Verdict{}}
	versions := rollout.PlanOf(m.state).Service(m.svc).Versions
	if rapid.IntRange(0, 9).Draw(t, "stale health") == 0 {
		versions = m.svc.Versions
	}
	for _, v := range versions {
		n := len(v.Endpoints)
		switch rapid.SampledFrom([]string{"ready", "ready", "ready", "some", "down"}).Draw(t, "health "+v.Name) {
		case "ready":
			in.Health[v.Name] = rollout.Health{Endpoints: n, Available: n, Ready: n}
		case "some":
			a := rapid.IntRange(0, n).Draw(t, "available")
			in.Health[v.Name] = rollout.Health{Endpoints: n, Available: a, Ready: rapid.IntRange(0, a).Draw(t, "ready")}
		case "down":
			in.Health[v.Name] = rollout.Health{Endpoints: n}
		}
	}
	for _, ch := range m.state.Checks {
		p := rapid.SampledFrom([]rollout.VerdictPhase{"", rollout.Running, rollout.Pass, rollout.Pass, rollout.Fail, rollout.Inconclusive}).Draw(t, "verdict")
		if p != "" {
			in.Verdicts[ch.ID] = rollout.Verdict{Phase: p, Message: "random " + string(p)}
		}
	}
	return in
}

func (m *machine) tick(t *rapid.T, dt time.Duration) {
	m.now = m.now.Add(dt)
	in := m.observe(t)
	next, events := rollout.Tick(m.state, in)
	m.record(t, next, events)

	again, more := rollout.Tick(next, in)
	if !reflect.DeepEqual(again, next) || len(more) > 0 {
		t.Fatalf("a second Tick with the same input changed the state (events %v):\nfirst  %+v\nsecond %+v", kinds(more), next, again)
	}
	b, err := json.Marshal(next)
	if err != nil {
		t.Fatal(err)
	}
	var back rollout.State
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rollout.PlanOf(back), rollout.PlanOf(next)) {
		t.Fatalf("the plan of a state read back from the store differs:\n%+v\n%+v", rollout.PlanOf(back), rollout.PlanOf(next))
	}
	if after, more := rollout.Tick(back, in); after.Generation != back.Generation || len(more) > 0 {
		t.Fatalf("a state read back from the store moved on the same input: %v", kinds(more))
	}
}

func (m *machine) do(t *rapid.T, cmd rollout.Command) {
	in := m.observe(t)
	next, events, err := rollout.Do(m.state, cmd, in)
	if err != nil {
		var ce *rollout.ConflictError
		if !errors.As(err, &ce) || ce.Msg == "" {
			t.Fatalf("%s: want a *ConflictError, got %T %v", cmd.Kind, err, err)
		}
		if !reflect.DeepEqual(next, m.state) || events != nil {
			t.Fatalf("%s: a refused command changed the state", cmd.Kind)
		}
		return
	}
	m.seen["command "+string(cmd.Kind)] = true
	m.record(t, next, events)
}

func (m *machine) record(t *rapid.T, next rollout.State, events []rollout.Event) {
	if err := checkTransition(m.state, next, events, m.svc); err != nil {
		t.Fatalf("%v\nfrom %+v\nto   %+v\nevents %v", err, m.state, next, kinds(events))
	}
	m.state = next
	m.seen[string(next.Phase)] = true
	for _, e := range events {
		m.seen[string(e.Kind)] = true
	}
}
