package flags

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/diegoholiveira/jsonlogic/v3"
	"github.com/twmb/murmur3"
	"golang.org/x/mod/semver"
)

// flagd's custom operators, registered once with the JsonLogic library. The library keeps its operators in
// a package-level map that it reads on every evaluation; registering here, in init, before any
// evaluation, is the only write, so concurrent evaluations are safe. Nothing else in Aviary may call
// jsonlogic.AddOperator.
func init() {
	jsonlogic.AddOperator("fractional", fractional)
	jsonlogic.AddOperator("sem_ver", semVer)
	jsonlogic.AddOperator("starts_with", func(values, _ any) any { return stringCompare(values, strings.HasPrefix) })
	jsonlogic.AddOperator("ends_with", func(values, _ any) any { return stringCompare(values, strings.HasSuffix) })
}

// knownOperators are the operators a rule may use: the library's and flagd's. A rule naming another
// is refused at Parse (the library would fail at every evaluation).
var knownOperators = map[string]bool{
	"==": true, "===": true, "!=": true, "!==": true, ">": true, ">=": true, "<": true, "<=": true,
	"!": true, "!!": true, "or": true, "and": true, "?:": true, "if": true, "in": true, "in_sorted": true,
	"cat": true, "substr": true, "%": true, "abs": true, "max": true, "min": true, "+": true, "-": true,
	"*": true, "/": true, "merge": true, "missing": true, "missing_some": true, "some": true, "all": true,
	"none": true, "filter": true, "map": true, "reduce": true, "set": true, "var": true,
	"fractional": true, "sem_ver": true, "starts_with": true, "ends_with": true,
}

