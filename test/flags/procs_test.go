//go:build e2e

// Package flags_test runs real OpenFeature SDKs against the real `aviary serve`: the Node server
// SDK with @openfeature/ofrep-provider (sdk_test.go, server.test.mjs) and the web SDK with
// @openfeature/ofrep-web-provider in headless Chromium (web_test.go, web.mjs), all from npm
// (test/flags/sdk, installed here with npm ci from the lockfile).
package flags_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	evalKey    = "eval-key-for-the-sdk-tests"
	adminToken = "admin-token-for-the-sdk-tests"
)

// served is one running aviary with the flags of test/flags/flags.json.
type served struct {
	gw, admin string // base URLs
	dir       string
	bin       string // the aviary binary
	proc      *proc  // the running aviary
}

// proc is a child process and the news of its end.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once it has ended (its Wait returned)
}

// kill ends the process with SIGKILL, by its own PID, and waits for its end.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
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
	root := moduleRoot(t)
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
	gw, admin := freeAddr(t), freeAddr(t)
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
	s.proc = startProcess(t, "aviary", logPath, s.bin, "serve", "-c", filepath.Join(s.dir, "aviary.yaml"), "--log-level", "warn")
	waitReady(t, s.admin+"/readyz", logPath)
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

// npmMu serialises npmCI: the suites run in parallel, and two npm ci in one directory remove each
// other's files (ENOTEMPTY on a fresh clone).
var npmMu sync.Mutex

// npmCI installs the SDKs from the lockfile unless they are installed already.
func npmCI(t *testing.T, dir string) {
	t.Helper()
	npmMu.Lock()
	defer npmMu.Unlock()
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

// startProcess starts a child whose output goes to logPath (appended); it is ended by its own PID
// when the test ends.
func startProcess(t *testing.T, name, logPath, bin string, args ...string) *proc {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
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
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return &proc{cmd: cmd, done: done}
}

func waitReady(t *testing.T, url, logPath string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
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
