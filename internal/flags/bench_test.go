package flags

import (
	"strconv"
	"testing"
)

// Evaluation speed, for comparison with flagd's published figure of about 2 µs per resolve (in-process,
// its Go evaluator). Measured here (2 shared cores, other work running), with
//
//	go test -run '^$' -bench Evaluate -benchmem ./internal/flags/
//
// see the package comment and the branch's report for the figures.

const benchDoc = `{
  "flags": {
    "checkout": {
      "state": "ENABLED",
      "variants": {"on": true, "off": false},
      "defaultVariant": "off",
      "targeting": {"fractional": [["on", 25], ["off", 75]]}
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
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r := e.Evaluate(s, "checkout", ctxs[i&1023])
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
	b.ResetTimer()
	for b.Loop() {
		r := e.Evaluate(s, "banner", ctx)
		if r.Reason != ReasonStatic {
			b.Fatalf("%+v", r)
		}
	}
}
