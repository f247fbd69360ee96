package flags

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// placements is a hand-written fake of Placer (the gateway's placement is another package): a fixed
// table of service → key → (version, track).
type placements map[string]map[string]struct {
	version string
	track   Track
}

func (p placements) Place(service, key string) (string, Track, bool) {
	keys, ok := p[service]
	if !ok {
		return "", "", false
	}
	pl, ok := keys[key]
	if !ok {
		return "v1", TrackStable, true
	}
	return pl.version, pl.track, true
}

const aviaryDoc = `{"flags": {
  "canary-only": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
    "metadata": {"service": "shop"},
    "targeting": {"if": [{"==": [{"var": "$aviary.track"}, "canary"]}, "on", null]}},
  "by-version": {"state": "ENABLED", "variants": {"new": "new", "old": "old"}, "defaultVariant": "old",
    "metadata": {"service": "shop"},
    "targeting": {"if": [{"sem_ver": [{"var": "$aviary.version"}, ">=", "2.0.0"]}, "new", null]}},
  "which-service": {"state": "ENABLED", "variants": {"shop": "shop", "none": "none"}, "defaultVariant": "none",
    "metadata": {"service": "shop"},
    "targeting": {"if": [{"var": "$aviary.service"}, {"var": "$aviary.service"}, null]}},
  "no-service": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
    "targeting": {"if": [{"missing": ["$aviary.service"]}, "off", "on"]}}
}}`

func TestAviaryContextFromPlacer(t *testing.T) {
	s := mustParse(t, aviaryDoc)
	placer := placements{"shop": {
		"ann": {"v2.1.0", TrackCanary},
		"bob": {"v1.9.0", TrackStable},
	}}
	e := &Evaluator{Placer: placer}
	cases := []struct {
		flag, key string
		value     any
		reason    Reason
	}{
		{"canary-only", "ann", true, ReasonTargetingMatch},
		{"canary-only", "bob", false, ReasonDefault},
		{"canary-only", "", false, ReasonDefault}, // no key: no placement
		{"by-version", "ann", "new", ReasonTargetingMatch},
		{"by-version", "bob", "old", ReasonDefault},
		{"which-service", "bob", "shop", ReasonTargetingMatch},
		{"no-service", "ann", false, ReasonTargetingMatch},
	}
	for _, c := range cases {
		ctx := Context{}
		if c.key != "" {
			ctx[TargetingKey] = c.key
		}
		r := e.Evaluate(s, c.flag, ctx)
		if r.Value != c.value || r.Reason != c.reason {
			t.Errorf("%s for %q = %+v, want %v (%s)", c.flag, c.key, r, c.value, c.reason)
		}
	}
	// Without a placer $aviary holds only the service.
	noPlacer := &Evaluator{}
	if r := noPlacer.Evaluate(s, "canary-only", Context{TargetingKey: "ann"}); r.Value != false || r.Reason != ReasonDefault {
		t.Errorf("no placer: %+v", r)
	}
	if r := noPlacer.Evaluate(s, "which-service", nil); r.Value != "shop" {
		t.Errorf("no placer, service: %+v", r)
	}
	// A caller's own $aviary is replaced, not trusted.
	forged := Context{TargetingKey: "bob", "$aviary": map[string]any{"track": "canary"}}
	if r := e.Evaluate(s, "canary-only", forged); r.Value != false {
		t.Errorf("forged $aviary was used: %+v", r)
	}
}

