package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// cubicBomb is a config of n services, each of n versions, each of n endpoints, all aliases of
// the first: about 23n bytes that the checker would walk as n³ values.
func cubicBomb(n int) string {
	var b strings.Builder
	b.WriteString("services:\n  - &s\n    name: a\n    versions:\n      - &v\n        name: v1\n")
	b.WriteString(`        endpoints: [&e "http://h:1"` + strings.Repeat(", *e", n-1) + "]\n")
	b.WriteString(strings.Repeat("      - *v\n", n-1))
	b.WriteString(strings.Repeat("  - *s\n", n-1))
	return b.String()
}

// exponentialBomb nests levels lists of nine aliases of the level below in an LLM parameter,
// which takes any value: 9^levels values.
func exponentialBomb(levels int) string {
	var b strings.Builder
	b.WriteString("services:\n  - name: a\n    versions: [{name: v1, endpoints: [\"http://h:1\"]}]\n    llm:\n      api: openai\n      params:\n")
	b.WriteString("        l0: &l0 [x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "        l%d: &l%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 9), ", "))
	}
	return b.String()
}

// The bombs are refused by the count of what their aliases would add, with the line of the first
// alias, before any walk: the error is the budget's, never one of the checker's or the decoder's.
func TestAliasBombsAreRefusedByCount(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		line     int
	}{
		{"cubic, 6.8 KB", cubicBomb(300), 7},
		{"exponential", exponentialBomb(12), 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			var errs Errors
			if !errors.As(err, &errs) || len(errs) != 1 {
				t.Fatalf("Parse of a %d-byte alias bomb: %v; want one error", len(tc.in), err)
			}
			e := errs[0]
			if e.Line != tc.line || !strings.Contains(e.Msg, "YAML aliases expand this file to more than") ||
				!strings.Contains(e.Msg, fmt.Sprintf("aliases may add at most %d", MinAliasBudget)) {
				t.Errorf("the bomb's error: %v; want the alias budget's, at line %d", e, tc.line)
			}
		})
	}
}

// Exactly the budget is accepted and one value more is refused: a count, not a clock, decides.
func TestAliasBudgetIsACount(t *testing.T) {
	// a holds 1 + 1000 values; each of the 100 aliases in b adds the 1000 more than itself.
	base := "a: &a [" + strings.TrimSuffix(strings.Repeat("1, ", 1000), ", ") + "]\n" +
		"b: [" + strings.TrimSuffix(strings.Repeat("*a, ", MinAliasBudget/1000), ", ") + "]\n"
	oneMore := base + "c: &c [x]\nd: *c\n" // an alias of a list of one adds one value
	for _, tc := range []struct {
		name    string
		in      string
		refused bool
	}{{"the budget", base, false}, {"one more", oneMore, true}} {
		var root yaml.Node
		if err := yaml.Unmarshal([]byte(tc.in), &root); err != nil {
			t.Fatal(err)
		}
		if e := checkAliases(&root); (e != nil) != tc.refused {
			t.Errorf("%s: checkAliases = %v; want refused %v", tc.name, e, tc.refused)
		}
	}
}

// Aliases as people use them (one strategy for several services) are fine.
func TestModestAliasesAreAccepted(t *testing.T) {
	in := `
services:
  - name: a
    versions: [{name: v1, endpoints: ["http://h:1"]}, {name: v2, endpoints: ["http://h:2"]}]
    release: v1
    strategy: &canary {canary: {steps: [{setWeight: 10}, {pause: {duration: 1m}}, {setWeight: 50}]}}
  - name: b
    match: {pathPrefix: /b}
    versions: [{name: v1, endpoints: ["http://h:3"]}]
    release: v1
    strategy: *canary
`
	c, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if c.Services[1].Strategy == nil || c.Services[1].Strategy.Canary == nil || len(c.Services[1].Strategy.Canary.Steps) != 3 {
		t.Errorf("the aliased strategy decoded as %+v", c.Services[1].Strategy)
	}
}
