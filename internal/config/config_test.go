package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseFullExample(t *testing.T) {
	c, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := c.Services[0]
	if s.Name != "shop" || len(s.Versions) != 2 || len(s.Versions[0].Endpoints) != 2 {
		t.Fatalf("service decoded wrong: %+v", s)
	}
	if s.Traffic[1] != (Traffic{Version: "v2", Weight: 10}) {
		t.Errorf("traffic[1] = %+v", s.Traffic[1])
	}
	if s.Routes[0].Match.Header.Name != "X-Canary" || s.Routes[0].Match.Header.Value != "always" {
		t.Errorf("route 0 = %+v", s.Routes[0].Match.Header)
	}
	if s.HealthCheck.Interval.Duration != 2*time.Second || s.HealthCheck.UnhealthyThreshold != 3 {
		t.Errorf("healthCheck = %+v", s.HealthCheck)
	}
	if s.Mirror.MaxBodyBytes != DefaultMirrorMaxBodyBytes {
		t.Errorf("mirror max body default not applied: %d", s.Mirror.MaxBodyBytes)
	}
	if c.Gateway.Timeouts.Connect != DefaultTimeouts.Connect {
		t.Errorf("timeouts default not applied: %+v", c.Gateway.Timeouts)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(`services: [{name: a, versions: [{name: v1, endpoints: ["http://127.0.0.1:1"]}]}]`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway.Listen != DefaultGatewayListen || c.Admin.Listen != DefaultAdminListen {
		t.Errorf("listen defaults: %q %q", c.Gateway.Listen, c.Admin.Listen)
	}
	s := c.Services[0]
	if s.Match.PathPrefix != "/" {
		t.Errorf("pathPrefix default %q", s.Match.PathPrefix)
	}
	if len(s.Traffic) != 1 || s.Traffic[0] != (Traffic{Version: "v1", Weight: 100}) {
		t.Errorf("absent traffic must send all to the first version, got %+v", s.Traffic)
	}
	if s.HealthCheck != nil {
		t.Errorf("no active health check unless asked: %+v", s.HealthCheck)
	}
	if s.Passive.ConsecutiveFailures != DefaultPassiveFailures {
		t.Errorf("passive default %d", s.Passive.ConsecutiveFailures)
	}
}

// Every error is reported at once, each with its path.
func TestValidationReportsEveryErrorWithPath(t *testing.T) {
	in := `
gateway: {listen: "nope"}
services:
  - name: shop
    versions:
      - {name: v1, endpoints: ["ftp://x"]}
      - {name: v2, endpoints: []}
    traffic: [{version: v1, weight: 90}, {version: v3, weight: 140}]
    stickiness: {header: a, cookie: b}
    routes:
      - {match: {header: {name: X, regex: "("}}, version: v9}
      - {match: {}, version: v2}
    mirror: {version: v2, percent: 0}
    healthCheck: {interval: 2x}
`
	_, err := Parse([]byte(in))
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	want := []string{
		`gateway.listen: "nope" is not host:port`,
		`services[0].versions[0].endpoints[0]: "ftp://x" must start with http://`,
		`services[0].versions[1].endpoints: a version needs at least one endpoint`,
		`services[0].traffic[1].version: "v3" is not a version of this service`,
		`services[0].traffic[1].weight: 140 is not in 0..100`,
		`services[0].traffic: weights add up to 230`,
		`services[0].stickiness: set exactly one of header, cookie or query`,
		`services[0].routes[0].match.header.regex: "(" is not a valid regular expression`,
		`services[0].routes[0].version: "v9" is not a version`,
		`services[0].routes[1].match: set at least one of`,
		`services[0].mirror.percent: 0 is not in (0..100]`,
		`services[0].healthCheck.interval: "2x" is not a duration`,
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("missing error %q in:\n%s", w, msg)
		}
	}
	if n := len(err.(Errors)); n != len(want) {
		t.Errorf("got %d errors, want %d:\n%s", n, len(want), msg)
	}
}

func TestUnknownKeysAreErrorsWithPath(t *testing.T) {
	in := `
gatway: {listen: "127.0.0.1:1"}
services:
  - name: shop
    versions: [{name: v1, endpoints: ["http://127.0.0.1:1"], weigth: 3}]
    stickyness: {header: X}
    traffic: [{version: v1, weight: 140}]
`
	_, err := Parse([]byte(in))
	if err == nil {
		t.Fatal("typos accepted")
	}
	for _, w := range []string{
		"gatway: unknown field; valid fields here are admin, analysis, experiments, flags, gateway, llm, notifications, reload, services, storage, telemetry (line 2)",
		"services[0].versions[0].weigth: unknown field; valid fields here are endpoints, llm, name (line 5)",
		"services[0].stickyness: unknown field",
		"services[0].traffic[0].weight: 140 is not in 0..100 (line 7)", // reported with the typos, not after them
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
}

func TestWrongScalarKinds(t *testing.T) {
	in := `services: [{name: a, versions: [{name: v1, endpoints: ["http://h:1"]}], traffic: [{version: v1, weight: lots}], mirror: {version: v1, percent: [1]}}]`
	_, err := Parse([]byte(in))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range []string{
		`services[0].traffic[0].weight: "lots" is not a whole number (line 1)`,
		`services[0].mirror.percent: must be a single value, not a list or mapping (line 1)`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
}

func TestDuplicateNamesAndMatches(t *testing.T) {
	in := `
services:
  - {name: a, versions: [{name: v1, endpoints: ["http://h:1"]}, {name: v1, endpoints: ["http://h:2"]}]}
  - {name: a, versions: [{name: v1, endpoints: ["http://h:1"]}]}
`
	_, err := Parse([]byte(in))
	for _, w := range []string{
		`services[0].versions[1].name: "v1" is listed twice`,
		`services[1].name: "a" is already the name of services[0]`,
		`services[1].match: same match as services[0]`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
}

func TestNotYAML(t *testing.T) {
	_, err := Parse([]byte("services: [\n"))
	if err == nil || !strings.Contains(err.Error(), "not valid YAML") {
		t.Fatalf("got %v", err)
	}
}

func TestEmptyFileIsValid(t *testing.T) {
	c, err := Parse(nil)
	if err != nil || c.Gateway.Listen != DefaultGatewayListen {
		t.Fatalf("empty config: %v %+v", err, c)
	}
}

func TestLLMSettingsAreCheckedWithPaths(t *testing.T) {
	in := `
llm:
  prices: [{model: gpt-x, input: -1, output: 10}, {model: gpt-x, input: 1}]
services:
  - name: chat
    llm: {api: openia, evaluator: {url: "ftp://x", percent: 0, maxBytes: 9223372036854775807}}
    versions:
      - {name: v1, endpoints: ["http://127.0.0.1:1"], llm: {systemPromptMode: append, params: {model: x}}}
`
	_, err := Parse([]byte(in))
	for _, w := range []string{
		"llm.prices[0].input: -1 must be a price per million tokens: a number, not negative",
		`llm.prices[1].model: "gpt-x" has a price already`,
		`services[0].llm.api: "openia" must be openai, anthropic or auto`,
		"services[0].llm.evaluator.url",
		"services[0].llm.evaluator.percent: 0 is not in (0..100]",
		"services[0].llm.evaluator.maxBytes: 9223372036854775807 is more than 16777216 (16 MiB)",
		`services[0].versions[0].llm.systemPromptMode: "append" must be replace or prepend`,
		"services[0].versions[0].llm.params.model: is not a parameter to override",
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
}
