package flags

import (
	"fmt"
	"testing"

	"pgregory.net/rapid"
)

const overlayDoc = `{"flags": {
  "checkout": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
    "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on", null]}},
  "banner": {"state": "DISABLED", "variants": {"a": "A", "b": "B"}, "defaultVariant": "a"}
}}`

func rolledOut(s *Set, percent int) *Set {
	return s.WithOverlays(map[string]Overlay{"checkout": {Service: "shop", Rollout: &Rollout{Variant: "on", Percent: percent}},
		"banner": {Rollout: &Rollout{Variant: "b", Percent: 100}}})
}

// A user in a flag rollout's share gets the variant; one outside keeps the flag's own evaluation
// (its targeting included); a disabled flag stays disabled whatever its rollout.
func TestRolloutShareAndOwnEvaluation(t *testing.T) {
	base := mustParse(t, overlayDoc)
	var e Evaluator
	s := rolledOut(base, 30)
	in, out := 0, 0
	for i := range 2000 {
		r := e.Evaluate(s, "checkout", Context{TargetingKey: fmt.Sprintf("user-%d", i)})
		switch {
		case r.Reason == ReasonSplit && r.Variant == "on":
			in++
		case r.Reason == ReasonDefault && r.Variant == "off":
			out++
		default:
			t.Fatalf("user-%d: %+v", i, r)
		}
	}
	if in < 520 || in > 680 {
		t.Errorf("%d of 2000 users in a 30%% rollout", in)
	}
	// Outside the share, targeting still decides: an employee gets "on" by the flag's own rule.
	for i := range 200 {
		ctx := Context{TargetingKey: fmt.Sprintf("emp-%d", i), "email": fmt.Sprintf("e%d@example.com", i)}
		if r := e.Evaluate(s, "checkout", ctx); r.Variant != "on" {
			t.Fatalf("emp-%d: %+v; the flag's targeting gives employees on", i, r)
		}
	}
	if r := e.Evaluate(s, "checkout", Context{}); r.Reason == ReasonSplit {
		t.Errorf("no targeting key, 30%% rollout: %+v; only keyed users can be in a partial share", r)
	}
	if r := e.Evaluate(rolledOut(base, 100), "checkout", Context{}); r.Variant != "on" || r.Reason != ReasonSplit {
		t.Errorf("100%% rollout, no key: %+v, want on", r)
	}
	if r := e.Evaluate(s, "banner", Context{TargetingKey: "u"}); r.Reason != ReasonDisabled {
		t.Errorf("disabled flag with a 100%% rollout: %+v; the kill switch wins", r)
	}
	all := e.EvaluateAll(rolledOut(base, 100), Context{TargetingKey: "u"})
	if all[1].Key != "checkout" || all[1].Variant != "on" {
		t.Errorf("EvaluateAll with a rollout: %+v", all)
	}
	if f, _ := s.Flag("checkout"); f.Service != "shop" || f.Rollout().Percent != 30 {
		t.Errorf("overlay: service %q rollout %+v", f.Service, f.Rollout())
	}
	if base.ETag() == s.ETag() || s.ETag() == rolledOut(base, 31).ETag() || s.ETag() != rolledOut(base, 30).ETag() {
		t.Error("the ETag must change with the rollout's share, and only with it")
	}
	if f, _ := base.Flag("checkout"); f.Rollout() != nil {
		t.Error("WithOverlays changed the set it was given")
	}
}

// Monotonic: as a rollout's share grows no user leaves it, and as it shrinks none joins.
func TestRolloutShareIsMonotonic(t *testing.T) {
	base := mustParse(t, overlayDoc)
	var e Evaluator
	rapid.Check(t, func(t *rapid.T) {
		p1 := rapid.IntRange(0, 100).Draw(t, "p1")
		p2 := rapid.IntRange(p1, 100).Draw(t, "p2")
		keys := rapid.SliceOfN(rapid.String(), 1, 100).Draw(t, "keys")
		small, large := rolledOut(base, p1), rolledOut(base, p2)
		for _, k := range keys {
			ctx := Context{TargetingKey: k}
			if e.Evaluate(small, "checkout", ctx).Reason == ReasonSplit && e.Evaluate(large, "checkout", ctx).Reason != ReasonSplit {
				t.Fatalf("user %q in the %d%% share but not in the %d%% one", k, p1, p2)
			}
		}
	})
}

// EvaluateKey answers as Evaluate with the same context, for every kind of flag, and the fast kinds
// (static, a rollout's share, a plain fractional split) cost no allocation.
func TestEvaluateKeyAgreesWithEvaluate(t *testing.T) {
	s := rolledOut(mustParse(t, `{"flags": {
  "checkout": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
    "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on", null]}},
  "banner": {"state": "DISABLED", "variants": {"a": "A", "b": "B"}, "defaultVariant": "a"},
  "split": {"state": "ENABLED", "variants": {"x": 1, "y": 2}, "defaultVariant": "x",
    "targeting": {"fractional": [["x", 30], ["y", 70]]}},
  "static": {"state": "ENABLED", "variants": {"s": "S"}, "defaultVariant": "s"}}}`), 40)
	var e Evaluator
	rapid.Check(t, func(t *rapid.T) {
		tk := rapid.StringMatching(`[a-z0-9@.]{0,12}`).Draw(t, "tk")
		email := rapid.SampledFrom([]string{"", "a@example.com", "b@gmail.com"}).Draw(t, "email")
		key := rapid.SampledFrom([]string{"checkout", "banner", "split", "static", "missing"}).Draw(t, "key")
		ctx, attrs := Context{}, Context{}
		if tk != "" {
			ctx[TargetingKey] = tk
		}
		if email != "" {
			ctx["email"], attrs["email"] = email, email
		}
		want, got := e.Evaluate(s, key, ctx), e.EvaluateKey(s, key, tk, attrs)
		if got.Variant != want.Variant || got.Reason != want.Reason || got.ErrorCode != want.ErrorCode || !sameValue(got.Value, want.Value) {
			t.Fatalf("%s for %q %v: EvaluateKey %+v, Evaluate %+v", key, tk, attrs, got, want)
		}
	})
	inShare := ""
	for i := 0; inShare == ""; i++ {
		if tk := fmt.Sprintf("user-%d", i); e.Evaluate(s, "checkout", Context{TargetingKey: tk}).Reason == ReasonSplit {
			inShare = tk
		}
	}
	for _, c := range [][2]string{{"static", "user-42"}, {"split", "user-42"}, {"checkout", inShare}} {
		if n := testing.AllocsPerRun(100, func() { e.EvaluateKey(s, c[0], c[1], nil) }); n != 0 {
			t.Errorf("EvaluateKey(%s, %s): %v allocations, want none", c[0], c[1], n)
		}
	}
}
