package config

import "testing"

// TestBuiltinTableIsWhole: every listed builtin has a row, every row is listed, and a row's
// default margin passes its own validation, so a new builtin cannot be half added.
func TestBuiltinTableIsWhole(t *testing.T) {
	if len(Builtins) != len(builtinSpecs) {
		t.Errorf("Builtins lists %d metrics, the table has %d rows", len(Builtins), len(builtinSpecs))
	}
	for _, b := range Builtins {
		spec, ok := b.Spec()
		if !ok {
			t.Errorf("builtin %q has no row in the table", b)
			continue
		}
		if spec.Margin <= 0 || (spec.Test == ScoreTest) != (spec.Margin < 1) {
			t.Errorf("builtin %q: default margin %g does not fit its test", b, spec.Margin)
		}
		if spec.Slowdown && !spec.Quantiled {
			t.Errorf("builtin %q takes a slowdown but has no quantile", b)
		}
	}
	if _, ok := Builtin("").Spec(); ok {
		t.Error("the empty name has a row")
	}
}
