package flags

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// State says whether a flag is served. A disabled flag resolves with reason DISABLED and no value, so the
// caller's fallback applies (flagd's rule since flagd#1965).
type State string

const (
	StateEnabled  State = "ENABLED"
	StateDisabled State = "DISABLED"
)

// MetadataService is the flag metadata key naming the Aviary service a flag belongs to; it decides what
// `$aviary.*` holds when the flag's targeting runs.
const MetadataService = "service"

// Flag is one flag of a Set, as validated by Parse. A Flag is shared by every evaluation: treat it, its
// maps and its Targeting as read-only.
type Flag struct {
	Key            string
	State          State
	Variants       map[string]any
	DefaultVariant string // "" when the document gives none (null or absent): the caller's fallback applies
	// Targeting is the flag's JsonLogic with every {"$ref": NAME} replaced by the set's evaluator, so the
	// flag reads the same wherever it is copied; nil when the flag has no targeting (absent or {}).
	Targeting json.RawMessage
	Metadata  map[string]any
	Service   string // metadata "service", the flag's or else the set's; "" when neither names one

	keyAny     any            // Key boxed once, for $flagd.flagKey
	serviceAny any            // Service boxed once, for $aviary.service
	rule       any            // Targeting decoded once, as the JsonLogic library takes it; nil: no targeting
	split      *splitRule     // rule compiled to a table when it is a literal fractional split (fast.go)
	ruleErr    error          // targeting that cannot run (an unknown $ref or operator): PARSE_ERROR
	usesAviary bool           // the rule reads $aviary, so an evaluation asks the Placer
	rollout    *Rollout       // a flag rollout's share (WithOverlays); nil: none
	experiment *Experiment    // an experiment's hold on the flag (WithOverlays); nil: none
	resultMeta map[string]any // set-level metadata overridden by the flag's own; nil when both are empty
}

// Set is an immutable, validated snapshot of flags; safe for concurrent use.
type Set struct {
	flags    map[string]*Flag
	keys     []string
	metadata map[string]any
	problems []string
	etag     string
}

// Parse reads one flagd JSON document. Structural errors (a variant that is not a bool, string, number
// or object, a default variant that is not one of the variants, an unknown field) are all reported at
// once, each with its JSON path and what to do. A flag whose targeting cannot run (a $ref to an evaluator
// that does not exist, an unknown operator) does not fail the document: as in flagd, the flag is kept and
// resolves with PARSE_ERROR; Problems lists such flags so a loader may refuse them.
func Parse(data []byte) (*Set, error) {
	var doc map[string]json.RawMessage
	if err := strictUnmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("flag document: %w; write one JSON object {\"flags\": {KEY: {...}}}", jsonError(data, err))
	}
	p := &parser{}
	for k := range doc {
		switch k {
		case "$schema", "flags", "$evaluators", "metadata":
		default:
			p.errf(k, "unknown field; a flagd document has flags, $evaluators, metadata and $schema")
		}
	}
	evaluators := p.evaluators(doc["$evaluators"])
	setMeta := p.metadata("metadata", doc["metadata"])
	if svc, ok := setMeta[MetadataService]; ok {
		if _, ok := svc.(string); !ok {
			p.errf("metadata."+MetadataService, "must be the name of an Aviary service (a string)")
		}
	}
	raw, ok := doc["flags"]
	if !ok || isNull(raw) {
		p.errf("flags", "missing; name the flags in an object {\"flags\": {KEY: {\"state\": ..., \"variants\": ...}}}")
	}
	var flagDocs map[string]json.RawMessage
	if ok && !isNull(raw) {
		if err := strictUnmarshal(raw, &flagDocs); err != nil {
			p.errf("flags", "must be an object of flags keyed by flag key: %v", err)
		}
	}
	s := &Set{flags: make(map[string]*Flag, len(flagDocs)), metadata: setMeta}
	for key, fd := range flagDocs {
		if f := p.flag(key, fd, evaluators, setMeta); f != nil {
			s.flags[key] = f
		}
	}
	if len(p.errs) > 0 {
		sort.Strings(p.errs)
		return nil, errors.New(strings.Join(p.errs, "\n"))
	}
	s.seal()
	return s, nil
}

