package config

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

var (
	// prefixPattern is a path of one or more segments, with no trailing slash.
	prefixPattern = regexp.MustCompile(`^(/[A-Za-z0-9._~-]+)+$`)
	envPattern    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

func (v *validator) flags(f *Flags, services []Service) {
	for i, path := range f.Files {
		if strings.TrimSpace(path) == "" {
			v.addf(fmt.Sprintf("flags.files[%d]", i), "is empty: name a flagd JSON file")
		}
	}
	p := "flags.ofrep.prefix"
	if !prefixPattern.MatchString(f.OFREP.Prefix) {
		v.addf(p, "%q is not a path such as /ofrep: start with /, no trailing slash, letters, digits and ._~- only", f.OFREP.Prefix)
	}
	if f.OFREP.Prefix == "/api" || strings.HasPrefix(f.OFREP.Prefix, "/api/") {
		v.addf(p, "%q would hide the admin API on the admin listener; choose another path such as /ofrep", f.OFREP.Prefix)
	}
	for i, s := range services {
		pp := s.Match.PathPrefix
		if pp != "" && pp != "/" && len(s.Match.Hosts) == 0 && strings.HasPrefix(f.OFREP.Prefix+"/", strings.TrimSuffix(pp, "/")+"/") {
			v.addf(p, "%q is inside services[%d].match.pathPrefix %q: the flag endpoints are taken first, so choose a prefix the service does not serve", f.OFREP.Prefix, i, pp)
		}
	}
	names := map[string]int{}
	for i, k := range f.OFREP.Keys {
		kp := fmt.Sprintf("flags.ofrep.keys[%d]", i)
		if k.Name == "" {
			v.addf(kp+".name", "is required: say whose key it is")
		} else if j, dup := names[k.Name]; dup {
			v.addf(kp+".name", "%q is already the name of flags.ofrep.keys[%d]; names must be unique", k.Name, j)
		} else {
			names[k.Name] = i
		}
		switch {
		case k.Key != "" && k.KeyEnv != "":
			v.addf(kp, "sets both key and keyEnv; keep one")
		case k.Key == "" && k.KeyEnv == "":
			v.addf(kp, "needs key, or keyEnv naming an environment variable that holds it")
		case k.KeyEnv != "" && !envPattern.MatchString(k.KeyEnv):
			v.addf(kp+".keyEnv", "%q is not an environment variable name", k.KeyEnv)
		case k.KeyEnv != "" && os.Getenv(k.KeyEnv) == "":
			v.addf(kp+".keyEnv", "the environment variable %s is empty or not set; export the key in it", k.KeyEnv)
		case len(k.Key) < 16 && k.Key != "":
			v.addf(kp+".key", "is %d characters; use at least 16 random characters (e.g. openssl rand -hex 16)", len(k.Key))
		}
	}
}

// Secret is the key itself: Key, or the value of the environment variable KeyEnv.
func (k EvaluationKey) Secret() string {
	if k.KeyEnv != "" {
		return os.Getenv(k.KeyEnv)
	}
	return k.Key
}
