package flags

import (
	"strconv"
	"testing"
)

// Evaluation speed, for comparison with flagd's published figure of about 2 µs per resolve (its Go
// evaluator, which marshals the context and re-reads the rule from JSON on every resolve). Measured on
// 2 shared cores with a load average of 11-19 (other helpers' builds; a CPU profile showed this process
// getting about a quarter of a core), so the ranges are the machine's, and the low ends are the truer:
//
//	go test -run '^$' -bench . -benchmem -count 3 ./internal/flags/
//
//	BenchmarkEvaluateFractional       0.45-1.3 µs/op      0 B/op    0 allocs/op (split compiled at Parse)
//	BenchmarkEvaluateFractionalRule    4.4-5.6 µs/op    368 B/op   12 allocs/op (through the library)
//	BenchmarkEvaluateStatic              53-99 ns/op      0 B/op    0 allocs/op
//	BenchmarkEvaluateCanaryRule        2.5-3.4 µs/op    256 B/op    9 allocs/op
//	BenchmarkEvaluateAll (20 flags)   5.8-19 µs/op    2304 B/op    1 allocs/op (the result slice)
//
// The allocations left are the JsonLogic library's (a slice of evaluated arguments per operation, a
// split of each var path); ours are pooled (see evalData) or avoided (see splitRule).

const benchDoc = `{
  "flags": {
    "checkout": {
      "state": "ENABLED",
      "variants": {"on": true, "off": false},
      "defaultVariant": "off",
      "targeting": {"fractional": [["on", 25], ["off", 75]]}
    },
    "checkout-by-user": {
      "state": "ENABLED",
      "variants": {"on": true, "off": false},
      "defaultVariant": "off",
      "targeting": {"fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "email"}]}, ["on", 25], ["off", 75]]}
    },
    "banner": {
      "state": "ENABLED",
      "variants": {"blue": "blue", "red": "red"},
      "defaultVariant": "blue"
    }
  }
}`

func benchSet(b *testing.B) *Set {
	b.Helper()
	s, err := Parse([]byte(benchDoc))
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkEvaluateFractional(b *testing.B) {
	s := benchSet(b)
	e := &Evaluator{}
	ctxs := make([]Context, 1024)
	for i := range ctxs {
		ctxs[i] = Context{TargetingKey: "user-" + strconv.Itoa(i), "email": "u@example.com"}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r := e.Evaluate(s, "checkout", ctxs[i&1023])
		if r.Reason != ReasonTargetingMatch {
			b.Fatalf("%+v", r)
		}
	}
}

// BenchmarkEvaluateFractionalRule buckets on an expression, so the rule runs through the JsonLogic
// library (BenchmarkEvaluateFractional's literal split is compiled to a table at Parse).
func BenchmarkEvaluateFractionalRule(b *testing.B) {
	s := benchSet(b)
	e := &Evaluator{}
	ctxs := make([]Context, 1024)
	for i := range ctxs {
		ctxs[i] = Context{TargetingKey: "user-" + strconv.Itoa(i), "email": "u" + strconv.Itoa(i) + "@example.com"}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r := e.Evaluate(s, "checkout-by-user", ctxs[i&1023])
		if r.Reason != ReasonTargetingMatch {
			b.Fatalf("%+v", r)
		}
	}
}

func BenchmarkEvaluateStatic(b *testing.B) {
	s := benchSet(b)
	e := &Evaluator{}
	ctx := Context{TargetingKey: "user-1"}
	b.ReportAllocs()
	for b.Loop() {
		r := e.Evaluate(s, "banner", ctx)
		if r.Reason != ReasonStatic {
			b.Fatalf("%+v", r)
		}
	}
}

// BenchmarkEvaluateCanaryRule is the "on for the canary's users" rule: $aviary.track from a Placer.
func BenchmarkEvaluateCanaryRule(b *testing.B) {
	s, err := Parse([]byte(aviaryDoc))
	if err != nil {
		b.Fatal(err)
	}
	e := &Evaluator{Placer: placements{"shop": {"ann": {"v2.1.0", TrackCanary}}}}
	ctx := Context{TargetingKey: "ann"}
	b.ReportAllocs()
	for b.Loop() {
		if r := e.Evaluate(s, "canary-only", ctx); r.Value != true {
			b.Fatalf("%+v", r)
		}
	}
}

// BenchmarkEvaluateAll is a bulk evaluation (OFREP's POST /ofrep/v1/evaluate/flags) of 20 flags, half
// with fractional targeting.
func BenchmarkEvaluateAll(b *testing.B) {
	doc := `{"flags": {`
	for i := range 20 {
		if i > 0 {
			doc += ","
		}
		t := ""
		if i%2 == 0 {
			t = `, "targeting": {"fractional": [["on", 50], ["off", 50]]}`
		}
		doc += `"f` + strconv.Itoa(i) + `": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"` + t + `}`
	}
	s, err := Parse([]byte(doc + `}}`))
	if err != nil {
		b.Fatal(err)
	}
	e := &Evaluator{}
	ctx := Context{TargetingKey: "user-7"}
	b.ReportAllocs()
	for b.Loop() {
		if all := e.EvaluateAll(s, ctx); len(all) != 20 {
			b.Fatal(len(all))
		}
	}
}
