package config

import (
	"errors"
	"strings"
	"testing"
)

// Errors found after decoding carry the line of their path too, or of the nearest value the file
// writes when the path is a default (a traffic list the file left out points at its service).
func TestValidationErrorsCarryLines(t *testing.T) {
	in := `gateway: {listen: "nope"}
services:
  - name: shop
    versions:
      - name: v1
        endpoints: ["ftp://x"]
    traffic:
      - {version: v1, weight: 90}
      - {version: v3, weight: 10}
  - name: Cart
    match: {pathPrefix: /cart}
    versions: [{name: v1, endpoints: ["http://h:1"]}]
`
	_, err := Parse([]byte(in))
	for _, w := range []string{
		`gateway.listen: "nope" is not host:port (e.g. 127.0.0.1:8080) (line 1)`,
		`services[0].versions[0].endpoints[0]: "ftp://x" must start with http:// or https:// (line 6)`,
		`services[0].traffic[1].version: "v3" is not a version of this service (line 9)`,
		`services[1].name: "Cart" must be lower-case letters`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse: %v", err)
	}
	for _, e := range errs {
		if e.Line == 0 {
			t.Errorf("%v: no line", e)
		}
		if e.Path == "services[1].name" && e.Line != 10 {
			t.Errorf("%v: want line 10", e)
		}
	}
}

func TestLoopIntervalsPortsAndHeaderNamesAreChecked(t *testing.T) {
	in := `gateway: {listen: "127.0.0.1:99999"}
admin: {listen: "127.0.0.1:http"}
analysis:
  templates:
    - name: web
      metrics:
        - name: ok
          interval: 1us
          successCondition: "result > 0"
          web: {url: "http://h:70000/q", headers: {"X-A\r\nX-B": "1", X-C: "a\nb"}}
services:
  - name: shop
    versions: [{name: v1, endpoints: ["http://h:99999"]}, {name: v2, endpoints: ["http://h:2"]}]
    healthCheck: {interval: 1ns}
    stickiness: {header: "X-User Id"}
    routes:
      - {match: {header: {name: "X-Canary\r\nX-Evil", value: "1"}}, version: v2}
      - {match: {cookie: {name: "a;b", value: "1"}}, version: v2}
    release: v1
    strategy: {canary: {steps: [{gate: {url: "http://h:1/ok", interval: 1ms}}]}}
`
	_, err := Parse([]byte(in))
	for _, w := range []string{
		`gateway.listen: "127.0.0.1:99999" has port 99999; a port is 0..65535 (0: any free port) (line 1)`,
		`admin.listen: "127.0.0.1:http" has port http; a port is 0..65535`,
		`analysis.templates[0].metrics[0].interval: 1µs is too short: the loop would run back to back; use at least 10ms (line 8)`,
		`analysis.templates[0].metrics[0].web.url: "http://h:70000/q" has port 70000; a port is 1..65535 (line 10)`,
		`analysis.templates[0].metrics[0].web.headers: "X-A\r\nX-B" is not an HTTP header name`,
		`analysis.templates[0].metrics[0].web.headers: the value of "X-C" has a line break or a control character; HTTP header values cannot (line 10)`,
		`services[0].versions[0].endpoints[0]: "http://h:99999" has port 99999; a port is 1..65535 (line 13)`,
		`services[0].healthCheck.interval: 1ns is too short: the loop would run back to back; use at least 10ms (line 14)`,
		`services[0].stickiness.header: "X-User Id" is not an HTTP header name (letters, digits and !#$%&'*+-.^_` + "`" + `|~, no spaces or line breaks) (line 15)`,
		`services[0].routes[0].match.header.name: "X-Canary\r\nX-Evil" is not an HTTP header name`,
		`services[0].routes[1].match.cookie.name: "a;b" is not a valid cookie name (line 18)`,
		`services[0].strategy.canary.steps[0].gate.interval: 1ms is too short`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
}
