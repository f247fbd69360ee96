package flags

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// withoutSplits returns a copy of the set whose flags all take the JsonLogic path.
func withoutSplits(s *Set) *Set {
	n := &Set{flags: maps.Clone(s.flags), metadata: s.metadata}
	for k, f := range n.flags {
		c := *f
		c.split = nil
		n.flags[k] = &c
	}
	n.seal()
	return n
}

// TestSplitRuleMatchesJsonLogic: the compiled split answers exactly as flagd's fractional run by the
// library, for any weights (negative and zero included), bucketing, key (empty and absent included)
// and version.
func TestSplitRuleMatchesJsonLogic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 5).Draw(t, "buckets")
		entries := make([]string, n)
		variants := []string{`"none": 0`}
		for i := range n {
			name := fmt.Sprintf("v%d", i)
			variants = append(variants, fmt.Sprintf(`%q: %d`, name, i+1))
			switch rapid.IntRange(0, 3).Draw(t, "form") {
			case 0:
				entries[i] = fmt.Sprintf(`[%q]`, name)
			default:
				entries[i] = fmt.Sprintf(`[%q, %d]`, name, rapid.IntRange(-20, 1000).Draw(t, "weight"))
			}
		}
		args := strings.Join(entries, ", ")
		keyOnly := rapid.Bool().Draw(t, "keyOnly")
		if keyOnly {
			args = `{"var": "targetingKey"}, ` + args
		}
		doc := fmt.Sprintf(`{"flags": {"f": {"state": "ENABLED", "variants": {%s}, "defaultVariant": "none",
		  "targeting": {"fractional": [%s]}}}}`, strings.Join(variants, ", "), args)
		fast, err := Parse([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		f, _ := fast.Flag("f")
		total := 0 // the split compiles whenever some weight is positive
		if f.split != nil {
			total = int(f.split.total)
		}
		slow := withoutSplits(fast)
		e := &Evaluator{Fractional: FractionalVersion(rapid.IntRange(0, 1).Draw(t, "version"))}
		for range 20 {
			ctx := Context{}
			switch rapid.IntRange(0, 5).Draw(t, "key kind") {
			case 0: // absent
			case 1:
				ctx[TargetingKey] = ""
			case 2:
				ctx[TargetingKey] = nil
			default:
				ctx[TargetingKey] = rapid.String().Draw(t, "key")
			}
			got, want := e.Evaluate(fast, "f", ctx), e.Evaluate(slow, "f", ctx)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("context %v (split total %d):\n fast %+v\n library %+v", ctx, total, got, want)
			}
		}
	})
}

func TestSplitRuleCompiles(t *testing.T) {
	cases := map[string]bool{
		`{"fractional": [["on", 10], ["off", 90]]}`:                     true,
		`{"fractional": [{"var": "targetingKey"}, ["on"], ["off", 3]]}`: true,
		`{"fractional": [{"var": "user.id"}, ["on", 10], ["off", 90]]}`: false,
		`{"fractional": [{"cat": ["a", {"var": "k"}]}, ["on", 1]]}`:     false,
		`{"fractional": [["on", {"var": "w"}], ["off", 90]]}`:           false,
		`{"fractional": [["on", 0], ["off", 0]]}`:                       false,
		`{"fractional": [["on", 1.5], ["off", 1]]}`:                     false,
		`{"fractional": [[true, 1], [false, 1]]}`:                       false,
		`{"if": [true, {"fractional": [["on", 1]]}]}`:                   false,
		`{"fractional": [["on", 2147483647], ["off", 1]]}`:              false,
	}
	for rule, want := range cases {
		s := mustParse(t, `{"flags": {"f": {"state": "ENABLED", "variants": {"on": 1, "off": 0}, "defaultVariant": "off", "targeting": `+rule+`}}}`)
		if f, _ := s.Flag("f"); (f.split != nil) != want {
			t.Errorf("%s: compiled %v, want %v", rule, f.split != nil, want)
		}
	}
}