// Merge combines sets; a flag in a later set replaces one with the same key in an earlier set (flagd's
// rule for several sources). A flag keeps the set-level metadata of the set it came from; the merged
// set-level metadata takes later values over earlier ones. Nil sets are skipped.
func Merge(sets ...*Set) *Set {
	m := &Set{flags: map[string]*Flag{}}
	for _, s := range sets {
		if s == nil {
			continue
		}
		maps.Copy(m.flags, s.flags)
		if len(s.metadata) > 0 {
			if m.metadata == nil {
				m.metadata = map[string]any{}
			}
			maps.Copy(m.metadata, s.metadata)
		}
	}
	m.seal()
	return m
}

// WithState returns a copy of the set with one flag's state changed (the kill switch: disabling a flag
// serves the caller's fallback everywhere at once); the receiver is unchanged.
func (s *Set) WithState(key string, st State) (*Set, error) {
	if st != StateEnabled && st != StateDisabled {
		return nil, fmt.Errorf("state %q: set %q or %q", st, StateEnabled, StateDisabled)
	}
	f, ok := s.Flag(key)
	if !ok {
		return nil, fmt.Errorf("flag %q is not defined; check the key (aviary flag list)", key)
	}
	c := *f
	c.State = st
	n := &Set{flags: maps.Clone(s.flags), metadata: s.metadata}
	n.flags[key] = &c
	n.seal()
	return n, nil
}

