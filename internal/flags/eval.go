package flags

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"time"
)

// Reason says why a result has its value (OpenFeature's resolution reasons, as flagd reports them).
type Reason string

const (
	ReasonStatic         Reason = "STATIC"          // no targeting: the default variant
	ReasonTargetingMatch Reason = "TARGETING_MATCH" // targeting named the variant (fractional included, as in flagd)
	ReasonDefault        Reason = "DEFAULT"         // targeting gave null, or no default variant: see Result
	ReasonDisabled       Reason = "DISABLED"        // the flag is disabled: the caller's fallback applies
	ReasonError          Reason = "ERROR"           // see ErrorCode
)

// ErrorCode is OpenFeature's error code of a result whose Reason is ERROR.
type ErrorCode string

const (
	ErrorNone          ErrorCode = ""
	ErrorFlagNotFound  ErrorCode = "FLAG_NOT_FOUND"
	ErrorParse         ErrorCode = "PARSE_ERROR" // the flag's targeting cannot run
	ErrorTypeMismatch  ErrorCode = "TYPE_MISMATCH"
	ErrorInvalidCtx    ErrorCode = "INVALID_CONTEXT"
	ErrorGeneral       ErrorCode = "GENERAL"
	ErrorTargetingKey  ErrorCode = "TARGETING_KEY_MISSING" // for servers that require a key; never returned by Evaluate (flagd's fractional without a key falls back to the default)
	ErrorProviderFatal ErrorCode = "PROVIDER_FATAL"        // for servers; never returned by Evaluate
)

// Track is the side of a rollout a targeting key is placed on.
type Track string

const (
	TrackStable Track = "stable"
	TrackCanary Track = "canary"
)

// Placer tells which version of a service the gateway gives a targeting key (the same bucket space as the
// service's stickiness key), so a rule can target "the canary's users". ok is false when the service is
// unknown. Place is called during evaluation, on any goroutine.
type Placer interface {
	Place(service, key string) (version string, track Track, ok bool)
}

// Context is an evaluation context; "targetingKey" is the key fractional buckets on.
type Context map[string]any

// TargetingKey is the context key of the targeting key.
const TargetingKey = "targetingKey"

// Result is one flag's resolution. Value is nil when the caller's fallback applies: a disabled flag
// (ReasonDisabled), a flag without a default variant whose targeting named none (ReasonDefault, Variant
// ""), or an error (ReasonError). Metadata is the set-level metadata overridden by the flag's own
// (shared, read-only); nil when there is none.
type Result struct {
	Key          string
	Value        any
	Variant      string
	Reason       Reason
	ErrorCode    ErrorCode
	ErrorMessage string
	Metadata     map[string]any
}

// Kind is the type a caller expects a flag's value to have.
type Kind int

const (
	KindAny Kind = iota
	KindBool
	KindString
	KindInteger // any number: flagd reads integers from JSON numbers
	KindFloat
	KindObject
)

func (k Kind) String() string {
	return [...]string{"any", "boolean", "string", "integer", "float", "object"}[k]
}

// Expect turns a result whose value is not of the kind into a TYPE_MISMATCH error; results without a
// value pass unchanged (the caller's fallback, of the right kind, applies).
func (r Result) Expect(k Kind) Result {
	if r.Value == nil || k == KindAny {
		return r
	}
	var ok bool
	switch r.Value.(type) {
	case bool:
		ok = k == KindBool
	case string:
		ok = k == KindString
	case float64:
		ok = k == KindInteger || k == KindFloat
	case map[string]any:
		ok = k == KindObject
	}
	if ok {
		return r
	}
	return Result{Key: r.Key, Reason: ReasonError, ErrorCode: ErrorTypeMismatch, Metadata: r.Metadata,
		ErrorMessage: fmt.Sprintf("flag %q: variant %q is a %s, not a %s; ask for the flag's type or fix its variants", r.Key, r.Variant, kindOf(r.Value), k)}
}