func TestEvaluateOutcomes(t *testing.T) {
	s := mustParse(t, `{"metadata": {"owner": "web"}, "flags": {
	  "off-with-rule": {"state": "DISABLED", "variants": {"a": 1}, "defaultVariant": "a", "targeting": {"if": [true, "a"]}},
	  "unknown-variant": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a", "targeting": {"cat": ["b", "c"]}},
	  "whole-data": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a", "targeting": {"var": ""}},
	  "bool-names": {"state": "ENABLED", "variants": {"true": "yes", "false": "no"}, "defaultVariant": "false",
	     "targeting": {"starts_with": [{"var": "email"}, "admin@"]}},
	  "by-time": {"state": "ENABLED", "variants": {"early": "early", "late": "late"}, "defaultVariant": "early",
	     "targeting": {"if": [{">=": [{"var": "$flagd.timestamp"}, 2000000000]}, "late", "early"]}},
	  "by-key": {"state": "ENABLED", "variants": {"by-key": "mine", "other": "other"}, "defaultVariant": "other",
	     "targeting": {"var": "$flagd.flagKey"}},
	  "numbers": {"state": "ENABLED", "variants": {"big": "big", "small": "small"}, "defaultVariant": "small",
	     "targeting": {"if": [{">": [{"var": "n"}, 10]}, "big", "small"]}}
	}}`)
	clock := time.Unix(2_000_000_000, 0)
	e := &Evaluator{Now: func() time.Time { return clock }}
	check := func(name string, r Result, value any, reason Reason, code ErrorCode) {
		t.Helper()
		if r.Value != value || r.Reason != reason || r.ErrorCode != code {
			t.Errorf("%s = %+v; want %v %s %s", name, r, value, reason, code)
		}
		if r.Reason == ReasonError && !strings.Contains(r.ErrorMessage, ";") {
			t.Errorf("%s: error message %q does not say what to do", name, r.ErrorMessage)
		}
	}
	check("disabled", e.Evaluate(s, "off-with-rule", nil), nil, ReasonDisabled, ErrorNone)
	check("unknown variant", e.Evaluate(s, "unknown-variant", nil), nil, ReasonError, ErrorGeneral)
	check("whole data", e.Evaluate(s, "whole-data", Context{"x": 1}), nil, ReasonError, ErrorGeneral)
	check("true names a variant", e.Evaluate(s, "bool-names", Context{"email": "admin@x"}), "yes", ReasonTargetingMatch, ErrorNone)
	check("false names a variant", e.Evaluate(s, "bool-names", Context{"email": "ann@x"}), "no", ReasonTargetingMatch, ErrorNone)
	check("injected clock", e.Evaluate(s, "by-time", nil), "late", ReasonTargetingMatch, ErrorNone)
	clock = time.Unix(1_000_000_000, 0)
	check("clock moved back", e.Evaluate(s, "by-time", nil), "early", ReasonTargetingMatch, ErrorNone)
	check("$flagd.flagKey", e.Evaluate(s, "by-key", nil), "mine", ReasonTargetingMatch, ErrorNone)
	check("missing", e.Evaluate(s, "nope", nil), nil, ReasonError, ErrorFlagNotFound)
	for _, n := range []any{int(11), int64(11), uint8(11), float32(11), 11.0} {
		check(fmt.Sprintf("number %T", n), e.Evaluate(s, "numbers", Context{"n": n}), "big", ReasonTargetingMatch, ErrorNone)
	}
	check("nested Go ints", e.Evaluate(s, "numbers", Context{"n": 1, "deep": map[string]any{"m": []any{int64(3)}}}), "small", ReasonTargetingMatch, ErrorNone)
	check("not JSON", e.Evaluate(s, "numbers", Context{"n": make(chan int)}), nil, ReasonError, ErrorInvalidCtx)
	check("key not a string", e.Evaluate(s, "numbers", Context{TargetingKey: 42}), nil, ReasonError, ErrorInvalidCtx)
	check("static ignores context", e.Evaluate(mustParse(t, `{"flags": {"s": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a"}}}`), "s",
		Context{"n": make(chan int)}), 1.0, ReasonStatic, ErrorNone)

	all := e.EvaluateAll(s, Context{"email": "admin@x", "n": 20})
	if len(all) != 7 || all[0].Key != "bool-names" || all[6].Key != "whole-data" {
		t.Fatalf("EvaluateAll keys: %+v", all)
	}
	for _, r := range all {
		if r.Metadata["owner"] != "web" {
			t.Errorf("%s: metadata %v", r.Key, r.Metadata)
		}
		if one := e.Evaluate(s, r.Key, Context{"email": "admin@x", "n": 20}); fmt.Sprint(one) != fmt.Sprint(r) {
			t.Errorf("EvaluateAll %+v differs from Evaluate %+v", r, one)
		}
	}
}