// seal computes the sorted keys, the problems and the ETag once the flags are final.
func (s *Set) seal() {
	s.keys = slices.Sorted(maps.Keys(s.flags))
	s.problems = nil
	for _, k := range s.keys {
		if f := s.flags[k]; f.ruleErr != nil {
			s.problems = append(s.problems, "flags."+k+".targeting: "+f.ruleErr.Error())
		}
	}
	b, err := s.JSON()
	if err != nil {
		// Unreachable: every value came from JSON. Keep the ETag distinct from any content hash.
		s.etag = `"unhashable"`
		return
	}
	sum := sha256.Sum256(b)
	s.etag = `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
}

// Keys returns the flag keys, sorted. A nil *Set reads as an empty set here and in Flag, Len and the
// Evaluator's methods.
func (s *Set) Keys() []string {
	if s == nil {
		return nil
	}
	return slices.Clone(s.keys)
}

// Flag returns the flag with the key.
func (s *Set) Flag(key string) (*Flag, bool) {
	if s == nil {
		return nil, false
	}
	f, ok := s.flags[key]
	return f, ok
}

// Len returns the number of flags.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.keys)
}

// Metadata returns the set-level metadata (read-only).
func (s *Set) Metadata() map[string]any { return s.metadata }

// Problems lists, with their JSON paths, flags that parsed but whose targeting cannot run; each resolves
// with PARSE_ERROR. Empty for a clean document.
func (s *Set) Problems() []string { return slices.Clone(s.problems) }

// ETag is a strong ETag (quoted) of the set's content: equal sets give equal ETags whatever the order or
// spacing of the documents they came from.
func (s *Set) ETag() string { return s.etag }

type flagJSON struct {
	State          State           `json:"state"`
	Variants       map[string]any  `json:"variants"`
	DefaultVariant *string         `json:"defaultVariant"`
	Targeting      json.RawMessage `json:"targeting,omitempty"`
	Metadata       map[string]any  `json:"metadata,omitempty"`
}

// JSON returns the set as a flagd document. Evaluator references are already resolved into each flag's
// targeting, so the document has no $evaluators; parsing it again gives an equal set (and ETag). A flag
// of a merged set whose own document's metadata differs from the merged set-level metadata is written
// with all the metadata it resolves with.
func (s *Set) JSON() ([]byte, error) {
	out := struct {
		Flags    map[string]flagJSON `json:"flags"`
		Metadata map[string]any      `json:"metadata,omitempty"`
	}{Flags: make(map[string]flagJSON, len(s.flags)), Metadata: s.metadata}
	for k, f := range s.flags {
		meta := f.Metadata
		if !maps.Equal(f.resultMeta, mergedMeta(s.metadata, f.Metadata)) {
			// A flag merged from another document keeps that document's metadata; write what it
			// resolves with, so the JSON (and the ETag) says so.
			meta = f.resultMeta
		}
		fj := flagJSON{State: f.State, Variants: f.Variants, Targeting: f.Targeting, Metadata: meta}
		if f.DefaultVariant != "" {
			dv := f.DefaultVariant
			fj.DefaultVariant = &dv
		}
		out.Flags[k] = fj
	}
	return json.Marshal(out)
}

// parser gathers every error of a document, each with its JSON path.
type parser struct {
	errs []string
}

func (p *parser) errf(path, format string, args ...any) {
	p.errs = append(p.errs, path+": "+fmt.Sprintf(format, args...))
}

func (p *parser) evaluators(raw json.RawMessage) map[string]any {
	if raw == nil || isNull(raw) {
		return nil
	}
	var m map[string]json.RawMessage
	if err := strictUnmarshal(raw, &m); err != nil {
		p.errf("$evaluators", "must be an object of named JsonLogic rules: %v", err)
		return nil
	}
	out := make(map[string]any, len(m))
	for name, r := range m {
		v, err := decodeJSON(r)
		if err != nil {
			p.errf("$evaluators."+name, "not valid JSON: %v", err)
			continue
		}
		if _, ok := v.(map[string]any); !ok {
			p.errf("$evaluators."+name, "must be a JsonLogic object such as {\"==\": [...]}")
			continue
		}
		out[name] = v
	}
	return out
}

func (p *parser) metadata(path string, raw json.RawMessage) map[string]any {
	if raw == nil || isNull(raw) {
		return nil
	}
	v, err := decodeJSON(raw)
	m, ok := v.(map[string]any)
	if err != nil || !ok {
		p.errf(path, "must be an object of string, number or boolean values")
		return nil
	}
	for k, val := range m {
		switch val.(type) {
		case string, float64, bool:
		default:
			p.errf(path+"."+k, "must be a string, number or boolean (flagd metadata is flat)")
		}
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

func (p *parser) flag(key string, raw json.RawMessage, evaluators, setMeta map[string]any) *Flag {
	path := "flags." + key
	var fields map[string]json.RawMessage
	if err := strictUnmarshal(raw, &fields); err != nil {
		p.errf(path, "must be an object with state, variants and defaultVariant")
		return nil
	}
	n := len(p.errs)
	for k := range fields {
		switch k {
		case "key", "state", "variants", "defaultVariant", "targeting", "metadata":
		default:
			p.errf(path+"."+k, "unknown field; a flag has state, variants, defaultVariant, targeting and metadata")
		}
	}
	f := &Flag{Key: key, keyAny: key}
	p.state(path, fields["state"], f)
	p.variants(path, fields["variants"], f)
	p.defaultVariant(path, fields["defaultVariant"], f)
	f.Metadata = p.metadata(path+".metadata", fields["metadata"])
	if svc, ok := f.Metadata[MetadataService]; ok {
		if _, ok := svc.(string); !ok {
			p.errf(path+".metadata."+MetadataService, "must be the name of an Aviary service (a string)")
		}
	}
	p.targeting(path, fields["targeting"], evaluators, f)
	if len(p.errs) > n {
		return nil
	}
	f.resultMeta = mergedMeta(setMeta, f.Metadata)
	// A document per service may name it once in the set-level metadata; the flag's own wins.
	f.Service, _ = f.resultMeta[MetadataService].(string)
	f.serviceAny = f.Service
	return f
}

func (p *parser) state(path string, raw json.RawMessage, f *Flag) {
	var st string
	if raw == nil {
		p.errf(path+".state", "missing; set \"ENABLED\" or \"DISABLED\"")
		return
	}
	if err := json.Unmarshal(raw, &st); err != nil || (State(st) != StateEnabled && State(st) != StateDisabled) {
		p.errf(path+".state", "%s is not a state; set \"ENABLED\" or \"DISABLED\"", compact(raw))
		return
	}
	f.State = State(st)
}

func (p *parser) variants(path string, raw json.RawMessage, f *Flag) {
	if raw == nil || isNull(raw) {
		p.errf(path+".variants", "missing; name at least one variant, e.g. {\"on\": true, \"off\": false}")
		return
	}
	v, err := decodeJSON(raw)
	m, ok := v.(map[string]any)
	if err != nil || !ok || len(m) == 0 {
		p.errf(path+".variants", "must be an object naming at least one variant, e.g. {\"on\": true, \"off\": false}")
		return
	}
	for name, val := range m {
		switch val.(type) {
		case bool, string, float64, map[string]any:
		default:
			p.errf(path+".variants."+name, "%s is not a flag value; use a boolean, string, number or object", compact(mustJSON(val)))
		}
	}
	f.Variants = m
}

func (p *parser) defaultVariant(path string, raw json.RawMessage, f *Flag) {
	if raw == nil || isNull(raw) {
		return
	}
	var dv string
	if err := json.Unmarshal(raw, &dv); err != nil {
		p.errf(path+".defaultVariant", "%s is not a variant name; name one of the variants (or null for the caller's default)", compact(raw))
		return
	}
	if f.Variants == nil {
		return // reported at variants
	}
	if _, ok := f.Variants[dv]; !ok {
		p.errf(path+".defaultVariant", "%q is not one of the variants %s; name one of them", dv, strings.Join(slices.Sorted(maps.Keys(f.Variants)), ", "))
		return
	}
	f.DefaultVariant = dv
}

func (p *parser) targeting(path string, raw json.RawMessage, evaluators map[string]any, f *Flag) {
	if raw == nil || isNull(raw) {
		return
	}
	v, err := decodeJSON(raw)
	if err != nil {
		p.errf(path+".targeting", "not valid JSON: %v", err)
		return
	}
	m, ok := v.(map[string]any)
	if !ok {
		p.errf(path+".targeting", "must be a JsonLogic object such as {\"if\": [...]} (or {} for none)")
		return
	}
	if len(m) == 0 {
		return
	}
	rule, err := resolveRefs(v, evaluators, 0)
	b, merr := json.Marshal(rule)
	if merr != nil {
		p.errf(path+".targeting", "cannot encode: %v", merr)
		return
	}
	f.Targeting = b
	if err == nil {
		err = checkOperators(rule)
	}
	if err != nil {
		f.ruleErr = err // listed by Set.Problems; the flag resolves with PARSE_ERROR
		return
	}
	f.rule = rule
	f.split = compileSplit(rule)
	f.usesAviary = bytes.Contains(b, []byte(`"$aviary`))
}

