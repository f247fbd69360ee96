package experiment

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/internal/store"
)

// Guardrails are judged by the canary judge (the server's analysis.Analyzer), each arm against
// control on the gateway's own measures of them: for an experiment over versions, the versions'
// requests; over a flag's variants, the requests of the service the flag is bound to, measured
// per variant. The experiment's guardrail template (config.Experiment.GuardrailTemplate) holds
// its guardrail metrics with a builtin, critical: the judge's sequential test fails an arm the
// moment the evidence allows, at the experiment's alpha, however often it looks. It runs as a
// background check (it never passes, it watches), and its evidence is kept across restarts under
// the experiment's name, as a rollout's is under its service's.

// Running is an experiment that runs, as the server places its units: its spec and its state
// (with the arms that were stopped).
type Running struct {
	Spec  config.Experiment
	State store.ExperimentState
}

// Running lists the experiments that run now.
func (m *Manager) Running() ([]Running, error) {
	var out []Running
	for _, e := range m.o.Specs() {
		st, ok, err := m.o.Store.Experiment(e.Name)
		if err != nil {
			return nil, err
		}
		if ok && st.Phase == store.ExperimentRunning {
			out = append(out, Running{Spec: e, State: st})
		}
	}
	return out, nil
}

// guardOwner is the name the judge keeps an experiment's guardrail evidence under.
func guardOwner(name string) string { return config.GuardrailTemplatePrefix + name }

// guardRun is the judge's check of one arm's guardrails. Its ID is
// experiment:NAME/STARTED/ARM/guardrail: the judge's evidence is one per experiment run
// (experiment:NAME/STARTED, as a rollout's is per attempt), one test per arm and metric in it.
func guardRun(e config.Experiment, st store.ExperimentState, arm int, template string) rollout.Run {
	target, control, canary := e.Service, e.Arms[0].Version, e.Arms[arm].Version
	if e.Service == "" {
		target = flagMeasures(e.Flag)
		control, canary = e.Arms[0].Variant, e.Arms[arm].Variant
	}
	id := guardOwner(e.Name) + "/" + strconv.FormatInt(st.Started.Unix(), 10) + "/" + e.Arms[arm].Name + "/guardrail"
	return rollout.Run{ID: id, Kind: rollout.BackgroundAnalysis, Service: target, Stable: control, Canary: canary,
		Templates: []string{template}, StartedAt: st.Started}
}

// flagMeasures is where the gateway measures a flag's variants (flags.RolloutSalt + key; the
// flags package is not imported here for one prefix).
func flagMeasures(flag string) string { return "flag:" + flag }

// Guard asks the judge about the guardrails of every experiment that runs, and stops each arm
// whose guardrail failed. The server calls it every second; without a judge it does nothing.
func (m *Manager) Guard() error {
	if m.o.Judge == nil {
		return nil
	}
	running, err := m.Running()
	if err != nil {
		return err
	}
	asked := map[string]bool{}
	for _, r := range running {
		t, ok := r.Spec.GuardrailTemplate()
		if !ok {
			continue
		}
		for i := 1; i < len(r.Spec.Arms); i++ {
			arm := r.Spec.Arms[i].Name
			if _, stopped := r.State.ArmStopped(arm); stopped {
				continue
			}
			run := guardRun(r.Spec, r.State, i, t.Name)
			asked[run.ID] = true
			v := m.o.Judge.Verdict(run)
			if v.Phase != rollout.Fail {
				continue
			}
			metric, _, _ := strings.Cut(v.Message, ":")
			if !slices.ContainsFunc(t.Metrics, func(am config.AnalysisMetric) bool { return am.Name == metric }) {
				metric = ""
			}
			if _, err := m.StopArm(r.Spec.Name, arm, metric, v.Message, "guardrail"); err != nil {
				return err
			}
			asked[run.ID] = false // judged: its check goes below
		}
	}
	m.guardMu.Lock()
	var gone []string
	for id, watching := range asked {
		if !watching {
			gone = append(gone, id)
			delete(asked, id)
		}
	}
	for id := range m.asked {
		if _, ok := asked[id]; !ok && !slices.Contains(gone, id) {
			gone = append(gone, id)
		}
	}
	m.asked = asked
	m.guardMu.Unlock()
	for _, id := range gone { // stopped, concluded, or taken out of the config
		m.forget(id)
	}
	return nil
}

func (m *Manager) forget(id string) {
	m.o.Judge.Forget(id)
}

// evidenceEnded tells the judge that an experiment's guardrail evidence may go.
func (m *Manager) evidenceEnded(name string) {
	if k, ok := m.o.Judge.(rollout.EvidenceKeeper); ok {
		k.RolloutEnded(guardOwner(name))
	}
}

// ErrNoSuchArm is returned for an arm an experiment does not have, or cannot stop (control).
var ErrNoSuchArm = fmt.Errorf("no such arm to stop: name an arm other than control (the first)")

// StopArm stops an arm of a running experiment: from now on its units get control (the server
// changes the placement), its units' events after now no longer count, and it cannot win. metric
// names the guardrail that broke ("" when none), why says so with the evidence, by who did it.
// Stopping an arm that is stopped returns the state as it is.
func (m *Manager) StopArm(name, arm, metric, why, by string) (store.ExperimentState, error) {
	e, err := m.spec(name)
	if err != nil {
		return store.ExperimentState{}, err
	}
	i := slices.IndexFunc(e.Arms, func(a config.ExperimentArm) bool { return a.Name == arm })
	if i < 1 {
		return store.ExperimentState{}, fmt.Errorf("experiment %q, arm %q: %w", name, arm, ErrNoSuchArm)
	}
	m.mu.Lock()
	st, ok, err := m.o.Store.Experiment(name)
	switch {
	case err != nil:
		m.mu.Unlock()
		return st, err
	case !ok:
		m.mu.Unlock()
		return st, fmt.Errorf("stop arm %q of experiment %q: %w", arm, name, ErrNotStarted)
	}
	if _, stopped := st.ArmStopped(arm); stopped || st.Phase != store.ExperimentRunning {
		m.mu.Unlock()
		return st, nil
	}
	now := m.o.Now().UTC()
	reason := arm + " stopped"
	if metric != "" {
		reason += ": " + metric + " guardrail, " + strings.TrimSpace(strings.TrimPrefix(why, metric+":"))
	} else if why != "" {
		reason += ": " + why
	}
	reason += "; its units get " + e.Arms[0].Name + " from now on"
	st.StoppedArms = append(st.StoppedArms, store.StoppedArm{Arm: arm, At: now, Metric: metric, Reason: reason})
	ev := rollout.Event{Time: now, Experiment: name, Service: e.Service, Flag: e.Flag, Kind: config.EventArmStopped,
		Reason: reason, By: by, Stable: e.Arms[0].Version, Canary: e.Arms[i].Version}
	if e.Service == "" {
		ev.Stable, ev.Canary = e.Arms[0].Variant, e.Arms[i].Variant
	}
	evs, err := m.o.Store.ChangeExperiment(st, []rollout.Event{ev})
	m.mu.Unlock()
	if err != nil {
		return st, fmt.Errorf("stop arm %q of experiment %q: %w", arm, name, err)
	}
	m.changed(evs)
	return st, nil
}

// changed tells the server that the placements changed, with the events that say why.
func (m *Manager) changed(evs []rollout.Event) {
	if m.o.OnChange != nil {
		m.o.OnChange(evs)
	}
}
