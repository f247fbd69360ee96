package flags

import (
	"fmt"
	"testing"

	"aviary.dev/aviary/internal/bucket"
)

const experimentDoc = `{"flags": {
  "checkout": {"state": "ENABLED", "variants": {"on": true, "off": false, "blue": "b"}, "defaultVariant": "off",
    "targeting": {"fractional": [{"var": "targetingKey"}, ["off", 34], ["on", 33], ["blue", 33]]}}
}}`

// A flag experiment's hold: units outside its traffic share get control, and so do the units of
// a stopped arm; Evaluate, EvaluateKey and EvaluateAll agree, and exposures are what was served.
func TestExperimentHoldOnAFlag(t *testing.T) {
	base := mustParse(t, experimentDoc)
	x := &Experiment{Name: "checkout-exp", Traffic: 50, Control: "off"}
	s := base.WithOverlays(map[string]Overlay{"checkout": {Experiment: x}})
	if s.ETag() == base.ETag() {
		t.Error("the experiment's hold did not change the ETag")
	}
	exposed := map[string]string{}
	e := Evaluator{Exposed: func(_, key, variant string) { exposed[key] = variant }}
	got := map[string]int{}
	for i := range 3000 {
		tk := fmt.Sprintf("user-%d", i)
		own := e.Evaluate(base, "checkout", Context{TargetingKey: tk}).Variant
		r := e.Evaluate(s, "checkout", Context{TargetingKey: tk})
		in := bucket.InShare(bucket.Of(bucket.TrafficSalt("checkout-exp"), tk), 50)
		if (in && r.Variant != own) || (!in && r.Variant != "off") {
			t.Fatalf("%s (in the share: %v) got %q; the flag alone gives %q", tk, in, r.Variant, own)
		}
		if k := e.EvaluateKey(s, "checkout", tk, nil); k.Variant != r.Variant {
			t.Fatalf("%s: EvaluateKey %q, Evaluate %q", tk, k.Variant, r.Variant)
		}
		if all := e.EvaluateAll(s, Context{TargetingKey: tk}); all[0].Variant != r.Variant || exposed[tk] != r.Variant {
			t.Fatalf("%s: EvaluateAll %q, Evaluate %q, exposed %q", tk, all[0].Variant, r.Variant, exposed[tk])
		}
		got[r.Variant]++
	}
	if got["on"] < 400 || got["on"] > 600 || got["off"] < 1900 {
		t.Errorf("variants served %v: want about a sixth on, a sixth blue, the rest off", got)
	}

	// "on" is stopped: its units get control; blue's keep blue.
	x.Stopped = []string{"on"}
	s = base.WithOverlays(map[string]Overlay{"checkout": {Experiment: x}})
	for i := range 3000 {
		tk := fmt.Sprintf("user-%d", i)
		r := e.EvaluateKey(s, "checkout", tk, nil)
		if r.Variant == "on" {
			t.Fatalf("%s still gets the stopped arm's variant", tk)
		}
	}
	// Without a targeting key there is no unit: the flag answers as it would.
	if r := e.Evaluate(s, "checkout", Context{}); r.Variant != e.Evaluate(base, "checkout", Context{}).Variant {
		t.Errorf("no key: %+v", r)
	}
}
