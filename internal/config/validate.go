package config

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

var namePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`)

// validator collects every error with its path.
type validator struct {
	errs      Errors
	templates map[string]bool // analysis template names, for references from strategies
}

func (v *validator) addf(path, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Validate checks a config whose defaults are applied and returns every problem at once.
func (c *Config) Validate() Errors {
	v := &validator{}
	v.listen("gateway.listen", c.Gateway.Listen)
	v.listen("admin.listen", c.Admin.Listen)
	if c.Gateway.Listen == c.Admin.Listen && !strings.HasSuffix(c.Admin.Listen, ":0") {
		v.addf("admin.listen", "%q is also gateway.listen; give the admin API its own address", c.Admin.Listen)
	}
	for i, h := range c.Admin.AllowedHosts {
		if h == "" || strings.ContainsAny(h, "/@ ") {
			v.addf(fmt.Sprintf("admin.allowedHosts[%d]", i), "%q is not a host name: give the name alone, e.g. aviary.example.com", h)
		}
	}
	v.gateway(&c.Gateway)
	if c.Storage.MaxEvents < 0 {
		v.addf("storage.maxEvents", "%d must be positive", c.Storage.MaxEvents)
	}
	v.notifications(&c.Notifications)
	v.templates = v.analysis(&c.Analysis)
	v.llmSettings(&c.LLM)
	v.telemetry(&c.Telemetry)
	v.flags(&c.Flags, c.Services)
	v.experiments(c.Experiments, c.Services)
	names := map[string]int{}
	matches := map[string]int{}
	flags := map[string]string{}
	for i := range c.Services {
		s := &c.Services[i]
		p := fmt.Sprintf("services[%d]", i)
		if j, dup := names[s.Name]; dup && s.Name != "" {
			v.addf(p+".name", "%q is already the name of services[%d]; names must be unique", s.Name, j)
		}
		names[s.Name] = i
		key := s.Match.PathPrefix + "|" + strings.Join(s.Match.Hosts, ",")
		if j, dup := matches[key]; dup {
			v.addf(p+".match", "same match as services[%d]; one of them would never get a request", j)
		}
		matches[key] = i
		v.service(p, s)
		v.serviceFlags(p, s, flags)
	}
	return v.errs
}

// gateway checks the gateway's settings but its listen address.
func (v *validator) gateway(g *Gateway) {
	if t := g.TLS; t != nil {
		v.file("gateway.tls.certFile", t.CertFile)
		v.file("gateway.tls.keyFile", t.KeyFile)
	}
	if g.MaxMirrorsInFlight < 0 {
		v.addf("gateway.maxMirrorsInFlight", "%d must be positive", g.MaxMirrorsInFlight)
	}
	if g.MaxConnections < 0 {
		v.addf("gateway.maxConnections", "%d must be positive", g.MaxConnections)
	}
	if g.MinBodyRate < -1 {
		v.addf("gateway.minBodyRate", "%d must be a number of bytes per second, or -1 to turn it off", g.MinBodyRate)
	}
	t := &g.Timeouts
	for _, d := range []struct {
		name string
		d    Duration
	}{{"connect", t.Connect}, {"responseHeader", t.ResponseHeader}, {"upstreamIdle", t.UpstreamIdle},
		{"readHeader", t.ReadHeader}, {"clientIdle", t.ClientIdle}, {"bodyIdle", t.BodyIdle}, {"bodyGrace", t.BodyGrace},
		{"shutdown", t.Shutdown}} {
		v.positive("gateway.timeouts."+d.name, d.d)
	}
}

func (v *validator) service(p string, s *Service) {
	if !namePattern.MatchString(s.Name) {
		v.addf(p+".name", "%q must be lower-case letters, digits, '.', '_' or '-' (1..63 characters)", s.Name)
	}
	if !strings.HasPrefix(s.Match.PathPrefix, "/") {
		v.addf(p+".match.pathPrefix", "%q must start with /", s.Match.PathPrefix)
	}
	for i, h := range s.Match.Hosts {
		if h == "" || strings.ContainsAny(h, "/ ") {
			v.addf(fmt.Sprintf("%s.match.hosts[%d]", p, i), "%q is not a host name", h)
		}
	}
	if len(s.Versions) == 0 {
		v.addf(p+".versions", "a service needs at least one version")
	}
	versions := v.versions(p, s.Versions)
	v.traffic(p, s.Traffic, versions)
	v.managed(p, s, versions)
	v.llm(p, s)
	if st := s.Stickiness; st != nil {
		v.stickiness(p+".stickiness", st)
	}
	for i, r := range s.Routes {
		rp := fmt.Sprintf("%s.routes[%d]", p, i)
		v.match(rp+".match", &r.Match)
		v.versionRef(rp+".version", r.Version, versions)
	}
	if m := s.Mirror; m != nil {
		v.versionRef(p+".mirror.version", m.Version, versions)
		if m.Percent <= 0 || m.Percent > 100 {
			v.addf(p+".mirror.percent", "%g is not in (0..100]", m.Percent)
		}
		if m.MaxBodyBytes < 0 {
			v.addf(p+".mirror.maxBodyBytes", "%d must not be negative", m.MaxBodyBytes)
		}
	}
	v.health(p, s)
}

// versions checks a service's versions (p is the service's path) and returns their names.
func (v *validator) versions(p string, vs []Version) map[string]bool {
	versions := map[string]bool{}
	for i, ver := range vs {
		vp := fmt.Sprintf("%s.versions[%d]", p, i)
		if !namePattern.MatchString(ver.Name) {
			v.addf(vp+".name", "%q must be lower-case letters, digits, '.', '_' or '-'", ver.Name)
		}
		if versions[ver.Name] {
			v.addf(vp+".name", "%q is listed twice", ver.Name)
		}
		versions[ver.Name] = true
		if len(ver.Endpoints) == 0 {
			v.addf(vp+".endpoints", "a version needs at least one endpoint URL")
		}
		for j, e := range ver.Endpoints {
			v.endpoint(fmt.Sprintf("%s.endpoints[%d]", vp, j), e)
		}
	}
	return versions
}

// stickiness checks a service's stickiness (p ends in .stickiness).
func (v *validator) stickiness(p string, st *Stickiness) {
	set := 0
	for _, k := range []string{st.Header, st.Cookie, st.Query} {
		if k != "" {
			set++
		}
	}
	if set != 1 {
		v.addf(p, "set exactly one of header, cookie or query (found %d)", set)
	}
	if st.Header != "" {
		v.headerName(p+".header", st.Header)
	}
	if st.SetCookie != "" && !validCookieName(st.SetCookie) {
		v.addf(p+".setCookie", "%q is not a valid cookie name", st.SetCookie)
	}
}

// health checks a service's active and passive health settings (p is the service's path).
func (v *validator) health(p string, s *Service) {
	if h := s.HealthCheck; h != nil {
		hp := p + ".healthCheck"
		if !strings.HasPrefix(h.Path, "/") {
			v.addf(hp+".path", "%q must start with /", h.Path)
		}
		v.interval(hp+".interval", h.Interval)
		v.positive(hp+".timeout", h.Timeout)
		if h.HealthyThreshold < 1 {
			v.addf(hp+".healthyThreshold", "%d must be at least 1", h.HealthyThreshold)
		}
		if h.UnhealthyThreshold < 1 {
			v.addf(hp+".unhealthyThreshold", "%d must be at least 1", h.UnhealthyThreshold)
		}
	}
	pp := p + ".passiveHealth"
	if s.Passive.ConsecutiveFailures < -1 {
		v.addf(pp+".consecutiveFailures", "%d must be positive, or -1 to turn passive ejection off", s.Passive.ConsecutiveFailures)
	}
	v.positive(pp+".baseEjection", s.Passive.BaseEjection)
	v.positive(pp+".maxEjection", s.Passive.MaxEjection)
}

func (v *validator) traffic(p string, ts []Traffic, versions map[string]bool) {
	sum := 0
	seen := map[string]bool{}
	for i, t := range ts {
		tp := fmt.Sprintf("%s.traffic[%d]", p, i)
		v.versionRef(tp+".version", t.Version, versions)
		if seen[t.Version] {
			v.addf(tp+".version", "%q has a weight already; give each version one entry", t.Version)
		}
		seen[t.Version] = true
		if t.Weight < 0 || t.Weight > 100 {
			v.addf(tp+".weight", "%d is not in 0..100", t.Weight)
		}
		sum += t.Weight
	}
	if len(ts) > 0 && sum != 100 {
		v.addf(p+".traffic", "weights add up to %d; they must add up to 100", sum)
	}
}

func (v *validator) match(p string, m *Match) {
	if m.Header == nil && m.Cookie == nil && m.Query == nil && m.Path == nil {
		v.addf(p, "set at least one of header, cookie, query or path")
	}
	for _, k := range []struct {
		name string
		m    *KeyMatch
	}{{"header", m.Header}, {"cookie", m.Cookie}, {"query", m.Query}} {
		if k.m == nil {
			continue
		}
		switch {
		case k.m.Name == "":
			v.addf(p+"."+k.name+".name", "is required")
		case k.name == "header":
			v.headerName(p+".header.name", k.m.Name)
		case k.name == "cookie" && !validCookieName(k.m.Name):
			v.addf(p+".cookie.name", "%q is not a valid cookie name", k.m.Name)
		}
		v.stringMatch(p+"."+k.name, &k.m.StringMatch)
	}
	if m.Path != nil {
		v.stringMatch(p+".path", m.Path)
	}
}

func (v *validator) stringMatch(p string, m *StringMatch) {
	set := 0
	for _, s := range []string{m.Value, m.Prefix, m.Regex} {
		if s != "" {
			set++
		}
	}
	if set != 1 {
		v.addf(p, "set exactly one of value (exact), prefix or regex (found %d)", set)
	}
	if m.Regex != "" {
		if _, err := regexp.Compile(m.Regex); err != nil {
			v.addf(p+".regex", "%q is not a valid regular expression: %v", m.Regex, err)
		}
	}
}

func (v *validator) versionRef(p, name string, versions map[string]bool) {
	if name == "" {
		v.addf(p, "is required")
	} else if !versions[name] {
		v.addf(p, "%q is not a version of this service", name)
	}
}

func (v *validator) endpoint(p, raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		v.addf(p, "%q is not a URL: %v", raw, err)
	case u.Scheme != "http" && u.Scheme != "https":
		v.addf(p, "%q must start with http:// or https://", raw)
	case u.Host == "":
		v.addf(p, "%q has no host", raw)
	case u.RawQuery != "" || u.Fragment != "":
		v.addf(p, "%q must not have a query or fragment", raw)
	default:
		v.urlPort(p, raw, u)
	}
}

// urlPort checks the port of a URL, which url.Parse takes as any run of digits.
func (v *validator) urlPort(p, raw string, u *url.URL) {
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			v.addf(p, "%q has port %s; a port is 1..65535", raw, port)
		}
	}
}

func (v *validator) listen(p, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		v.addf(p, "%q is not host:port (e.g. 127.0.0.1:8080)", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.addf(p, "%q has port %s; a port is 0..65535 (0: any free port)", addr, port)
	}
}

// headerName checks an HTTP header field name: a token, so no spaces, colons, CR or LF.
func (v *validator) headerName(p, name string) {
	if !httpguts.ValidHeaderFieldName(name) {
		v.addf(p, "%q is not an HTTP header name (letters, digits and !#$%%&'*+-.^_`|~, no spaces or line breaks)", name)
	}
}

// MinInterval is the shortest interval of a loop that a config may ask for (health checks,
// measurements, gate polls): shorter ones run back to back and take a core.
const MinInterval = 10 * time.Millisecond

// interval checks the period of a loop: positive, and not shorter than MinInterval.
func (v *validator) interval(p string, d Duration) {
	v.positive(p, d)
	if d.err == nil && d.Duration > 0 && d.Duration < MinInterval {
		v.addf(p, "%s is too short: the loop would run back to back; use at least %s", d.Duration, MinInterval)
	}
}

func (v *validator) file(p, path string) {
	if path == "" {
		v.addf(p, "is required")
		return
	}
	if _, err := os.Stat(path); err != nil {
		v.addf(p, "cannot read %q: %v", path, err)
	}
}

func (v *validator) positive(p string, d Duration) {
	switch {
	case d.err != nil:
		v.addf(p, "%v", d.err)
	case d.Duration <= 0:
		v.addf(p, "%s must be positive", d.Duration)
	}
}

func validCookieName(name string) bool {
	c := &http.Cookie{Name: name, Value: "x"}
	return c.Valid() == nil
}
