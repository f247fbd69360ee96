// Package config is Aviary's typed configuration: the YAML a user writes, its defaults (set in one
// place, Defaults) and its validation, which reports every error at once with the field path
// (`services[0].traffic[1].weight: 140 is not in 0..100`).
//
// The YAML names are a contract shared with the README, the tests and users' files; change them only
// with all three. This package never touches the network or the running gateway: it turns bytes into a
// checked *Config or a list of errors, nothing else.
package config

import "time"

// Config is the whole file.
type Config struct {
	Gateway  Gateway   `yaml:"gateway" json:"gateway,omitempty"`
	Admin    Admin     `yaml:"admin" json:"admin,omitempty"`
	Services []Service `yaml:"services" json:"services,omitempty"`
	Storage  Storage   `yaml:"storage" json:"storage,omitempty"`
	Analysis Analysis  `yaml:"analysis" json:"analysis,omitempty"`
	// LLM holds the price table and the feedback join of LLM services.
	LLM LLMSettings `yaml:"llm" json:"llm,omitempty"`
	// Telemetry exports LLM traffic over OTLP when an endpoint is set.
	Telemetry Telemetry `yaml:"telemetry" json:"telemetry,omitempty"`
	// Notifications sends rollout events to webhooks.
	Notifications Notifications `yaml:"notifications" json:"notifications,omitempty"`
	// Reload says what a reload of this file may do.
	Reload Reload `yaml:"reload" json:"reload,omitempty"`
	// Flags are the feature flags served over OFREP.
	Flags Flags `yaml:"flags" json:"flags,omitempty"`
	// Experiments are A/B tests over versions or flag variants (docs/experiments.md).
	Experiments []Experiment `yaml:"experiments" json:"experiments,omitempty"`
}

// Reload holds the guards of a reload. A reload that would remove every service of the file, or
// more than half of them, is refused: that is what an emptied or half-written file looks like.
type Reload struct {
	// AllowMassRemoval lets a reload of this file remove every service, or most of them.
	AllowMassRemoval bool `yaml:"allowMassRemoval" json:"allowMassRemoval,omitempty"`
}

// Gateway is the data-plane listener.
type Gateway struct {
	Listen   string   `yaml:"listen" json:"listen,omitempty"`
	TLS      *TLS     `yaml:"tls" json:"tls,omitempty"`
	Timeouts Timeouts `yaml:"timeouts" json:"timeouts,omitempty"`
	// MaxMirrorsInFlight bounds concurrent mirrored requests; beyond it a mirror copy is dropped and
	// counted, so shadow traffic can never pile up behind a slow mirror version.
	MaxMirrorsInFlight int `yaml:"maxMirrorsInFlight" json:"maxMirrorsInFlight,omitempty"`
	// MaxConnections bounds open client connections (each may hold one to an endpoint too); beyond
	// it, new connections wait in the kernel's accept queue until one closes.
	MaxConnections int `yaml:"maxConnections" json:"maxConnections,omitempty"`
	// MinBodyRate is the slowest a client may send a request body, in bytes per second, once
	// timeouts.bodyGrace has passed; -1 turns it off.
	MinBodyRate int `yaml:"minBodyRate" json:"minBodyRate,omitempty"`
}

// TLS turns on HTTPS (and HTTP/2) on the gateway listener.
type TLS struct {
	CertFile string `yaml:"certFile" json:"certFile,omitempty"`
	KeyFile  string `yaml:"keyFile" json:"keyFile,omitempty"`
}

// Timeouts of the gateway, towards clients and towards upstream endpoints.
type Timeouts struct {
	Connect        Duration `yaml:"connect" json:"connect,omitempty"`               // dialing an endpoint
	ResponseHeader Duration `yaml:"responseHeader" json:"responseHeader,omitempty"` // waiting for an endpoint's response headers
	UpstreamIdle   Duration `yaml:"upstreamIdle" json:"upstreamIdle,omitempty"`     // an idle keep-alive connection to an endpoint
	ReadHeader     Duration `yaml:"readHeader" json:"readHeader,omitempty"`         // a client sending its request headers
	ClientIdle     Duration `yaml:"clientIdle" json:"clientIdle,omitempty"`         // an idle keep-alive client connection
	BodyIdle       Duration `yaml:"bodyIdle" json:"bodyIdle,omitempty"`             // a client pausing in the middle of its request body
	BodyGrace      Duration `yaml:"bodyGrace" json:"bodyGrace,omitempty"`           // before minBodyRate applies to a request body
	Shutdown       Duration `yaml:"shutdown" json:"shutdown,omitempty"`             // draining in-flight requests on stop
}

