package flags

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gherkin "github.com/cucumber/gherkin/go/v26"
	messages "github.com/cucumber/messages/go/v21"
)

// The flagd evaluator suite (open-feature/flagd-testbed, evaluator/), read at run time from the shared
// conformance directory; see its ORIGIN.md. It is not copied into this repository.

const testbedEnv = "AVIARY_FLAGD_TESTBED"

// testbedDir finds flagd-testbed: $AVIARY_FLAGD_TESTBED, else shared/conformance/flagd-testbed in the
// nearest ancestor of this package's directory that has one (../shared from /work/main).
func testbedDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv(testbedEnv); d != "" {
		if _, err := os.Stat(filepath.Join(d, "evaluator", "gherkin")); err != nil {
			t.Fatalf("%s=%s has no evaluator/gherkin: %v; point it at a checkout of open-feature/flagd-testbed", testbedEnv, d, err)
		}
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		cand := filepath.Join(dir, "shared", "conformance", "flagd-testbed")
		if _, err := os.Stat(filepath.Join(cand, "evaluator", "gherkin")); err == nil {
			return cand
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	t.Fatalf("flagd-testbed not found: put open-feature/flagd-testbed (release 3.9.0, evaluator/ and flags/) at "+
		"../shared/conformance/flagd-testbed beside the repository, or set %s to its directory", testbedEnv)
	return ""
}

// tagSet is one run of the suite: the scenarios not excluded by tag, with the evaluator's options.
type tagSet struct {
	name       string
	exclude    []string
	fractional FractionalVersion
}

// The v1 run also leaves out @fractional-nested: nested expressions in fractional came with v2 bucketing,
// and those scenarios' expected variants are v2 buckets (see their comments, "bv(100)=36"); the feature
// file says to exclude the tag for implementations without it. The v2 run (Aviary's default) has
// every scenario but the @fractional-v1 examples.
var tagSets = []tagSet{
	{"fractional-v1", []string{"@fractional-v2", "@fractional-nested"}, FractionalV1},
	{"fractional-v2", []string{"@fractional-v1"}, FractionalV2},
}

func TestConformanceFlagdEvaluator(t *testing.T) {
	dir := testbedDir(t)
	data, err := os.ReadFile(filepath.Join(dir, "evaluator", "flags", "testkit-flags.json"))
	if err != nil {
		t.Fatalf("read the testbed's flag file: %v", err)
	}
	set, err := Parse(data)
	if err != nil {
		t.Fatalf("parse testkit-flags.json: %v", err)
	}
	features, err := filepath.Glob(filepath.Join(dir, "evaluator", "gherkin", "*.feature"))
	if err != nil || len(features) == 0 {
		t.Fatalf("no evaluator/gherkin/*.feature under %s (%v)", dir, err)
	}
	pickles := readPickles(t, features)
	for _, ts := range tagSets {
		t.Run(ts.name, func(t *testing.T) {
			passed, total := 0, 0
			for _, p := range pickles {
				if slices.ContainsFunc(ts.exclude, func(tag string) bool { return hasTag(p, tag) }) {
					continue
				}
				total++
				name := fmt.Sprintf("%s/%s#%s", filepath.Base(p.Uri), p.Name, p.Id)
				ok := t.Run(name, func(t *testing.T) {
					w := &world{t: t, set: set, eval: &Evaluator{Fractional: ts.fractional, Now: fixedClock}}
					for _, st := range p.Steps {
						w.step(st)
					}
				})
				if ok {
					passed++
				}
			}
			t.Logf("flagd evaluator suite, %s: %d scenarios passed of %d", ts.name, passed, total)
			if passed != total {
				t.Errorf("%s: %d of %d scenarios failed", ts.name, total-passed, total)
			}
		})
	}
}

func fixedClock() time.Time { return time.Unix(1_700_000_000, 0) }

func readPickles(t *testing.T, files []string) []*messages.Pickle {
	t.Helper()
	var out []*messages.Pickle
	ids := &messages.Incrementing{}
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := gherkin.ParseGherkinDocument(r, ids.NewId)
		r.Close()
		if err != nil {
			t.Fatalf("parse %s: %v", f, err)
		}
		out = append(out, gherkin.Pickles(*doc, f, ids.NewId)...)
	}
	return out
}

func hasTag(p *messages.Pickle, tag string) bool {
	return slices.ContainsFunc(p.Tags, func(tg *messages.PickleTag) bool { return tg.Name == tag })
}

// world is one scenario's state, driven by the suite's steps.
type world struct {
	t        *testing.T
	set      *Set
	eval     *Evaluator
	kind     Kind
	key      string
	fallback any
	ctx      Context
	res      Result
	value    any // the value the caller sees: the result's, or its fallback
}

type stepDef struct {
	re *regexp.Regexp
	do func(w *world, args []string, table *messages.PickleTable)
}

