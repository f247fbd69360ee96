//go:build e2e

// Package flags_test runs real OpenFeature SDKs against the real `aviary serve`: the Node server
// SDK with @openfeature/ofrep-provider (sdk_test.go, server.test.mjs) and the web SDK with
// @openfeature/ofrep-web-provider in headless Chromium (web_test.go, web.mjs), all from npm
// (test/flags/sdk, installed here with npm ci from the lockfile).
package flags_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"aviary.dev/aviary/test/e2e"
)

const (
	evalKey    = "eval-key-for-the-sdk-tests"
	adminToken = "admin-token-for-the-sdk-tests"
)

// served is one running aviary with the flags of test/flags/flags.json.
type served struct {
	gw, admin string // base URLs
	dir       string
	bin       string    // the aviary binary
	proc      *e2e.Proc // the running aviary
}

// needNode fails the test unless node and npm are on PATH; AVIARY_SKIP_NODE=1 skips it instead.
func needNode(t *testing.T) {
	t.Helper()
	if os.Getenv("AVIARY_SKIP_NODE") == "1" {
		t.Skip("AVIARY_SKIP_NODE=1: the OpenFeature SDK suites are skipped")
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not on PATH: install Node.js 20 or later (apt-get install nodejs npm), or set AVIARY_SKIP_NODE=1", tool)
		}
	}
}

// serve builds aviary and runs it with the suite's flags, an evaluation key and an admin token.
func serve(t *testing.T) *served {
	t.Helper()
	root := e2e.ModuleRoot(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "aviary")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/aviary")
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/aviary: %v\n%s", err, msg)
	}
	flags, err := os.ReadFile(filepath.Join(root, "test", "flags", "flags.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "flags.json"), flags, 0o644); err != nil {
		t.Fatal(err)
	}
	gw, admin := e2e.FreeAddr(t), e2e.FreeAddr(t)
	cfg := fmt.Sprintf(`gateway: {listen: %q}
admin: {listen: %q, token: %q}
storage: {path: %q}
flags:
  files: [flags.json]
  ofrep:
    keys: [{name: sdk-tests, key: %q}]
`, gw, admin, adminToken, filepath.Join(dir, "aviary.db"), evalKey)
	config := filepath.Join(dir, "aviary.yaml")
	if err := os.WriteFile(config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &served{gw: "http://" + gw, admin: "http://" + admin, dir: dir, bin: bin}
	s.start(t)
	return s
}

// start runs aviary on the suite's config in s.dir and waits until it is ready.
func (s *served) start(t *testing.T) {
	t.Helper()
	logPath := filepath.Join(s.dir, "aviary.log")
	s.proc = e2e.StartProcess(t, "aviary", logPath, s.bin, "serve", "-c", filepath.Join(s.dir, "aviary.yaml"), "--log-level", "warn")
	e2e.WaitReady(t, s.admin+"/readyz", logPath)
}

// adminAPI sends a change to the admin API as the CLI does, and fails the test unless it is 200.
func (s *served) adminAPI(t *testing.T, method, path, body string) {
	t.Helper()
	req, err := http.NewRequest(method, s.admin+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, msg)
	}
}

// metric reads the value of one series of the admin listener's /metrics (0 when absent).
func (s *served) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get(s.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(text), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}