func kindOf(v any) string {
	switch v.(type) {
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		return "number"
	default:
		return "object"
	}
}

// Evaluator resolves flags. The zero value is ready: no placer, the wall clock, FractionalV2.
type Evaluator struct {
	Placer     Placer           // nil: $aviary holds only the flag's service
	Now        func() time.Time // $flagd.timestamp; nil: time.Now
	Fractional FractionalVersion
	// Exposed, when set, is told of every result that gave a targeting key a variant (exposure
	// records for experiments). It is called on the evaluation's goroutine: it must not block.
	Exposed func(flag, targetingKey, variant string)
}

// Evaluate resolves one flag of the set for the context. It never panics on any input.
func (e *Evaluator) Evaluate(s *Set, key string, ctx Context) Result {
	r := e.resolve(s, key, ctx)
	e.expose(ctx, r)
	return r
}

func (e *Evaluator) resolve(s *Set, key string, ctx Context) Result {
	f, ok := s.Flag(key)
	if !ok {
		return Result{Key: key, Reason: ReasonError, ErrorCode: ErrorFlagNotFound,
			ErrorMessage: fmt.Sprintf("flag %q is not defined; check the key or add the flag", key)}
	}
	r := e.resolveFlag(f, ctx)
	if f.experiment != nil {
		tk, _ := ctx[TargetingKey].(string)
		r = f.experimented(r, tk)
	}
	return r
}

// resolveFlag resolves f for ctx, before any experiment's hold on it.
func (e *Evaluator) resolveFlag(f *Flag, ctx Context) Result {
	if r, ok := f.rolled(ctx); ok {
		return r
	}
	if f.State == StateDisabled || (f.rule == nil && f.ruleErr == nil) {
		return f.static()
	}
	if f.ruleErr != nil {
		return f.parseError()
	}
	if f.split != nil {
		tk, hasKey, err := checkContext(ctx)
		if err != nil {
			return f.errorResult(ErrorInvalidCtx, err.Error())
		}
		return e.evaluateSplit(f, tk, hasKey)
	}
	d, err := newEvalData(ctx)
	if err != nil {
		return f.errorResult(ErrorInvalidCtx, err.Error())
	}
	defer d.release()
	return e.evaluate(f, d)
}

// EvaluateAll resolves every flag of the set, sorted by key.
func (e *Evaluator) EvaluateAll(s *Set, ctx Context) []Result {
	if s.Len() == 0 {
		return []Result{}
	}
	out := make([]Result, 0, len(s.keys))
	d, ctxErr := newEvalData(ctx)
	if ctxErr == nil {
		defer d.release()
	}
	for _, k := range s.keys {
		f := s.flags[k]
		if r, ok := f.rolled(ctx); ok {
			out = append(out, r)
			continue
		}
		switch {
		case f.State == StateDisabled || (f.rule == nil && f.ruleErr == nil):
			out = append(out, f.static())
		case f.ruleErr != nil:
			out = append(out, f.parseError())
		case ctxErr != nil:
			out = append(out, f.errorResult(ErrorInvalidCtx, ctxErr.Error()))
		case f.split != nil:
			out = append(out, e.evaluateSplit(f, d.tk, d.hasKey))
		default:
			out = append(out, e.evaluate(f, d))
		}
	}
	tk, _ := ctx[TargetingKey].(string)
	for i, r := range out {
		if f := s.flags[r.Key]; f.experiment != nil {
			out[i] = f.experimented(r, tk)
		}
		e.expose(ctx, out[i])
	}
	return out
}

// expose tells Exposed of a result that gave a keyed context a variant.
func (e *Evaluator) expose(ctx Context, r Result) {
	if e.Exposed == nil || r.Variant == "" {
		return
	}
	if tk, _ := ctx[TargetingKey].(string); tk != "" {
		e.Exposed(r.Key, tk, r.Variant)
	}
}