// Admin is the operations listener: /metrics, /healthz, /readyz, /api/v1/...
type Admin struct {
	Listen string `yaml:"listen" json:"listen,omitempty"`
	// Token is the bearer token for changes (and reads); ReadToken allows reads only. Without a
	// token the API is open, which Aviary allows only on a loopback address. The environment
	// variables AVIARY_ADMIN_TOKEN and AVIARY_READ_TOKEN are used when these are empty.
	Token     string `yaml:"token" json:"-"`
	ReadToken string `yaml:"readToken" json:"-"`
	// AllowedHosts are more names (or name:port) that the admin API is reached by, e.g. behind a
	// reverse proxy; changes through any other name are refused (a guard against DNS rebinding).
	AllowedHosts []string `yaml:"allowedHosts" json:"allowedHosts,omitempty"`
}

// Service is one routable application behind the gateway.
type Service struct {
	Name        string        `yaml:"name" json:"name,omitempty"`
	Match       ServiceMatch  `yaml:"match" json:"match,omitempty"`
	Versions    []Version     `yaml:"versions" json:"versions,omitempty"`
	Traffic     []Traffic     `yaml:"traffic" json:"traffic,omitempty"`
	Stickiness  *Stickiness   `yaml:"stickiness" json:"stickiness,omitempty"`
	Routes      []Route       `yaml:"routes" json:"routes,omitempty"`
	Mirror      *Mirror       `yaml:"mirror" json:"mirror,omitempty"`
	HealthCheck *HealthCheck  `yaml:"healthCheck" json:"healthCheck,omitempty"`
	Passive     PassiveHealth `yaml:"passiveHealth" json:"passiveHealth,omitempty"`
	// Release is the version that should serve everyone. Setting it makes the service managed:
	// the rollout controller owns its weights (traffic must then be left out), and a release that
	// differs from the stable version starts a rollout by Strategy.
	Release  string    `yaml:"release" json:"release,omitempty"`
	Strategy *Strategy `yaml:"strategy" json:"strategy,omitempty"`
	// LLM reads the service's traffic as LLM API calls.
	LLM *LLM `yaml:"llm" json:"llm,omitempty"`
	// Flags are feature flags the gateway evaluates for each of this service's requests, with the
	// service's sticky key as the targeting key: to pass a variant to the upstream, to measure each
	// request under its user's variant, and to roll a variant out, judged like a version.
	Flags []ServiceFlag `yaml:"flags" json:"flags,omitempty"`
}

// ServiceFlag is a flag (defined in the flag sources, see docs/flags.md) bound to a service. Every
// request of the service with a sticky key is measured under the variant its user has.
type ServiceFlag struct {
	Key string `yaml:"key" json:"key"`
	// Header passes the variant's name to the upstream (gateway-evaluated flags, for services with no
	// flag SDK). The client's own header of that name is never passed on.
	Header string `yaml:"header" json:"header,omitempty"`
	// Context adds request headers to the evaluation context: attribute name -> header name.
	Context map[string]string `yaml:"context" json:"context,omitempty"`
	// Release is the variant that should serve everyone: a change starts a flag rollout by Strategy
	// (setWeight, pause, analysis and gate steps), judged on the variants' measurements.
	Release  string    `yaml:"release" json:"release,omitempty"`
	Strategy *Strategy `yaml:"strategy" json:"strategy,omitempty"`
}

// ServiceMatch says which requests belong to a service. Both parts must hold when both are given.
type ServiceMatch struct {
	PathPrefix string   `yaml:"pathPrefix" json:"pathPrefix,omitempty"`
	Hosts      []string `yaml:"hosts" json:"hosts,omitempty"`
}

