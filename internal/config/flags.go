package config

// Flags are the feature flags Aviary serves: flagd JSON files named here (watched and reloaded),
// merged with the flags set through the API, served over OFREP.
type Flags struct {
	// Files are flagd JSON documents; a relative path is taken from the config file's directory.
	// Later files override earlier ones per flag key, and flags set through the API override them all.
	Files []string `yaml:"files" json:"files,omitempty"`
	// OFREP is the OpenFeature remote evaluation endpoints.
	OFREP OFREP `yaml:"ofrep" json:"ofrep,omitempty"`
}

// OFREP serves the OpenFeature Remote Evaluation Protocol under Prefix, on the gateway listener (for
// browsers and applications) and on the admin listener.
type OFREP struct {
	// Prefix is the path the endpoints live under: {prefix}/v1/evaluate/flags and so on. On the gateway
	// listener it is taken before any service's match.
	Prefix string `yaml:"prefix" json:"prefix,omitempty"`
	// Keys may evaluate flags and nothing else. With none, evaluation is open on the gateway listener;
	// on the admin listener the admin API's tokens may evaluate too.
	Keys []EvaluationKey `yaml:"keys" json:"keys,omitempty"`
}

// EvaluationKey is one key that may evaluate flags, sent by a client as X-API-Key or as a bearer
// token. Exactly one of Key and KeyEnv is set.
type EvaluationKey struct {
	// Name says whose key it is (an application, a team); it labels nothing a client sends.
	Name string `yaml:"name" json:"name,omitempty"`
	// Key is the key itself; KeyEnv names an environment variable that holds it (read at start), so
	// that the file need not hold the secret.
	Key    string `yaml:"key" json:"-"`
	KeyEnv string `yaml:"keyEnv" json:"keyEnv,omitempty"`
}

// DefaultOFREPPrefix is where the OFREP endpoints are served when flags.ofrep.prefix is not set, the
// path the OpenFeature providers use by default.
const DefaultOFREPPrefix = "/ofrep"

func (f *Flags) applyDefaults() {
	setString(&f.OFREP.Prefix, DefaultOFREPPrefix)
}
