package flags

import (
	"math"

	"github.com/twmb/murmur3"
)

// splitRule is a targeting rule that is nothing but a literal fractional split, the shape a flag rollout
// writes ({"fractional": [["on", 10], ["off", 90]]}, optionally bucketed on {"var": "targetingKey"}).
// Parse compiles it to a table so an evaluation hashes the key and walks the table with no JsonLogic and
// no allocation: the gateway evaluates such flags per request. It must answer exactly as the library
// path does; TestSplitRuleMatchesJsonLogic holds it to that.
type splitRule struct {
	keyOnly bool // bucket on targetingKey alone, not flagKey+targetingKey
	buckets []bucketWeight
	total   int64
}

// compileSplit returns the table of a rule of that shape, or nil.
func compileSplit(rule any) *splitRule {
	m, ok := rule.(map[string]any)
	if !ok || len(m) != 1 {
		return nil
	}
	args, ok := m["fractional"].([]any)
	if !ok || len(args) == 0 {
		return nil
	}
	sr := &splitRule{}
	if v, ok := args[0].(map[string]any); ok {
		if len(v) != 1 || v["var"] != TargetingKey {
			return nil
		}
		sr.keyOnly = true
		args = args[1:]
	}
	if len(args) == 0 {
		return nil
	}
	for _, a := range args {
		entry, ok := a.([]any)
		if !ok || len(entry) == 0 || len(entry) > 2 {
			return nil
		}
		name, ok := entry[0].(string)
		if !ok || name == "" {
			return nil
		}
		weight := int64(1)
		if len(entry) == 2 {
			w, ok := entry[1].(float64)
			if !ok || w != math.Trunc(w) || w > math.MaxInt32 {
				return nil
			}
			weight = max(int64(w), 0)
		}
		sr.total += weight
		sr.buckets = append(sr.buckets, bucketWeight{variant: name, weight: weight})
	}
	if sr.total == 0 || sr.total > math.MaxInt32 {
		return nil
	}
	return sr
}

// variant returns the bucket's variant name for the targeting key, "" when the library's fractional
// would give null: no key to bucket on (then the flag falls back to its default variant). An empty key
// is bucketed when the rule names it ({"var": "targetingKey"} gives ""), not when it is implied.
func (sr *splitRule) variant(flagKey, tk string, hasKey bool, v FractionalVersion) string {
	var h uint32
	switch {
	case sr.keyOnly && hasKey:
		h = murmur3.StringSum32(tk)
	case tk == "":
		return ""
	default:
		var buf [128]byte
		h = murmur3.Sum32(append(append(buf[:0], flagKey...), tk...))
	}
	var got any
	if v == FractionalV1 {
		got = bucketV1(h, sr.buckets, sr.total)
	} else {
		got = bucketV2(h, sr.buckets, sr.total)
	}
	s, _ := got.(string)
	return s
}

// evaluateSplit resolves an enabled flag whose rule is a split, for a context already checked.
func (e *Evaluator) evaluateSplit(f *Flag, tk string, hasKey bool) Result {
	name := f.split.variant(f.Key, tk, hasKey, e.Fractional)
	if name == "" {
		return f.defaultResult()
	}
	return f.named(name)
}
