// Package provider turns a metric's provider config into a measurement: a value (a number, a
// boolean, a list of numbers, or any decoded JSON) or an error. Providers register themselves by
// name in a registry; the analysis package looks them up and never switches on provider kinds. A
// failed query is a measurement with an error, never a panic and never a zero.
package provider

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/metrics"
)

// Query is one measurement to take.
type Query struct {
	Service string
	Stable  string
	Canary  string
	// Version is the version being measured (the canary, unless the metric asks otherwise).
	Version string
	Metric  config.AnalysisMetric
	Now     time.Time
}

// Measurement is what a provider returns: Value is float64, bool, []float64, string, or a JSON
// value (map[string]any, []any) as decoded.
type Measurement struct {
	Value any       `json:"value"`
	At    time.Time `json:"at"`
}

// Provider takes measurements. It must honour ctx's deadline.
type Provider interface {
	Measure(ctx context.Context, q Query) (Measurement, error)
}

// Factory makes a provider; Options carries what providers may need from the process.
type Factory func(o Options) Provider

// Options are shared by every provider.
type Options struct {
	// HTTPDo sends HTTP requests (nil: a client without environment proxies).
	HTTPDo func(*http.Request) (*http.Response, error)
	// Metrics are the gateway's per-version measurements, for the builtin provider.
	Metrics *metrics.Registry
}

var (
	mu       sync.RWMutex
	registry = map[string]Factory{}
)

// Register adds a provider under name; it panics on a duplicate (a programming error at init).
func Register(name string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[name]; dup {
		panic("provider " + name + " registered twice")
	}
	registry[name] = f
}

// New makes the provider registered under name.
func New(name string, o Options) (Provider, error) {
	mu.RLock()
	defer mu.RUnlock()
	f, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("no metric provider named %q; known: %s", name, strings.Join(namesLocked(), ", "))
	}
	return f(o), nil
}

// Names lists the registered providers.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	return namesLocked()
}

func namesLocked() []string {
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Of names the provider a metric uses ("" when it sets none, which validation refuses).
func Of(m config.AnalysisMetric) string {
	switch {
	case m.Prometheus != nil:
		return "prometheus"
	case m.Web != nil:
		return "web"
	case m.Builtin != "":
		return "builtin"
	}
	return ""
}

// Expand fills the placeholders {{service}}, {{version}}, {{canary}} and {{stable}}.
func Expand(s string, q Query) string {
	return strings.NewReplacer("{{service}}", q.Service, "{{version}}", q.Version,
		"{{canary}}", q.Canary, "{{stable}}", q.Stable).Replace(s)
}
