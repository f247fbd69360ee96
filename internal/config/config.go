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
	Gateway  Gateway   `yaml:"gateway"`
	Admin    Admin     `yaml:"admin"`
	Services []Service `yaml:"services"`
}

// Gateway is the data-plane listener.
type Gateway struct {
	Listen   string   `yaml:"listen"`
	TLS      *TLS     `yaml:"tls"`
	Timeouts Timeouts `yaml:"timeouts"`
	// MaxMirrorsInFlight bounds concurrent mirrored requests; beyond it a mirror copy is dropped and
	// counted, so shadow traffic can never pile up behind a slow mirror version.
	MaxMirrorsInFlight int `yaml:"maxMirrorsInFlight"`
}

// TLS turns on HTTPS (and HTTP/2) on the gateway listener.
type TLS struct {
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
}

// Timeouts of the gateway, towards clients and towards upstream endpoints.
type Timeouts struct {
	Connect        Duration `yaml:"connect"`        // dialing an endpoint
	ResponseHeader Duration `yaml:"responseHeader"` // waiting for an endpoint's response headers
	UpstreamIdle   Duration `yaml:"upstreamIdle"`   // an idle keep-alive connection to an endpoint
	ReadHeader     Duration `yaml:"readHeader"`     // a client sending its request headers
	ClientIdle     Duration `yaml:"clientIdle"`     // an idle keep-alive client connection
	Shutdown       Duration `yaml:"shutdown"`       // draining in-flight requests on stop
}

// Admin is the operations listener: /metrics, /healthz, /readyz, /api/v1/...
type Admin struct {
	Listen string `yaml:"listen"`
}

// Service is one routable application behind the gateway.
type Service struct {
	Name        string        `yaml:"name"`
	Match       ServiceMatch  `yaml:"match"`
	Versions    []Version     `yaml:"versions"`
	Traffic     []Traffic     `yaml:"traffic"`
	Stickiness  *Stickiness   `yaml:"stickiness"`
	Routes      []Route       `yaml:"routes"`
	Mirror      *Mirror       `yaml:"mirror"`
	HealthCheck *HealthCheck  `yaml:"healthCheck"`
	Passive     PassiveHealth `yaml:"passiveHealth"`
}

// ServiceMatch says which requests belong to a service. Both parts must hold when both are given.
type ServiceMatch struct {
	PathPrefix string   `yaml:"pathPrefix"`
	Hosts      []string `yaml:"hosts"`
}

// Version is a named release served by one or more endpoints (base URLs).
type Version struct {
	Name      string   `yaml:"name"`
	Endpoints []string `yaml:"endpoints"`
}

// Traffic is one version's share of the service's traffic, in percent.
type Traffic struct {
	Version string `yaml:"version"`
	Weight  int    `yaml:"weight"`
}

// Stickiness keeps a user on the version it was given. Exactly one key source is set.
type Stickiness struct {
	Header string `yaml:"header"`
	Cookie string `yaml:"cookie"`
	Query  string `yaml:"query"`
	// SetCookie, when set, names a cookie the gateway sets to a fresh random key on requests that have
	// no key, and reads as the key on later requests, so an anonymous browser stays put.
	SetCookie string `yaml:"setCookie"`
}

// Route pins requests that match to a version; routes are tried in order before weights.
type Route struct {
	Match   Match  `yaml:"match"`
	Version string `yaml:"version"`
}

// Match is a set of conditions that must all hold. At least one is set.
type Match struct {
	Header *KeyMatch    `yaml:"header"`
	Cookie *KeyMatch    `yaml:"cookie"`
	Query  *KeyMatch    `yaml:"query"`
	Path   *StringMatch `yaml:"path"`
}

// StringMatch compares a string exactly (value), by prefix, or by a regular expression (RE2 syntax,
// matched against the whole string). Exactly one is set.
type StringMatch struct {
	Value  string `yaml:"value"`
	Prefix string `yaml:"prefix"`
	Regex  string `yaml:"regex"`
}

// KeyMatch matches the value of a named header, cookie or query parameter.
type KeyMatch struct {
	Name        string `yaml:"name"`
	StringMatch `yaml:",inline"`
}

// Mirror copies a share of requests to a version whose responses are discarded.
type Mirror struct {
	Version string  `yaml:"version"`
	Percent float64 `yaml:"percent"`
	// MaxBodyBytes: a request with a larger body is not mirrored (and that is counted).
	MaxBodyBytes int64 `yaml:"maxBodyBytes"`
}

// HealthCheck is an active check of every endpoint of the service.
type HealthCheck struct {
	Path               string   `yaml:"path"`
	Interval           Duration `yaml:"interval"`
	Timeout            Duration `yaml:"timeout"`
	HealthyThreshold   int      `yaml:"healthyThreshold"`
	UnhealthyThreshold int      `yaml:"unhealthyThreshold"`
}

// PassiveHealth ejects an endpoint after consecutive failed requests (connection failures, timeouts,
// 502/503/504), for an ejection time that doubles on each repeat up to MaxEjection.
type PassiveHealth struct {
	ConsecutiveFailures int      `yaml:"consecutiveFailures"` // 0 uses the default; -1 turns passive ejection off
	BaseEjection        Duration `yaml:"baseEjection"`
	MaxEjection         Duration `yaml:"maxEjection"`
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
