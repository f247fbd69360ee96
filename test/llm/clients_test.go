//go:build e2e

package llm_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/polltest"
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
	root := moduleRoot(t)
	clients := filepath.Join(root, "test", "llm", "clients")
	npmCI(t, clients)
	dir := t.TempDir()
	aviaryBin, fakeBin := build(t, root, dir, "./cmd/aviary"), build(t, root, dir, "./cmd/aviary-fakellm")

	fast := []string{"--ttft", "5ms", "--token-every", "1ms", "--output-tokens", "40"}
	plain := startFake(t, fakeBin, dir, "plain", fast...)
	packed := startFake(t, fakeBin, dir, "packed", append(fast, "--compress", "gzip")...)
	slow := startFake(t, fakeBin, dir, "slow", "--ttft", "5ms", "--token-every", "20ms", "--output-tokens", "200")

	gw, admin := freeAddr(t), freeAddr(t)
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
	stop := startProcess(t, "aviary", logPath, aviaryBin, "serve", "-c", config, "--log-level", "warn")
	waitReady(t, "http://"+admin+"/readyz", logPath)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	node := exec.CommandContext(ctx, "node", "--test", "--test-reporter=spec", "sdk.test.mjs")
	node.Dir = clients
	node.Env = append(os.Environ(), "AVIARY_GW=http://"+gw, "AVIARY_ADMIN=http://"+admin)
	out, err := node.CombinedOutput()
	t.Logf("node --test sdk.test.mjs:\n%s", out)
	if err != nil {
		stop()
		log, _ := os.ReadFile(logPath)
		t.Fatalf("the SDK suite failed: %v\naviary's log:\n%s", err, log)
	}
}

// npmCI installs the SDKs from the lockfile, unless node_modules already holds that install.
func npmCI(t *testing.T, dir string) {
	t.Helper()
	lock, err := os.Stat(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatalf("the SDK suite's lockfile: %v", err)
	}
	if inst, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err == nil && inst.ModTime().After(lock.ModTime()) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	mod := strings.TrimSpace(string(out))
	if err != nil || mod == "" || mod == os.DevNull {
		t.Fatalf("find the module root with `go env GOMOD`: %v %q", err, mod)
	}
	return filepath.Dir(mod)
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

// startProcess starts a child whose output goes to logPath; the returned stop (also run when the
// test ends) ends it by its own PID and waits for it.
func startProcess(t *testing.T, name, logPath, bin string, args ...string) (stop func()) {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

// startFake runs aviary-fakellm and returns its host:port.
func startFake(t *testing.T, bin, dir, name string, args ...string) string {
	t.Helper()
	portFile := filepath.Join(dir, name+".addr")
	startProcess(t, "fakellm "+name, filepath.Join(dir, "fakellm-"+name+".log"), bin,
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

func waitReady(t *testing.T, url, logPath string) {
	t.Helper()
	if polltest.Until(30*time.Second, 20*time.Millisecond, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		return
	}
	log, _ := os.ReadFile(logPath)
	t.Fatalf("aviary was not ready at %s within 30 s\n%s", url, log)
}

// freeAddr picks a loopback port that is free now, for a config that must name its ports.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