var steps = []stepDef{
	{regexp.MustCompile(`^an evaluator$`), func(w *world, _ []string, _ *messages.PickleTable) {
		w.ctx = Context{}
	}},
	{regexp.MustCompile(`^a (Boolean|String|Integer|Float|Object)-flag with key "([^"]*)" and a fallback value "(.*)"$`),
		func(w *world, a []string, _ *messages.PickleTable) {
			w.kind = kindNamed(a[0])
			w.key = a[1]
			w.fallback = w.typed(w.kind, a[2])
		}},
	{regexp.MustCompile(`^a context containing a key "([^"]*)", with type "([^"]*)" and with value "(.*)"$`),
		func(w *world, a []string, _ *messages.PickleTable) {
			w.ctx[a[0]] = w.typed(kindNamed(a[1]), a[2])
		}},
	{regexp.MustCompile(`^a context containing a nested property with outer key "([^"]*)" and inner key "([^"]*)", with value "(.*)"$`),
		func(w *world, a []string, _ *messages.PickleTable) {
			w.ctx[a[0]] = map[string]any{a[1]: a[2]}
		}},
	{regexp.MustCompile(`^a context containing a targeting key with value "(.*)"$`),
		func(w *world, a []string, _ *messages.PickleTable) {
			w.ctx[TargetingKey] = a[0]
		}},
	{regexp.MustCompile(`^the flag was evaluated with details$`), func(w *world, _ []string, _ *messages.PickleTable) {
		w.res = w.eval.Evaluate(w.set, w.key, w.ctx).Expect(w.kind)
		w.value = w.res.Value
		if w.value == nil {
			w.value = w.fallback
		}
	}},
	{regexp.MustCompile(`^the resolved details value should be "(.*)"$`), func(w *world, a []string, _ *messages.PickleTable) {
		want := w.typed(w.kind, a[0])
		if !reflect.DeepEqual(w.value, want) {
			w.t.Errorf("value = %#v, want %#v (result %+v)", w.value, want, w.res)
		}
	}},
	{regexp.MustCompile(`^the reason should be "(.*)"$`), func(w *world, a []string, _ *messages.PickleTable) {
		if string(w.res.Reason) != a[0] {
			w.t.Errorf("reason = %s, want %s (result %+v)", w.res.Reason, a[0], w.res)
		}
	}},
	{regexp.MustCompile(`^the error-code should be "(.*)"$`), func(w *world, a []string, _ *messages.PickleTable) {
		if string(w.res.ErrorCode) != a[0] {
			w.t.Errorf("error code = %q, want %q (result %+v)", w.res.ErrorCode, a[0], w.res)
		}
	}},
	{regexp.MustCompile(`^the resolved metadata should contain$`), func(w *world, _ []string, tbl *messages.PickleTable) {
		if tbl == nil || len(tbl.Rows) < 2 {
			w.t.Fatal("step needs a table key | metadata_type | value")
		}
		for _, row := range tbl.Rows[1:] {
			key, typ, val := row.Cells[0].Value, row.Cells[1].Value, row.Cells[2].Value
			want := w.typed(kindNamed(typ), val)
			if got := w.res.Metadata[key]; !reflect.DeepEqual(got, want) {
				w.t.Errorf("metadata %q = %#v, want %#v", key, got, want)
			}
		}
	}},
	{regexp.MustCompile(`^the resolved metadata is empty$`), func(w *world, _ []string, _ *messages.PickleTable) {
		if len(w.res.Metadata) != 0 {
			w.t.Errorf("metadata = %v, want none", w.res.Metadata)
		}
	}},
}

func (w *world) step(st *messages.PickleStep) {
	w.t.Helper()
	for _, sd := range steps {
		if m := sd.re.FindStringSubmatch(st.Text); m != nil {
			var tbl *messages.PickleTable
			if st.Argument != nil {
				tbl = st.Argument.DataTable
			}
			sd.do(w, m[1:], tbl)
			return
		}
	}
	w.t.Fatalf("no step definition for %q; add one to the table in conformance_test.go", st.Text)
}

func kindNamed(s string) Kind {
	switch s {
	case "Boolean":
		return KindBool
	case "String":
		return KindString
	case "Integer":
		return KindInteger
	case "Float":
		return KindFloat
	case "Object":
		return KindObject
	}
	return KindAny
}

// typed reads a step's value as the suite means it; numbers are float64, as JSON gives them.
func (w *world) typed(k Kind, s string) any {
	w.t.Helper()
	switch k {
	case KindBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			w.t.Fatalf("%q is not a boolean", s)
		}
		return b
	case KindInteger, KindFloat:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			w.t.Fatalf("%q is not a number", s)
		}
		return f
	case KindObject:
		var m map[string]any
		if err := json.Unmarshal([]byte(strings.ReplaceAll(s, `\"`, `"`)), &m); err != nil {
			w.t.Fatalf("%q is not a JSON object: %v", s, err)
		}
		return m
	default:
		return s
	}
}