// static resolves a flag without targeting.
func (f *Flag) static() Result {
	r := Result{Key: f.Key, Metadata: f.resultMeta}
	switch {
	case f.State == StateDisabled:
		r.Reason = ReasonDisabled
	case f.DefaultVariant == "":
		r.Reason = ReasonDefault
	default:
		r.Reason, r.Variant, r.Value = ReasonStatic, f.DefaultVariant, f.Variants[f.DefaultVariant]
	}
	return r
}

func (f *Flag) errorResult(code ErrorCode, msg string) Result {
	return Result{Key: f.Key, Reason: ReasonError, ErrorCode: code, ErrorMessage: msg, Metadata: f.resultMeta}
}

// parseError is the result of a flag whose targeting cannot run (see Set.Problems).
func (f *Flag) parseError() Result {
	return f.errorResult(ErrorParse, fmt.Sprintf("flag %q: targeting: %v", f.Key, f.ruleErr))
}

// evaluate runs an enabled flag's compiled targeting.
func (e *Evaluator) evaluate(f *Flag, d *evalData) Result {
	data := d.forFlag(e, f)
	out, err := applyRule(f.rule, data)
	if err != nil {
		return f.errorResult(ErrorParse, fmt.Sprintf("flag %q: targeting failed: %v; fix the rule", f.Key, err))
	}
	var variant string
	switch v := out.(type) {
	case nil:
		return f.defaultResult()
	case string:
		variant = v
	case bool:
		variant = strconv.FormatBool(v)
	case float64:
		variant = strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return f.errorResult(ErrorGeneral, fmt.Sprintf("flag %q: targeting returned %s, not a variant name; make it return one of the variants", f.Key, compact(mustJSON(v))))
	}
	return f.named(variant)
}

// defaultResult is the answer when targeting gives null: the default variant, or the caller's fallback.
func (f *Flag) defaultResult() Result {
	r := Result{Key: f.Key, Reason: ReasonDefault, Metadata: f.resultMeta}
	if f.DefaultVariant != "" {
		r.Variant, r.Value = f.DefaultVariant, f.Variants[f.DefaultVariant]
	}
	return r
}

// named is the answer when targeting names a variant.
func (f *Flag) named(variant string) Result {
	val, ok := f.Variants[variant]
	if !ok {
		return f.errorResult(ErrorGeneral, fmt.Sprintf("flag %q: targeting returned %q, which is not a variant; return one of the variants or null", f.Key, variant))
	}
	return Result{Key: f.Key, Value: val, Variant: variant, Reason: ReasonTargetingMatch, Metadata: f.resultMeta}
}

// evalData is the JsonLogic data of one evaluation: the caller's context (copied, never mutated, numbers
// as float64 as the library expects) plus $flagd and $aviary, set per flag. Its maps are pooled and
// cleared for reuse: the library reads data during an evaluation and keeps nothing of it (a rule that
// returns the data itself is turned into an error message before release), so a map is never seen by
// two evaluations at once.
type evalData struct {
	m      map[string]any
	flagd  map[string]any
	aviary map[string]any
	tk     string
	hasKey bool
	unix   int64
	ts     any // unix boxed once per second, not per evaluation
}

var dataPool = sync.Pool{New: func() any {
	return &evalData{m: make(map[string]any, 8), flagd: make(map[string]any, 2), aviary: make(map[string]any, 3)}
}}

func newEvalData(ctx Context) (*evalData, error) {
	d := dataPool.Get().(*evalData)
	for k, v := range ctx {
		nv, err := normalize(v)
		if err != nil {
			d.release()
			return nil, contextError(k, err)
		}
		d.m[k] = nv
	}
	var err error
	if d.tk, d.hasKey, err = targetingKey(d.m); err != nil {
		d.release()
		return nil, err
	}
	return d, nil
}

// checkContext is newEvalData's check without the copy, for rules that read nothing but the key.
func checkContext(ctx Context) (tk string, hasKey bool, err error) {
	for k, v := range ctx {
		if _, err := normalize(v); err != nil {
			return "", false, contextError(k, err)
		}
	}
	return targetingKey(ctx)
}

