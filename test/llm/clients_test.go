//go:build e2e

package llm_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/polltest"

	"aviary.dev/aviary/test/e2e"
)

// The official OpenAI and Anthropic Node SDKs (test/llm/clients, installed here with npm ci from
// the lockfile) against the real binaries: `aviary serve` in front of aviary-fakellm, one plain,
// one that compresses every answer, and one slow enough to stop. The SDK side is
// test/llm/clients/sdk.test.mjs, run with node's test runner; it reads Aviary's /metrics to
// compare the tokens Aviary recorded with the SDKs' usage.
//
// Node and npm are needed (node 20 or later); AVIARY_SKIP_NODE=1 skips the test where they
// cannot be had, and says so.
func TestTheOfficialSDKsThroughTheGateway(t *testing.T) {
	if os.Getenv("AVIARY_SKIP_NODE") == "1" {
		t.Skip("AVIARY_SKIP_NODE=1: the Node SDK suite is skipped")
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not on PATH: install Node.js 20 or later (apt-get install nodejs npm), or set AVIARY_SKIP_NODE=1", tool)
		}
	}
	t.Parallel()
	root := e2e.ModuleRoot(t)
	clients := filepath.Join(root, "test", "llm", "clients")
	e2e.NpmCI(t, clients)
	dir := t.TempDir()
	aviaryBin, fakeBin := build(t, root, dir, "./cmd/aviary"), build(t, root, dir, "./cmd/aviary-fakellm")

	fast := []string{"--ttft", "5ms", "--token-every", "1ms", "--output-tokens", "40"}
	plain := startFake(t, fakeBin, dir, "plain", fast...)
	packed := startFake(t, fakeBin, dir, "packed", append(fast, "--compress", "gzip")...)
	slow := startFake(t, fakeBin, dir, "slow", "--ttft", "5ms", "--token-every", "20ms", "--output-tokens", "200")

	gw, admin := e2e.FreeAddr(t), e2e.FreeAddr(t)
	cfg := fmt.Sprintf(`gateway: {listen: %q}
admin: {listen: %q}
storage: {path: %q}
llm: {models: [m]}
services:
  - name: chat
    llm: {api: auto, includeUsage: true}
    versions:
      - {name: plain, endpoints: ["http://%s"]}
      - {name: packed, endpoints: ["http://%s"]}
      - {name: hidden, endpoints: ["http://%s"]}
      - {name: stopped, endpoints: ["http://%s"]}
    routes:
      - {match: {header: {name: X-Aviary-Version, value: packed}}, version: packed}
      - {match: {header: {name: X-Aviary-Version, value: hidden}}, version: hidden}
      - {match: {header: {name: X-Aviary-Version, value: stopped}}, version: stopped}
    release: plain
`, gw, admin, filepath.Join(dir, "aviary.db"), plain, packed, plain, slow)
	config := filepath.Join(dir, "aviary.yaml")
	if err := os.WriteFile(config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "aviary.log")
	av := e2e.StartProcess(t, "aviary", logPath, aviaryBin, "serve", "-c", config, "--log-level", "warn")
	e2e.WaitReady(t, "http://"+admin+"/readyz", logPath)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	node := exec.CommandContext(ctx, "node", "--test", "--test-reporter=spec", "sdk.test.mjs")
	node.Dir = clients
	node.Env = append(os.Environ(), "AVIARY_GW=http://"+gw, "AVIARY_ADMIN=http://"+admin)
	out, err := node.CombinedOutput()
	t.Logf("node --test sdk.test.mjs:\n%s", out)
	if err != nil {
		av.Stop()
		log, _ := os.ReadFile(logPath)
		t.Fatalf("the SDK suite failed: %v\naviary's log:\n%s", err, log)
	}
}

// build builds a command of the module into dir: the test runs what users run.
func build(t *testing.T, root, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
	return out
}

// startFake runs aviary-fakellm and returns its host:port.
func startFake(t *testing.T, bin, dir, name string, args ...string) string {
	t.Helper()
	portFile := filepath.Join(dir, name+".addr")
	e2e.StartProcess(t, "fakellm "+name, filepath.Join(dir, "fakellm-"+name+".log"), bin,
		append([]string{"--listen", "127.0.0.1:0", "--name", name, "--port-file", portFile}, args...)...)
	var addr string
	if polltest.Until(20*time.Second, polltest.Every, func() bool {
		b, err := os.ReadFile(portFile)
		addr = strings.TrimSpace(string(b))
		return err == nil && addr != ""
	}) {
		return addr
	}
	log, _ := os.ReadFile(filepath.Join(dir, "fakellm-"+name+".log"))
	t.Fatalf("fakellm %s wrote no address to %s\n%s", name, portFile, log)
	return ""
}