// checkOperators walks a rule the way the library does: an object with one key is an operation, one with
// more keys is a literal.
func checkOperators(rule any) error {
	switch t := rule.(type) {
	case map[string]any:
		if len(t) != 1 {
			return nil
		}
		for op, args := range t {
			if !knownOperators[op] {
				if op == "$ref" {
					return fmt.Errorf("unresolved $ref %s; define it under $evaluators", compact(mustJSON(args)))
				}
				return fmt.Errorf("unknown operator %q; use a JsonLogic operator or one of flagd's: fractional, sem_ver, starts_with, ends_with", op)
			}
			return checkOperators(args)
		}
	case []any:
		for _, e := range t {
			if err := checkOperators(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// FractionalVersion selects how `fractional` maps a hash to a bucket.
type FractionalVersion int

const (
	// FractionalV2 is flagd's current bucketing (flagd ≥ 0.13, testbed tag @fractional-v2): the 32-bit
	// murmur3 hash h is mapped to (h × totalWeight) >> 32, an integer in [0, totalWeight), so integer
	// weights are exact. It is the default (the zero value).
	FractionalV2 FractionalVersion = iota
	// FractionalV1 is flagd's legacy bucketing (testbed tag @fractional-v1): |int32(h)| / MaxInt32 × 100
	// compared with cumulative percentages. Choose it only to keep the assignments of users bucketed by an
	// older flagd.
	FractionalV1
)

func (v FractionalVersion) String() string {
	if v == FractionalV1 {
		return "v1"
	}
	return "v2"
}

// dataVersionKey carries the Evaluator's FractionalVersion into the operator. The key holds a dot, so no
// `var` path can reach it ("a.b" reads data["a"]["b"]).
const dataVersionKey = "aviary.fractional"

// bucketWeight is one entry of a fractional distribution.
type bucketWeight struct {
	variant any
	weight  int64
}

// fractional implements flagd's `fractional`: [bucketBy?, [variant, weight?]...]. The bucketing value is
// the first argument when it is a string; otherwise flagKey+targetingKey. Variant names and weights may
// be JsonLogic expressions (flagd's @fractional-nested). Any error gives null, so the flag falls back to
// its default variant.
func fractional(values, data any) any {
	args, ok := values.([]any)
	if !ok || len(args) == 0 {
		return nil
	}
	dm, _ := data.(map[string]any)
	bucketBy, ok := args[0].(string)
	if ok {
		args = args[1:]
	} else {
		if args[0] == nil { // a bucketing expression that found nothing: flagd buckets on the targeting key
			args = args[1:]
		}
		tk, _ := dm["targetingKey"].(string)
		if tk == "" {
			return nil
		}
		fk, _ := flagdProps(dm)["flagKey"].(string)
		bucketBy = fk + tk
	}
	if len(args) == 0 {
		return nil
	}
	var stack [8]bucketWeight
	buckets := stack[:0]
	var total int64
	for _, a := range args {
		entry, ok := a.([]any)
		if !ok || len(entry) == 0 {
			return nil
		}
		variant := entry[0]
		if _, isRule := variant.(map[string]any); isRule {
			variant = applyNested(variant, data)
		}
		switch variant.(type) {
		case string, bool, float64, nil:
		default:
			return nil
		}
		weight := int64(1)
		if len(entry) >= 2 {
			w := entry[1]
			if _, isRule := w.(map[string]any); isRule {
				w = applyNested(w, data)
			}
			switch wv := w.(type) {
			case float64:
				if wv != math.Trunc(wv) || wv > math.MaxInt32 {
					return nil
				}
				weight = max(int64(wv), 0) // flagd clamps negative weights (a rollout's arithmetic) to 0
			case nil:
			default:
				return nil
			}
		}
		total += weight
		buckets = append(buckets, bucketWeight{variant, weight})
	}
	if total == 0 || total > math.MaxInt32 {
		return nil
	}
	h := murmur3.StringSum32(bucketBy)
	if v, _ := dm[dataVersionKey].(FractionalVersion); v == FractionalV1 {
		return bucketV1(h, buckets, total)
	}
	return bucketV2(h, buckets, total)
}

func bucketV2(h uint32, buckets []bucketWeight, total int64) any {
	b := (uint64(h) * uint64(total)) >> 32
	var end uint64
	for _, bw := range buckets {
		end += uint64(bw.weight)
		if b < end {
			return bw.variant
		}
	}
	return nil
}

func bucketV1(h uint32, buckets []bucketWeight, total int64) any {
	b := math.Abs(float64(int32(h))) / math.MaxInt32 * 100
	var end float64
	for _, bw := range buckets {
		end += 100 * float64(bw.weight) / float64(total)
		if b < end {
			return bw.variant
		}
	}
	return nil
}

// applyNested evaluates a rule nested in a fractional entry (the library evaluates only the operator's
// top-level arguments).
func applyNested(rule, data any) any {
	v, err := applyRule(rule, data)
	if err != nil {
		return nil
	}
	return v
}

// applyRule runs a decoded rule. jsonlogic.Apply would decode the rule and the data from JSON on every
// call; ApplyInterface takes them decoded, which is what precompiling at Parse is for. The library
// marks it deprecated in favour of Apply; v3.5.1 is the newest release and keeps it exported, and an
// upgrade that drops it fails to build here, not silently.
//
// The library recovers its own panics but only those whose value is an error; the outer recover keeps
// any other from reaching a caller.
func applyRule(rule, data any) (out any, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("rule failed: %v", p)
		}
	}()
	//lint:ignore SA1019 see above: Apply re-decodes JSON per evaluation.
	return jsonlogic.ApplyInterface(rule, data)
}

func flagdProps(dm map[string]any) map[string]any {
	m, _ := dm["$flagd"].(map[string]any)
	return m
}

// stringCompare implements starts_with and ends_with: two strings, else null (not false, so the flag's
// default variant applies rather than a variant named "false").
func stringCompare(values any, cmp func(s, affix string) bool) any {
	args, ok := values.([]any)
	if !ok || len(args) != 2 {
		return nil
	}
	s, ok1 := args[0].(string)
	affix, ok2 := args[1].(string)
	if !ok1 || !ok2 {
		return nil
	}
	return cmp(s, affix)
}

// semVer implements flagd's sem_ver: [version, op, version] with op one of = != < <= > >= ^ (same major)
// ~ (same major and minor). Versions follow golang.org/x/mod/semver as flagd does: a "v" or "V" prefix
// is optional, "1" and "1.2" are shorthands for 1.0.0 and 1.2.0, build metadata is ignored, and numbers
// are read as their decimal form. Anything invalid gives null.
func semVer(values, _ any) any {
	args, ok := values.([]any)
	if !ok || len(args) != 3 {
		return nil
	}
	a, ok1 := normalizeVersion(args[0])
	b, ok2 := normalizeVersion(args[2])
	op, ok3 := args[1].(string)
	if !ok1 || !ok2 || !ok3 {
		return nil
	}
	c := semver.Compare(a, b)
	switch op {
	case "=":
		return c == 0
	case "!=":
		return c != 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	case "^":
		return semver.Major(a) == semver.Major(b)
	case "~":
		return semver.MajorMinor(a) == semver.MajorMinor(b)
	default:
		return nil
	}
}

func normalizeVersion(v any) (string, bool) {
	var s string
	switch t := v.(type) {
	case string:
		s = t
	case float64:
		s = strconv.FormatFloat(t, 'f', -1, 64)
	case int:
		s = strconv.Itoa(t)
	default:
		return "", false
	}
	s = strings.TrimPrefix(s, "V")
	if !strings.HasPrefix(s, "v") {
		s = "v" + s
	}
	return s, semver.IsValid(s)
}