func TestExpect(t *testing.T) {
	r := Result{Key: "k", Value: "x", Variant: "v", Reason: ReasonStatic}
	if got := r.Expect(KindString); got.Reason != ReasonStatic {
		t.Errorf("string as string: %+v", got)
	}
	got := r.Expect(KindInteger)
	if got.ErrorCode != ErrorTypeMismatch || got.Value != nil || !strings.Contains(got.ErrorMessage, "is a string, not a integer") {
		t.Errorf("string as integer: %+v", got)
	}
	if got := (Result{Value: 1.0}).Expect(KindFloat); got.ErrorCode != ErrorNone {
		t.Errorf("number as float: %+v", got)
	}
	if got := (Result{Reason: ReasonDisabled}).Expect(KindBool); got.Reason != ReasonDisabled {
		t.Errorf("no value: %+v", got)
	}
}

// TestConcurrentEvaluations shares one set and one evaluator between goroutines (run with -race): every
// goroutine must see the answers a lone evaluation gives.
func TestConcurrentEvaluations(t *testing.T) {
	s := mustParse(t, aviaryDoc+"")
	s = Merge(s, mustParse(t, `{"flags": {"split": {"state": "ENABLED", "variants": {"a": "a", "b": "b", "c": "c"},
	  "defaultVariant": "a", "targeting": {"fractional": [["a", 1], ["b", 1], ["c", 1]]}}}}`))
	e := &Evaluator{Placer: placements{"shop": {"ann": {"v2.0.0", TrackCanary}}}}
	want := map[string]Result{}
	for i := range 50 {
		key := "user-" + strconv.Itoa(i)
		want[key] = e.Evaluate(s, "split", Context{TargetingKey: key})
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				key := "user-" + strconv.Itoa((i+g)%50)
				ctx := Context{TargetingKey: key}
				if r := e.Evaluate(s, "split", ctx); r.Value != want[key].Value {
					errs <- fmt.Sprintf("%s: %v, want %v", key, r.Value, want[key].Value)
					return
				}
				if all := e.EvaluateAll(s, ctx); len(all) != 5 {
					errs <- fmt.Sprintf("EvaluateAll gave %d results", len(all))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
}

// TestFractionalProperties: assignment is a function of the bucketing key (the same user always lands in
// the same variant, whichever evaluator asks) and the shares follow the weights.
func TestFractionalProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		weights := rapid.SliceOfN(rapid.IntRange(0, 100), 2, 5).Draw(t, "weights")
		total := 0
		for _, w := range weights {
			total += w
		}
		if total == 0 {
			weights[0], total = 1, 1
		}
		version := FractionalVersion(rapid.IntRange(0, 1).Draw(t, "version"))
		doc := `{"flags": {"f": {"state": "ENABLED", "defaultVariant": "none", "variants": {"none": "none"`
		entries := make([]string, len(weights))
		for i, w := range weights {
			doc += fmt.Sprintf(`, "v%d": %d`, i, i)
			entries[i] = fmt.Sprintf(`["v%d", %d]`, i, w)
		}
		doc += `}, "targeting": {"fractional": [` + strings.Join(entries, ",") + `]}}}}`
		s, err := Parse([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		e1, e2 := &Evaluator{Fractional: version}, &Evaluator{Fractional: version}
		const n = 4000
		counts := make([]int, len(weights))
		seed := rapid.StringMatching(`[a-z]{0,6}`).Draw(t, "seed")
		for i := range n {
			ctx := Context{TargetingKey: seed + strconv.Itoa(i)}
			r := e1.Evaluate(s, "f", ctx)
			if again := e2.Evaluate(s, "f", Context{TargetingKey: seed + strconv.Itoa(i)}); again.Variant != r.Variant {
				t.Fatalf("key %v: %s then %s", ctx[TargetingKey], r.Variant, again.Variant)
			}
			idx, err := strconv.Atoi(strings.TrimPrefix(r.Variant, "v"))
			if err != nil || r.Reason != ReasonTargetingMatch {
				t.Fatalf("result %+v", r)
			}
			counts[idx]++
		}
		for i, w := range weights {
			p := float64(w) / float64(total)
			got := float64(counts[i]) / n
			// Five standard deviations of a binomial share, plus v1's float rounding.
			tol := 5*math.Sqrt(p*(1-p)/n) + 0.002
			if math.Abs(got-p) > tol {
				t.Fatalf("variant v%d: share %.3f, weight share %.3f (±%.3f); counts %v", i, got, p, tol, counts)
			}
			if w == 0 && counts[i] != 0 {
				t.Fatalf("variant v%d has weight 0 but %d users", i, counts[i])
			}
		}
	})
}
