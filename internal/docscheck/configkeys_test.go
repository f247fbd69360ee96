package docscheck

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"aviary.dev/aviary/internal/config"
)

// TestConfigKeysAreDocumented fails when a key of the config file, as the yaml tags of the structs
// reachable from config.Config spell it, is not named in docs/config.md.
func TestConfigKeysAreDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "docs", "config.md"))
	if err != nil {
		t.Fatalf("read the config reference: %v", err)
	}
	page := string(b)
	keys := configKeys(reflect.TypeFor[config.Config]())
	if len(keys) < 50 {
		t.Fatalf("found only %d config keys; the walk of config.Config is broken", len(keys))
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		re := regexp.MustCompile(`(^|[^A-Za-z0-9_])` + regexp.QuoteMeta(k) + `($|[^A-Za-z0-9_])`)
		if !re.MatchString(page) {
			t.Errorf("config key %q (at %s) is not in docs/config.md; document it there", k, keys[k])
		}
	}
}

var unmarshaler = reflect.TypeFor[yaml.Unmarshaler]()

// configKeys returns every yaml key reachable from t, each with the first path it was found at.
func configKeys(t reflect.Type) map[string]string {
	keys := map[string]string{}
	for _, p := range keyPaths(t) {
		name := p[strings.LastIndex(p, ".")+1:]
		name = strings.TrimSuffix(name, "[]")
		if _, ok := keys[name]; !ok {
			keys[name] = p
		}
	}
	return keys
}

// keyPaths returns the path of every yaml key reachable from t, in the order of the fields
// (services[].versions[].name); a type that unmarshals itself (a duration) is a value, not keys.
func keyPaths(t reflect.Type) []string {
	var paths []string
	walkKeys(t, "", &paths, map[reflect.Type]bool{})
	return paths
}

func walkKeys(t reflect.Type, path string, paths *[]string, seen map[reflect.Type]bool) {
	switch t.Kind() {
	case reflect.Pointer:
		walkKeys(t.Elem(), path, paths, seen)
		return
	case reflect.Slice, reflect.Array, reflect.Map:
		walkKeys(t.Elem(), path+"[]", paths, seen)
		return
	case reflect.Struct:
	default:
		return
	}
	if seen[t] || reflect.PointerTo(t).Implements(unmarshaler) {
		return
	}
	seen[t] = true
	defer delete(seen, t)
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			walkKeys(f.Type, path, paths, seen)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name) // yaml.v3's rule for an untagged field
		}
		p := name
		if path != "" {
			p = path + "." + name
		}
		*paths = append(*paths, p)
		walkKeys(f.Type, p, paths, seen)
	}
}

// TestPrintConfigPaths prints every key path, to help keep the "Every key" list of docs/config.md.
func TestPrintConfigPaths(t *testing.T) {
	if os.Getenv("AVIARY_PRINT_CONFIG_PATHS") == "" {
		t.Skip("set AVIARY_PRINT_CONFIG_PATHS=1 to print every config key path")
	}
	for _, p := range keyPaths(reflect.TypeFor[config.Config]()) {
		t.Log(p)
	}
}