func contextError(k string, err error) error {
	return fmt.Errorf("context %q: %v; send JSON values (strings, numbers, booleans, objects, arrays)", k, err)
}

// targetingKey returns the context's targeting key; a null one counts as absent.
func targetingKey(m map[string]any) (string, bool, error) {
	v, ok := m[TargetingKey]
	if !ok || v == nil {
		return "", false, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", false, fmt.Errorf("context %q must be a string, not %s; send the key as a string", TargetingKey, compact(mustJSON(v)))
	}
	return s, true, nil
}

func (d *evalData) release() {
	clear(d.m)
	clear(d.aviary)
	dataPool.Put(d)
}

func (d *evalData) forFlag(e *Evaluator, f *Flag) map[string]any {
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	if u := now().Unix(); u != d.unix || d.ts == nil {
		d.unix, d.ts = u, float64(u)
	}
	d.flagd["flagKey"] = f.keyAny
	d.flagd["timestamp"] = d.ts
	d.m["$flagd"] = d.flagd
	d.m[dataVersionKey] = e.Fractional
	if f.usesAviary {
		e.fillAviary(d.aviary, f, d.tk)
		d.m["$aviary"] = d.aviary
	}
	return d.m
}

func (e *Evaluator) fillAviary(m map[string]any, f *Flag, tk string) {
	clear(m)
	if f.Service == "" {
		return
	}
	m["service"] = f.serviceAny
	if e.Placer == nil || tk == "" {
		return
	}
	if version, track, ok := e.Placer.Place(f.Service, tk); ok {
		m["version"] = version
		switch track { // the common values boxed once, not per evaluation
		case TrackStable:
			m["track"] = trackStableAny
		case TrackCanary:
			m["track"] = trackCanaryAny
		default:
			m["track"] = string(track)
		}
	}
}

var trackStableAny, trackCanaryAny any = string(TrackStable), string(TrackCanary)

// normalize returns a context value as the JsonLogic library reads it (float64 numbers, map[string]any,
// []any), copying only containers that need a change.
func normalize(v any) (any, error) {
	switch t := v.(type) {
	case nil, string, bool, float64:
		return v, nil
	case int:
		return float64(t), nil
	case int64:
		return float64(t), nil
	case int32:
		return float64(t), nil
	case uint:
		return float64(t), nil
	case uint64:
		return float64(t), nil
	case uint32:
		return float64(t), nil
	case float32:
		return float64(t), nil
	case json.Number:
		f, err := t.Float64()
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", t.String())
		}
		return f, nil
	case Context:
		return normalize(map[string]any(t))
	case map[string]any:
		var out map[string]any
		for k, e := range t {
			ne, err := normalize(e)
			if err != nil {
				return nil, err
			}
			if out == nil && !sameValue(ne, e) {
				out = make(map[string]any, len(t))
				for k2, e2 := range t {
					out[k2] = e2
				}
			}
			if out != nil {
				out[k] = ne
			}
		}
		if out == nil {
			return t, nil
		}
		return out, nil
	case []any:
		var out []any
		for i, e := range t {
			ne, err := normalize(e)
			if err != nil {
				return nil, err
			}
			if out == nil && !sameValue(ne, e) {
				out = append([]any(nil), t...)
			}
			if out != nil {
				out[i] = ne
			}
		}
		if out == nil {
			return t, nil
		}
		return out, nil
	default:
		// Other Go values (structs, typed slices): round-trip through JSON, as a remote caller's would.
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("%s is not a JSON value", reflect.TypeOf(v))
		}
		var out any
		if err := json.Unmarshal(b, &out); err != nil {
			return nil, err
		}
		return out, nil
	}
}

// sameValue reports whether normalize left a value as it was (containers by identity).
func sameValue(a, b any) bool {
	if reflect.TypeOf(a) != reflect.TypeOf(b) {
		return false
	}
	switch a.(type) {
	case map[string]any, []any:
		return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
	}
	return a == b
}
