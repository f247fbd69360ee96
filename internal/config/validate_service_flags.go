package config

import (
	"fmt"
	"regexp"
)

// flagKeyPattern is what a flag key bound to a service may be: flagd allows any string, but the key
// names the flag's measurements and its rollout (flag:KEY) in URLs, metrics and the CLI.
var flagKeyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// serviceFlags checks a service's flags; owners maps a flag key to the service that binds it, for
// a flag is measured (and rolled out) under one service only.
func (v *validator) serviceFlags(p string, s *Service, owners map[string]string) {
	for i := range s.Flags {
		f := &s.Flags[i]
		fp := fmt.Sprintf("%s.flags[%d]", p, i)
		if !flagKeyPattern.MatchString(f.Key) {
			v.addf(fp+".key", "%q must be letters, digits, '.', '_' or '-' (1..100 characters), as in the flag source", f.Key)
		} else if owner, dup := owners[f.Key]; dup {
			v.addf(fp+".key", "%q is already bound to service %s; a flag is measured under one service only", f.Key, owner)
		} else {
			owners[f.Key] = s.Name
		}
		if f.Header != "" {
			v.headerName(fp+".header", f.Header)
		}
		for attr, h := range f.Context {
			if attr == "" || attr == "targetingKey" {
				v.addf(fp+".context", "%q cannot be set from a header (the targeting key is the service's sticky key)", attr)
			}
			v.headerName(fp+".context."+attr, h)
		}
		if f.Release == "" {
			if f.Strategy != nil {
				v.addf(fp+".strategy", "has no effect without release; set release to the variant that should serve everyone")
			}
			continue
		}
		if s.Stickiness == nil {
			v.addf(fp+".release", "a flag rollout needs the service's stickiness: its users are the flag's targeting keys")
		}
		if f.Strategy != nil {
			v.flagStrategy(fp+".strategy", f.Strategy)
		}
	}
	if len(s.Flags) > 8 {
		v.addf(p+".flags", "%d flags; the gateway evaluates at most 8 per request", len(s.Flags))
	}
}

// flagStrategy allows what a flag rollout can do: canary steps of weight, pauses, analyses and gates.
func (v *validator) flagStrategy(p string, st *Strategy) {
	if st.Canary == nil || st.BlueGreen != nil || st.Rolling != nil || st.Recreate != nil || st.Shadow != nil {
		v.addf(p, "a flag rollout takes canary steps only (setWeight, pause, analysis, gate)")
		return
	}
	v.strategy(p, st)
	for i, step := range st.Canary.Steps {
		if step.SetHeaderRoute != nil || step.SetMirror != nil {
			v.addf(fmt.Sprintf("%s.canary.steps[%d]", p, i), "setHeaderRoute and setMirror route requests between versions; a flag rollout moves users by setWeight")
		}
	}
}
