//go:build e2e

package crash_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/rollout"
)

// stepSpec is one canary step of the test's strategy: its YAML, and for timed pauses, how long.
type stepSpec struct {
	yaml  string
	pause time.Duration
}

// canarySteps walk through every kind of instant step and both kinds of pause; the last pause
// waits for a promote, so that rollouts also end by a person's hand.
var canarySteps = []stepSpec{
	{yaml: "setWeight: 10"},
	{yaml: "pause: {duration: 3s}", pause: 3 * time.Second},
	{yaml: "setWeight: 30"},
	{yaml: `setHeaderRoute: {match: {header: {name: X-Canary, value: "1"}}}`},
	{yaml: "setMirror: {percent: 20}"},
	{yaml: "pause: {duration: 2s}", pause: 2 * time.Second},
	{yaml: "setWeight: 60"},
	{yaml: "pause: {duration: 2s}", pause: 2 * time.Second},
	{yaml: "pause: {}"},
}

const service = "shop"

// versions of shop; v1 is the release in the config file.
var versions = []string{"v1", "v2", "v3"}

// aviaryProc is the aviary under test: one config, one store, the same ports across restarts.
type aviaryProc struct {
	t       *testing.T
	bin     string
	dir     string
	config  string
	store   string
	gateway string // host:port
	admin   string // host:port
	api     *client
	proc    *proc     // the running (or last) process
	readyAt time.Time // when it last said it was ready
	starts  int
}

// newAviary writes the config for upstreams (version → address) and returns an aviary that is not
// started yet.
func newAviary(t *testing.T, bin, dir string, upstreams map[string]string) *aviaryProc {
	t.Helper()
	a := &aviaryProc{t: t, bin: bin, dir: dir, config: filepath.Join(dir, "aviary.yaml"),
		store: filepath.Join(dir, "state", "aviary.db"), gateway: freeAddr(t), admin: freeAddr(t)}
	a.api = newClient("http://" + a.admin)
	var b strings.Builder
	fmt.Fprintf(&b, "gateway: {listen: %q}\nadmin: {listen: %q}\nstorage: {path: %q}\n", a.gateway, a.admin, a.store)
	fmt.Fprintf(&b, "services:\n  - name: %s\n    match: {pathPrefix: /}\n    versions:\n", service)
	for _, v := range versions {
		fmt.Fprintf(&b, "      - {name: %s, endpoints: [%q]}\n", v, "http://"+upstreams[v])
	}
	fmt.Fprintf(&b, "    release: %s\n    healthCheck: {interval: 500ms}\n    strategy:\n      canary:\n        steps:\n", versions[0])
	for _, s := range canarySteps {
		fmt.Fprintf(&b, "          - %s\n", s.yaml)
	}
	if err := os.WriteFile(a.config, []byte(b.String()), 0o644); err != nil {
		t.Fatalf("write the config: %v", err)
	}
	return a
}

// spawn starts a new aviary process without waiting for it.
func (a *aviaryProc) spawn() {
	a.starts++
	a.proc = startProc(a.t, fmt.Sprintf("aviary (start %d)", a.starts),
		filepath.Join(a.dir, fmt.Sprintf("aviary-%03d.log", a.starts)), a.bin, "serve", "-c", a.config)
}

// start starts aviary and waits until its admin API says it is ready.
func (a *aviaryProc) start() error {
	a.spawn()
	if err := a.waitReady(15 * time.Second); err != nil {
		return fmt.Errorf("aviary did not come back (start %d): %w\n%s", a.starts, err, a.proc.logTail())
	}
	a.readyAt = time.Now()
	return nil
}

func (a *aviaryProc) waitReady(timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if a.proc.exited() {
			return fmt.Errorf("the process exited (%v)", a.proc.cmd.ProcessState)
		}
		if code, err := a.api.call("GET", "/readyz", nil, nil); err == nil && code == http.StatusOK {
			return nil
		}
	}
	return fmt.Errorf("/readyz did not answer 200 within %s", timeout)
}

// kill is the crash: SIGKILL, no chance to drain, flush or close anything.
func (a *aviaryProc) kill() {
	a.t.Helper()
	if err := a.proc.kill(); err != nil {
		a.t.Fatal(err)
	}
}

// client talks to the admin API.
type client struct {
	base string
	http *http.Client
}

func newClient(base string) *client {
	return &client{base: base, http: &http.Client{Timeout: 3 * time.Second}}
}

// call sends body (if any) as JSON and decodes a 200 answer into out (if any). An answer that is
// not 200 comes back as its code with a nil error; err is for requests that got no answer.
func (c *client) call(method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json") // the admin API takes changes as JSON only
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("read the answer to %s %s: %w", method, path, err)
	}
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return 0, fmt.Errorf("decode the answer to %s %s: %w\n%s", method, path, err, data)
		}
	}
	return resp.StatusCode, nil
}

// status is GET /api/v1/services/shop/rollout.
func (c *client) status() (rollout.Status, error) {
	var st rollout.Status
	code, err := c.call("GET", "/api/v1/services/"+service+"/rollout", nil, &st)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("GET rollout status: HTTP %d", code)
	}
	return st, err
}

// servedService is the gateway's view of a service (GET /api/v1/services/shop): what it serves.
type servedService struct {
	Name     string `json:"name"`
	Stable   string `json:"stableVersion"`
	Versions []struct {
		Name   string `json:"name"`
		Weight int    `json:"weight"`
	} `json:"versions"`
	Routes []config.Route `json:"routes"`
	Mirror *config.Mirror `json:"mirror"`
}

func (c *client) served() (servedService, error) {
	var s servedService
	code, err := c.call("GET", "/api/v1/services/"+service, nil, &s)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("GET service: HTTP %d", code)
	}
	return s, err
}

// eventsAfter is GET /api/v1/events?service=shop&after=SEQ.
func (c *client) eventsAfter(seq uint64) ([]rollout.Event, error) {
	var out struct {
		Events []rollout.Event `json:"events"`
	}
	code, err := c.call("GET", fmt.Sprintf("/api/v1/events?service=%s&after=%d&limit=1000", service, seq), nil, &out)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("GET events: HTTP %d", code)
	}
	return out.Events, err
}
