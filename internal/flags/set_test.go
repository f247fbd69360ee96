package flags

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func mustParse(t testing.TB, doc string) *Set {
	t.Helper()
	s, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return s
}

func TestParseErrorsNameTheirPaths(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		want []string // each a line of the error
	}{
		{"default variant not a variant",
			`{"flags": {"new-checkout": {"state": "ENABLED", "variants": {"off": false, "on2": true}, "defaultVariant": "on"}}}`,
			[]string{`flags.new-checkout.defaultVariant: "on" is not one of the variants off, on2; name one of them`}},
		{"every error at once",
			`{"flags": {
			   "a": {"state": "ON", "variants": {"x": [1, 2]}},
			   "b": {"state": "ENABLED", "variants": {"x": 1}, "defaultvariant": "x"},
			   "c": {"state": "ENABLED", "variants": {}, "metadata": {"service": 3, "deep": {"x": 1}}}
			 }, "flagz": {}}`,
			[]string{
				`flagz: unknown field; a flagd document has flags, $evaluators, metadata and $schema`,
				`flags.a.state: "ON" is not a state; set "ENABLED" or "DISABLED"`,
				`flags.a.variants.x: [1,2] is not a flag value; use a boolean, string, number or object`,
				`flags.b.defaultvariant: unknown field; a flag has state, variants, defaultVariant, targeting and metadata`,
				`flags.c.variants: must be an object naming at least one variant`,
				`flags.c.metadata.deep: must be a string, number or boolean (flagd metadata is flat)`,
				`flags.c.metadata.service: must be the name of an Aviary service (a string)`,
			}},
		{"missing flags", `{"metadata": {"team": "web"}}`, []string{`flags: missing; name the flags in an object`}},
		{"missing state and variants", `{"flags": {"k": {}}}`,
			[]string{`flags.k.state: missing; set "ENABLED" or "DISABLED"`, `flags.k.variants: missing; name at least one variant`}},
		{"targeting not an object", `{"flags": {"k": {"state": "ENABLED", "variants": {"a": 1}, "targeting": "a"}}}`,
			[]string{`flags.k.targeting: must be a JsonLogic object`}},
		{"evaluator not a rule", `{"flags": {}, "$evaluators": {"x": 3}}`, []string{`$evaluators.x: must be a JsonLogic object`}},
		{"syntax error with its line", "{\"flags\": {\n\"k\": {\"state\": \"ENABLED\",,}}}",
			[]string{`flag document: line 2: invalid character ','`, `write one JSON object`}},
		{"not one document", `{"flags": {}} {"flags": {}}`, []string{`more than one JSON value`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.doc))
			if err == nil {
				t.Fatal("Parse accepted the document")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestParseReadsFlagdFormat(t *testing.T) {
	s := mustParse(t, `{
	  "$schema": "https://flagd.dev/schema/v0/flags.json",
	  "metadata": {"team": "web", "version": 2},
	  "flags": {
	    "b": {"state": "DISABLED", "variants": {"on": true}, "defaultVariant": null},
	    "a": {"state": "ENABLED", "variants": {"x": {"deep": [1, "two"]}, "y": 1.5}, "defaultVariant": "x",
	          "targeting": {}, "metadata": {"service": "shop", "version": 3}}
	  }}`)
	if got := s.Keys(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Keys = %v", got)
	}
	a, _ := s.Flag("a")
	if a.State != StateEnabled || a.DefaultVariant != "x" || a.Service != "shop" || a.Targeting != nil {
		t.Errorf("flag a = %+v", a)
	}
	b, _ := s.Flag("b")
	if b.State != StateDisabled || b.DefaultVariant != "" {
		t.Errorf("flag b = %+v", b)
	}
	r := (&Evaluator{}).Evaluate(s, "a", nil)
	if r.Reason != ReasonStatic || r.Metadata["team"] != "web" || r.Metadata["version"] != 3.0 || r.Metadata["service"] != "shop" {
		t.Errorf("result = %+v; want STATIC, set metadata overridden by the flag's", r)
	}
	if _, ok := s.Flag("c"); ok {
		t.Error("Flag(c) found a flag that is not there")
	}
	if b.Service != "" {
		t.Errorf("flag b has service %q, named nowhere", b.Service)
	}
}

func TestServiceFromSetMetadata(t *testing.T) {
	s := mustParse(t, `{"metadata": {"service": "shop"}, "flags": {
	  "inherits": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a"},
	  "own": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a", "metadata": {"service": "cart"}}}}`)
	for key, want := range map[string]string{"inherits": "shop", "own": "cart"} {
		if f, _ := s.Flag(key); f.Service != want {
			t.Errorf("%s: service %q, want %q", key, f.Service, want)
		}
	}
	if _, err := Parse([]byte(`{"metadata": {"service": true}, "flags": {}}`)); err == nil ||
		!strings.Contains(err.Error(), "metadata.service: must be the name of an Aviary service") {
		t.Errorf("set-level service not a string: %v", err)
	}
}

func TestNilSetIsEmpty(t *testing.T) {
	var s *Set
	e := &Evaluator{}
	if r := e.Evaluate(s, "k", nil); r.ErrorCode != ErrorFlagNotFound {
		t.Errorf("Evaluate on nil set: %+v", r)
	}
	if all := e.EvaluateAll(s, nil); len(all) != 0 || s.Len() != 0 || len(s.Keys()) != 0 {
		t.Errorf("nil set: %v %d %v", all, s.Len(), s.Keys())
	}
	if m := Merge(nil, s); m.Len() != 0 || m.ETag() == "" {
		t.Errorf("Merge of nothing: %d flags, ETag %q", m.Len(), m.ETag())
	}
}

func TestRefsResolvedAtParse(t *testing.T) {
	s := mustParse(t, `{
	  "$evaluators": {
	    "is_staff": {"ends_with": [{"var": "email"}, "@example.com"]},
	    "staff_on_canary": {"and": [{"$ref" : "is_staff"}, {"==": [{"var": "tier"}, "gold"]}]},
	    "loop_a": {"!": {"$ref": "loop_b"}},
	    "loop_b": {"!": {"$ref": "loop_a"}}
	  },
	  "flags": {
	    "nested": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
	               "targeting": {"if": [{"$ref":"staff_on_canary"}, "on", "off"]}},
	    "dangling": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
	                 "targeting": {"if": [{"$ref": "nobody"}, "on", "off"]}},
	    "cycle": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
	              "targeting": {"if": [{"$ref": "loop_a"}, "on", "off"]}}
	  }}`)
	f, _ := s.Flag("nested")
	if strings.Contains(string(f.Targeting), "$ref") || !strings.Contains(string(f.Targeting), "ends_with") {
		t.Errorf("targeting not resolved: %s", f.Targeting)
	}
	e := &Evaluator{}
	if r := e.Evaluate(s, "nested", Context{"email": "ann@example.com", "tier": "gold"}); r.Value != true {
		t.Errorf("nested ref: %+v", r)
	}
	problems := s.Problems()
	if len(problems) != 2 || !strings.HasPrefix(problems[0], "flags.cycle.targeting: ") ||
		!strings.Contains(problems[0], "cycle") || !strings.HasPrefix(problems[1], `flags.dangling.targeting: $ref "nobody" names no evaluator`) {
		t.Errorf("Problems = %q", problems)
	}
	for _, k := range []string{"dangling", "cycle"} {
		if r := e.Evaluate(s, k, nil); r.Reason != ReasonError || r.ErrorCode != ErrorParse || r.Value != nil {
			t.Errorf("%s: %+v, want PARSE_ERROR", k, r)
		}
	}
}

func TestMergeLaterSetWins(t *testing.T) {
	a := mustParse(t, `{"metadata": {"src": "a", "team": "web"}, "flags": {
	  "x": {"state": "ENABLED", "variants": {"v": "a-x"}, "defaultVariant": "v"},
	  "y": {"state": "ENABLED", "variants": {"v": "a-y"}, "defaultVariant": "v", "targeting": {"$ref": "gone"}},
	  "web.old": {"state": "ENABLED", "variants": {"v": 1}, "defaultVariant": "v", "targeting": {"nope": []}}}}`)
	b := mustParse(t, `{"metadata": {"src": "b"}, "flags": {
	  "y": {"state": "ENABLED", "variants": {"v": "b-y"}, "defaultVariant": "v"},
	  "z": {"state": "ENABLED", "variants": {"v": "b-z"}, "defaultVariant": "v"}}}`)
	m := Merge(a, nil, b)
	if got := m.Keys(); !slices.Equal(got, []string{"web.old", "x", "y", "z"}) {
		t.Fatalf("Keys = %v", got)
	}
	e := &Evaluator{}
	for key, want := range map[string]string{"x": "a-x", "y": "b-y", "z": "b-z"} {
		if r := e.Evaluate(m, key, nil); r.Value != want {
			t.Errorf("%s = %+v, want %q", key, r, want)
		}
	}
	if r := e.Evaluate(m, "x", nil); r.Metadata["src"] != "a" {
		t.Errorf("x keeps its own set's metadata: %v", r.Metadata)
	}
	if md := m.Metadata(); md["src"] != "b" || md["team"] != "web" {
		t.Errorf("merged set metadata = %v", md)
	}
	if len(a.Problems()) != 2 || len(m.Problems()) != 1 || !strings.HasPrefix(m.Problems()[0], `flags.web.old.targeting: unknown operator "nope"`) {
		t.Errorf("problems: a %q, merged %q (b's y replaced a broken one)", a.Problems(), m.Problems())
	}
	if Merge(b, a).ETag() == m.ETag() {
		t.Error("merge order must matter")
	}
	// x resolves with a's metadata even though b's set-level src wins: the JSON and the ETag say so.
	a2 := mustParse(t, strings.Replace(mustJSONString(t, a), `"src":"a"`, `"src":"a2"`, 1))
	if Merge(a2, b).ETag() == m.ETag() {
		t.Error("a change of the metadata flag x resolves with kept the merged ETag")
	}
	round := mustParse(t, mustJSONString(t, m))
	if round.ETag() != m.ETag() {
		t.Errorf("merged set's JSON round trip changed the ETag:\n%s", mustJSONString(t, m))
	}
	if r := e.Evaluate(round, "x", nil); r.Metadata["src"] != "a" || r.Metadata["team"] != "web" {
		t.Errorf("x after a round trip: %v", r.Metadata)
	}
}

func mustJSONString(t *testing.T, s *Set) string {
	t.Helper()
	b, err := s.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestETagIsContent(t *testing.T) {
	one := mustParse(t, `{"flags": {"a": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on",
	  "targeting": {"if": [{"$ref": "r"}, "on", null]}}, "b": {"state": "DISABLED", "variants": {"x": 1}}},
	  "$evaluators": {"r": {"==": [1, 1]}}}`)
	two := mustParse(t, `{
	  "flags": {
	    "b": {"variants": {"x": 1}, "state": "DISABLED"},
	    "a": {"defaultVariant": "on", "targeting": {"if": [{"==": [1, 1]}, "on", null]}, "variants": {"off": false, "on": true}, "state": "ENABLED"}
	  }
	}`)
	if one.ETag() != two.ETag() {
		t.Errorf("same content, different ETags: %s %s", one.ETag(), two.ETag())
	}
	if e := one.ETag(); len(e) < 3 || e[0] != '"' || e[len(e)-1] != '"' {
		t.Errorf("ETag %s is not quoted", e)
	}
	b, err := one.JSON()
	if err != nil {
		t.Fatal(err)
	}
	again := mustParse(t, string(b))
	if again.ETag() != one.ETag() {
		t.Errorf("JSON round trip changed the ETag: %s", b)
	}
	changed := mustParse(t, strings.Replace(string(b), `"DISABLED"`, `"ENABLED"`, 1))
	if changed.ETag() == one.ETag() {
		t.Error("a changed state kept the ETag")
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil || doc["$evaluators"] != nil {
		t.Errorf("JSON = %s (%v); want refs resolved and no $evaluators", b, err)
	}
}

func TestWithStateIsTheKillSwitch(t *testing.T) {
	s := mustParse(t, `{"flags": {"k": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"},
	  "other": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a"}}}`)
	off, err := s.WithState("k", StateDisabled)
	if err != nil {
		t.Fatal(err)
	}
	e := &Evaluator{}
	if r := e.Evaluate(off, "k", nil); r.Reason != ReasonDisabled || r.Value != nil {
		t.Errorf("disabled: %+v", r)
	}
	if r := e.Evaluate(s, "k", nil); r.Value != true {
		t.Errorf("the original set changed: %+v", r)
	}
	if off.ETag() == s.ETag() || off.Len() != 2 {
		t.Errorf("ETag %s kept, or flags lost (%d)", off.ETag(), off.Len())
	}
	on, _ := off.WithState("k", StateEnabled)
	if on.ETag() != s.ETag() {
		t.Error("enabling again did not restore the ETag")
	}
	if _, err := s.WithState("nope", StateDisabled); err == nil || !strings.Contains(err.Error(), "check the key") {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := s.WithState("k", State("off")); err == nil {
		t.Error("a state that is not one was accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"flags": {"a": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on", "targeting": {"fractional": [["on", 1]]}}}}`))
	f.Add([]byte(`{"flags": {"a": {"state": "ENABLED", "variants": {"on": true}, "targeting": {"if": [{"$ref": "x"}, "on"]}}}, "$evaluators": {"x": {"$ref": "x"}}}`))
	f.Add([]byte(`{"flags": null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			return
		}
		e := &Evaluator{}
		for _, r := range e.EvaluateAll(s, Context{TargetingKey: "k", "n": 1}) {
			if r.Reason == "" {
				t.Fatalf("result without a reason: %+v", r)
			}
		}
	})
}

// FuzzEvaluate runs arbitrary targeting against arbitrary contexts: an evaluation may fail, never panic.
func FuzzEvaluate(f *testing.F) {
	f.Add(`{"fractional": [{"var": "k"}, ["a", 1], [{"if": [{"var": "x"}, "b", "a"]}, {"var": "w"}]]}`, `{"k": "u", "x": 1, "w": 3}`)
	f.Add(`{"sem_ver": [{"var": "v"}, "~", 1.2]}`, `{"v": "v1.2.9"}`)
	f.Add(`{"if": [{"starts_with": [{"var": "e"}, "a"]}, "a", {"ends_with": [{"var": "e"}]}]}`, `{"e": ["a"]}`)
	f.Add(`{"reduce": [{"var": "xs"}, {"+": [{"var": "current"}, {"var": "accumulator"}]}, 0]}`, `{"xs": [1, "b", null]}`)
	f.Add(`{"substr": [{"var": "s"}, -9, 99]}`, `{"s": "abc"}`)
	f.Fuzz(func(t *testing.T, rule, ctxJSON string) {
		doc := `{"flags": {"f": {"state": "ENABLED", "variants": {"a": "a", "b": "b", "true": true}, "defaultVariant": "a", "targeting": ` + rule + `}}}`
		s, err := Parse([]byte(doc))
		if err != nil {
			return
		}
		var ctx map[string]any
		if json.Unmarshal([]byte(ctxJSON), &ctx) != nil {
			return
		}
		r := (&Evaluator{}).Evaluate(s, "f", ctx)
		if r.Reason == "" {
			t.Fatalf("result without a reason: %+v", r)
		}
	})
}
