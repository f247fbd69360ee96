package flags

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"

	"aviary.dev/aviary/internal/bucket"
)

// ReasonSplit: a flag rollout gave the user its variant (OpenFeature's reason for a pseudorandom
// assignment).
const ReasonSplit Reason = "SPLIT"

// RolloutSalt salts the buckets of a flag rollout's users: bucket.Of(RolloutSalt+key, targetingKey).
// It is also the prefix of the rollout's name and of its variants' measurements.
const RolloutSalt = "flag:"

// Overlay is what Aviary adds to a flag beyond its definition: the service it is bound to (when its
// metadata names none), and the share of users a flag rollout gives a variant.
type Overlay struct {
	Service    string
	Rollout    *Rollout
	Experiment *Experiment
}

// Experiment is a flag experiment's hold on its flag: a unit outside the experiment's traffic share
// (package bucket's draw with the experiment's salt), or one the flag gives the variant of an arm
// that was stopped (a guardrail broke), gets the Control variant instead. Evaluations without a
// targeting key are left alone: they are no unit.
type Experiment struct {
	Name    string
	Traffic float64 // percent of units in the experiment
	Control string
	Stopped []string // the variants of the stopped arms

	salt string
}

// Rollout gives Variant to the users whose bucket falls in the last Percent of the buckets; the
// others get the flag's own evaluation (its targeting, or its default variant). As Percent grows the
// users in the share stay in it, and new ones join: a user's bucket is a function of the flag key and
// the targeting key alone. At 100 every evaluation gets Variant, with or without a targeting key.
type Rollout struct {
	Variant string
	Percent int
}

// WithOverlays returns the set with each overlay applied to the flag of its key (overlays of flags the
// set does not have are ignored, and so is a rollout of a variant the flag does not have). The ETag
// covers the overlays: a rollout's step changes what evaluators must fetch.
func (s *Set) WithOverlays(o map[string]Overlay) *Set {
	if len(o) == 0 {
		return s
	}
	out := &Set{flags: maps.Clone(s.flags), keys: s.keys, metadata: s.metadata, problems: s.problems}
	h := sha256.New()
	h.Write([]byte(s.etag))
	for _, key := range slices.Sorted(maps.Keys(o)) {
		f, ok := out.flags[key]
		if !ok {
			continue
		}
		ov := o[key]
		c := *f
		if c.Service == "" && ov.Service != "" {
			c.Service = ov.Service
		}
		if r := ov.Rollout; r != nil && r.Percent > 0 {
			if _, ok := c.Variants[r.Variant]; ok {
				c.rollout = &Rollout{Variant: r.Variant, Percent: min(r.Percent, 100)}
				fmt.Fprintf(h, "|%s:%s:%d", key, r.Variant, c.rollout.Percent)
			}
		}
		if x := ov.Experiment; x != nil {
			if _, ok := c.Variants[x.Control]; ok {
				cx := *x
				cx.salt = bucket.TrafficSalt(x.Name)
				c.experiment = &cx
				fmt.Fprintf(h, "|%s:x:%s:%g:%s:%v", key, x.Name, x.Traffic, x.Control, x.Stopped)
			}
		}
		fmt.Fprintf(h, "|%s@%s", key, c.Service)
		out.flags[key] = &c
	}
	out.etag = `"` + base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:18]) + `"`
	return out
}

// experimented is r as the flag's experiment serves it to targeting key tk.
func (f *Flag) experimented(r Result, tk string) Result {
	x := f.experiment
	if x == nil || tk == "" || r.Variant == "" || r.Variant == x.Control {
		return r
	}
	if bucket.InShare(bucket.Of(x.salt, tk), x.Traffic) && !slices.Contains(x.Stopped, r.Variant) {
		return r
	}
	return Result{Key: f.Key, Value: f.Variants[x.Control], Variant: x.Control, Reason: ReasonSplit, Metadata: f.resultMeta}
}

// Rollout returns the flag's rollout, or nil.
func (f *Flag) Rollout() *Rollout { return f.rollout }

// rolled is the flag rollout's answer for the context's targeting key, if the user is in its share.
func (f *Flag) rolled(ctx Context) (Result, bool) {
	if f.rollout == nil {
		return Result{}, false
	}
	tk, _ := ctx[TargetingKey].(string)
	return f.rolledFor(tk)
}

// rolledFor is the flag rollout's answer for a targeting key ("" none), if the user is in its share.
func (f *Flag) rolledFor(tk string) (Result, bool) {
	r := f.rollout
	if r == nil || f.State == StateDisabled {
		return Result{}, false
	}
	if r.Percent < 100 {
		if tk == "" || bucket.Of(RolloutSalt+f.Key, tk) < uint32((100-r.Percent)*bucket.N/100) {
			return Result{}, false
		}
	}
	return Result{Key: f.Key, Value: f.Variants[r.Variant], Variant: r.Variant, Reason: ReasonSplit, Metadata: f.resultMeta}, true
}

// EvaluateKey resolves a flag for a targeting key ("" for none) with attrs as the rest of the
// context (nil for none): the gateway's per-request flags. A static flag, a flag rollout's share
// and a plain fractional split are resolved without building a context, so they cost no
// allocation; other targeting gets the whole context, as Evaluate would.
func (e *Evaluator) EvaluateKey(s *Set, key, tk string, attrs Context) Result {
	r := e.resolveKey(s, key, tk, attrs)
	if e.Exposed != nil && tk != "" && r.Variant != "" {
		e.Exposed(r.Key, tk, r.Variant)
	}
	return r
}

func (e *Evaluator) resolveKey(s *Set, key, tk string, attrs Context) Result {
	f, ok := s.Flag(key)
	if !ok {
		return e.resolve(s, key, nil) // FLAG_NOT_FOUND, with its message
	}
	return f.experimented(e.resolveFlagKey(f, tk, attrs), tk)
}

func (e *Evaluator) resolveFlagKey(f *Flag, tk string, attrs Context) Result {
	if r, ok := f.rolledFor(tk); ok {
		return r
	}
	switch {
	case f.State == StateDisabled || (f.rule == nil && f.ruleErr == nil):
		return f.static()
	case f.ruleErr != nil:
		return f.parseError()
	case f.split != nil:
		return e.evaluateSplit(f, tk, tk != "")
	}
	ctx := make(Context, len(attrs)+1)
	for k, v := range attrs {
		ctx[k] = v
	}
	if tk != "" {
		ctx[TargetingKey] = tk
	}
	return e.resolveFlag(f, ctx)
}
