package rollout

import (
	"maps"
	"slices"
	"strings"
)

// Checks asks the judges about a state's running checks, remembers their latest verdicts (shown,
// not stored), and tells the judges when checks are over. The Controller keeps one for all its
// services; Kubernetes mode keeps one per Rollout. Not safe for concurrent use.
type Checks struct {
	Analysis Judge // analysis and background checks; nil leaves them Running
	Gates    Judge // gate checks; nil leaves them Running

	asked map[string]Judge   // running check ID → the judge asked about it
	live  map[string]Verdict // running check ID → its latest verdict
}

// Verdicts asks about every running check of st, a state of service.
func (k *Checks) Verdicts(service string, st State) map[string]Verdict {
	if len(st.Checks) == 0 {
		return nil
	}
	if k.asked == nil {
		k.asked, k.live = map[string]Judge{}, map[string]Verdict{}
	}
	out := map[string]Verdict{}
	for _, ch := range st.Checks {
		j := k.Analysis
		if ch.Kind == GateCheck {
			j = k.Gates
		}
		if j == nil {
			continue
		}
		k.asked[ch.ID] = j
		out[ch.ID] = j.Verdict(Run{ID: ch.ID, Kind: ch.Kind, Service: service, Stable: st.Stable,
			Canary: st.Canary, Templates: ch.Templates, Gate: ch.Gate, StartedAt: ch.StartedAt, Weight: st.Weight,
			Shadow: st.Weight == 0 && st.Route == nil && st.Mirror > 0})
		k.live[ch.ID] = out[ch.ID]
	}
	return out
}

// Settle tells the judges about the checks of service that st no longer runs, and, once st is no
// longer in flight, that its rollout has ended.
func (k *Checks) Settle(service string, st State) {
	prefix := service + "/"
	for _, id := range slices.Collect(maps.Keys(k.asked)) {
		if strings.HasPrefix(id, prefix) && !slices.ContainsFunc(st.Checks, func(ch Check) bool { return ch.ID == id }) {
			k.forget(id)
		}
	}
	if !st.InFlight() {
		k.ended(service)
	}
}

// Keep forgets every check whose service keep does not want, and ends those services' rollouts.
func (k *Checks) Keep(keep func(service string) bool) {
	gone := map[string]bool{}
	for _, id := range slices.Collect(maps.Keys(k.asked)) {
		if svc, _, _ := strings.Cut(id, "/"); !keep(svc) {
			k.forget(id)
			gone[svc] = true
		}
	}
	for svc := range gone {
		k.ended(svc)
	}
}

// ended tells the analysis judge, when it keeps evidence across checks, that service's rollout
// is over.
func (k *Checks) ended(service string) {
	if e, ok := k.Analysis.(EvidenceKeeper); ok {
		e.RolloutEnded(service)
	}
}

func (k *Checks) forget(id string) {
	k.asked[id].Forget(id)
	delete(k.asked, id)
	delete(k.live, id)
}

// Live shows st's running checks with their latest verdicts.
func (k *Checks) Live(st State) State {
	if len(st.Checks) == 0 {
		return st
	}
	st.Checks = slices.Clone(st.Checks)
	for i := range st.Checks {
		if v, ok := k.live[st.Checks[i].ID]; ok && st.Checks[i].Last == nil {
			vv := v
			st.Checks[i].Last = &vv
		}
	}
	return st
}