// maxRefDepth bounds evaluators that refer to evaluators, so a cycle is an error, not a hang.
const maxRefDepth = 16

// resolveRefs returns the rule with each {"$ref": NAME} replaced by the named evaluator. An unknown name is
// returned as an error together with the rule as far as it was resolved.
func resolveRefs(v any, evaluators map[string]any, depth int) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		if ref, ok := t["$ref"]; ok && len(t) == 1 {
			name, _ := ref.(string)
			ev, ok := evaluators[name]
			if !ok {
				return v, fmt.Errorf("$ref %s names no evaluator; define it under $evaluators or fix the name", compact(mustJSON(ref)))
			}
			if depth >= maxRefDepth {
				return v, fmt.Errorf("$ref %q: evaluators refer to each other more than %d deep (a cycle?); break the cycle", name, maxRefDepth)
			}
			return resolveRefs(ev, evaluators, depth+1)
		}
		out := make(map[string]any, len(t))
		var firstErr error
		for k, e := range t {
			r, err := resolveRefs(e, evaluators, depth)
			if err != nil && firstErr == nil {
				firstErr = err
			}
			out[k] = r
		}
		return out, firstErr
	case []any:
		out := make([]any, len(t))
		var firstErr error
		for i, e := range t {
			r, err := resolveRefs(e, evaluators, depth)
			if err != nil && firstErr == nil {
				firstErr = err
			}
			out[i] = r
		}
		return out, firstErr
	default:
		return v, nil
	}
}

func mergedMeta(set, flag map[string]any) map[string]any {
	if len(set) == 0 && len(flag) == 0 {
		return nil
	}
	m := make(map[string]any, len(set)+len(flag))
	maps.Copy(m, set)
	maps.Copy(m, flag)
	return m
}

// strictUnmarshal decodes JSON refusing trailing data.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

func decodeJSON(raw json.RawMessage) (any, error) {
	var v any
	err := json.Unmarshal(raw, &v)
	return v, err
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(fmt.Sprint(v))
	}
	return b
}

// compact shortens a JSON value for an error message.
func compact(raw []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		buf.Reset()
		buf.Write(raw)
	}
	s := buf.String()
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// jsonError adds the line and column to a JSON syntax error.
func jsonError(data []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line := 1 + bytes.Count(data[:min(int(se.Offset), len(data))], []byte("\n"))
		return fmt.Errorf("line %d: %w", line, err)
	}
	return err
}
