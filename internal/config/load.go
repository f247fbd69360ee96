package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"aviary.dev/aviary/internal/redact"
)

// FieldError is one problem with the config, at a field path such as services[0].traffic[1].weight.
type FieldError struct {
	Path string
	Line int // 0 when unknown
	Msg  string
}

// Error is the problem as shown in reload errors, API answers and logs: without the credentials of
// any URL it quotes.
func (e FieldError) Error() string {
	where := e.Path
	if where == "" {
		where = "config"
	}
	if e.Line > 0 {
		// The line last, so that "path: message" reads the same with or without it.
		return redact.Text(fmt.Sprintf("%s: %s (line %d)", where, e.Msg, e.Line))
	}
	return redact.Text(where + ": " + e.Msg)
}

// Errors is every problem found in a config, in the order of the file.
type Errors []FieldError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Load reads and checks a config file. On failure the error is an Errors listing every problem, or a
// read error.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config %q: %w", path, err)
	}
	return Parse(data)
}

// Parse decodes YAML into a Config, applies defaults and validates it. Unknown keys are errors: a typo
// must never be silently ignored.
func Parse(data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Errors{{Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	var cfg Config
	if root.Kind == 0 { // empty document
		cfg.applyDefaults()
		return &cfg, nil
	}
	if e := checkAliases(&root); e != nil {
		return nil, Errors{*e}
	}
	var errs Errors
	badValues := checkNode(&root, reflect.TypeOf(cfg), "", &errs)
	if badValues {
		// Values that did not decode would show up again as misleading follow-on errors.
		return nil, errs
	}
	if err := root.Decode(&cfg); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, m := range te.Errors {
				errs = append(errs, FieldError{Msg: m})
			}
			return nil, errs
		}
		return nil, Errors{{Msg: err.Error()}}
	}
	cfg.applyDefaults()
	// Unknown keys and invalid values are reported together: a user fixes them all in one go.
	verrs := cfg.Validate()
	locate(&root, verrs)
	errs = append(errs, verrs...)
	if len(errs) > 0 {
		return nil, errs
	}
	return &cfg, nil
}

var durationType = reflect.TypeOf(Duration{})

// checkNode walks the YAML tree beside the Go type it will decode into and reports, with paths, the
// keys the type does not have and scalars of the wrong kind. yaml.v3's own errors carry only line
// numbers and stop at the first unknown key of a mapping; users need paths and all of them.
//
// It reports whether a value (not only a key) was wrong.
func checkNode(n *yaml.Node, t reflect.Type, path string, errs *Errors) (badValue bool) {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			badValue = checkNode(c, t, path, errs) || badValue
		}
		return badValue
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return false
	}
	add := func(msg string) {
		badValue = true
		*errs = append(*errs, FieldError{Path: path, Line: n.Line, Msg: msg})
	}
	switch {
	case t == durationType:
		if n.Kind != yaml.ScalarNode {
			add("must be a duration such as 2s or 500ms")
		}
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			add("must be a mapping with keys " + strings.Join(fieldNames(t), ", "))
			return badValue
		}
		fields := structFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			sub := join(path, k.Value)
			if !ok {
				*errs = append(*errs, FieldError{Path: sub, Line: k.Line,
					Msg: "unknown field; valid fields here are " + strings.Join(fieldNames(t), ", ")})
				continue
			}
			badValue = checkNode(v, ft, sub, errs) || badValue
		}
	case t.Kind() == reflect.Interface:
		// Any value will do (e.g. an LLM parameter: a number, a string, a list).
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			add("must be a mapping")
			return badValue
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			badValue = checkNode(v, t.Elem(), join(path, k.Value), errs) || badValue
		}
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			add("must be a list")
			return badValue
		}
		for i, c := range n.Content {
			badValue = checkNode(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs) || badValue
		}
	default:
		checkScalar(n, t, add)
	}
	return badValue
}

func checkScalar(n *yaml.Node, t reflect.Type, add func(string)) {
	if n.Kind != yaml.ScalarNode {
		add("must be a single value, not a list or mapping")
		return
	}
	var err error
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		_, err = strconv.ParseInt(n.Value, 0, 64)
		if err != nil {
			add(fmt.Sprintf("%q is not a whole number", n.Value))
		}
	case reflect.Float64:
		_, err = strconv.ParseFloat(n.Value, 64)
		if err != nil {
			add(fmt.Sprintf("%q is not a number", n.Value))
		}
	case reflect.Bool:
		_, err = strconv.ParseBool(n.Value)
		if err != nil {
			add(fmt.Sprintf("%q is not true or false", n.Value))
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// structFields maps YAML keys to field types, following inline fields.
func structFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if strings.Contains(opts, "inline") {
			for k, v := range structFields(f.Type) {
				m[k] = v
			}
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		m[name] = f.Type
	}
	return m
}

func fieldNames(t reflect.Type) []string {
	var names []string
	for k := range structFields(t) {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// UnmarshalYAML keeps a value that does not parse, with its error, for Validate to report.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	d.raw = n.Value
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		d.err = fmt.Errorf("%q is not a duration; write it like 2s, 500ms or 1m30s", n.Value)
		return nil
	}
	d.Duration, d.err = v, nil
	return nil
}

// MarshalYAML writes the duration as text, as a user would.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalText writes the duration as text (JSON too).
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a duration such as 2s (JSON too).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration; write it like 2s, 500ms or 1m30s", b)
	}
	d.Duration = v
	return nil
}