// Version is a named release served by one or more endpoints (base URLs).
type Version struct {
	Name      string   `yaml:"name" json:"name,omitempty"`
	Endpoints []string `yaml:"endpoints" json:"endpoints,omitempty"`
	// LLM rewrites requests to this version (model, system prompt, parameters); it needs the
	// service's llm setting.
	LLM *VersionLLM `yaml:"llm" json:"llm,omitempty"`
}

// Traffic is one version's share of the service's traffic, in percent.
type Traffic struct {
	Version string `yaml:"version" json:"version,omitempty"`
	Weight  int    `yaml:"weight" json:"weight"`
}

// Stickiness keeps a user on the version it was given. Exactly one key source is set.
type Stickiness struct {
	Header string `yaml:"header" json:"header,omitempty"`
	Cookie string `yaml:"cookie" json:"cookie,omitempty"`
	Query  string `yaml:"query" json:"query,omitempty"`
	// SetCookie, when set, names a cookie the gateway sets to a fresh random key on requests that have
	// no key, and reads as the key on later requests, so an anonymous browser stays put.
	SetCookie string `yaml:"setCookie" json:"setCookie,omitempty"`
}

// Route pins requests that match to a version; routes are tried in order before weights.
type Route struct {
	Match   Match  `yaml:"match" json:"match,omitempty"`
	Version string `yaml:"version" json:"version,omitempty"`
}

// Match is a set of conditions that must all hold. At least one is set.
type Match struct {
	Header *KeyMatch    `yaml:"header" json:"header,omitempty"`
	Cookie *KeyMatch    `yaml:"cookie" json:"cookie,omitempty"`
	Query  *KeyMatch    `yaml:"query" json:"query,omitempty"`
	Path   *StringMatch `yaml:"path" json:"path,omitempty"`
}

// StringMatch compares a string exactly (value), by prefix, or by a regular expression (RE2 syntax,
// matched against the whole string). Exactly one is set.
type StringMatch struct {
	Value  string `yaml:"value" json:"value,omitempty"`
	Prefix string `yaml:"prefix" json:"prefix,omitempty"`
	Regex  string `yaml:"regex" json:"regex,omitempty"`
}

// KeyMatch matches the value of a named header, cookie or query parameter.
type KeyMatch struct {
	Name        string `yaml:"name" json:"name,omitempty"`
	StringMatch `yaml:",inline"`
}

// Mirror copies a share of requests to a version whose responses are discarded.
type Mirror struct {
	Version string  `yaml:"version" json:"version,omitempty"`
	Percent float64 `yaml:"percent" json:"percent,omitempty"`
	// MaxBodyBytes: a request with a larger body is not mirrored (and that is counted).
	MaxBodyBytes int64 `yaml:"maxBodyBytes" json:"maxBodyBytes,omitempty"`
}

// HealthCheck is an active check of every endpoint of the service.
type HealthCheck struct {
	Path               string   `yaml:"path" json:"path,omitempty"`
	Interval           Duration `yaml:"interval" json:"interval,omitempty"`
	Timeout            Duration `yaml:"timeout" json:"timeout,omitempty"`
	HealthyThreshold   int      `yaml:"healthyThreshold" json:"healthyThreshold,omitempty"`
	UnhealthyThreshold int      `yaml:"unhealthyThreshold" json:"unhealthyThreshold,omitempty"`
}

// PassiveHealth ejects an endpoint after consecutive failed requests (connection failures, timeouts,
// 502/503/504), for an ejection time that doubles on each repeat up to MaxEjection.
type PassiveHealth struct {
	ConsecutiveFailures int      `yaml:"consecutiveFailures" json:"consecutiveFailures,omitempty"` // 0 uses the default; -1 turns passive ejection off
	BaseEjection        Duration `yaml:"baseEjection" json:"baseEjection,omitempty"`
	MaxEjection         Duration `yaml:"maxEjection" json:"maxEjection,omitempty"`
}

// Duration is a time.Duration written as "2s", "500ms", "1m30s". A value that does not parse is kept
// with its error so that validation can report it with its path, beside every other error.
type Duration struct {
	time.Duration
	raw string
	err error
}

// D is a shorthand for building a Duration in code.
func D(d time.Duration) Duration { return Duration{Duration: d} }
