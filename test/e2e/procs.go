//go:build e2e

package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"aviary.dev/aviary/internal/polltest"
)

// The helpers of the suites that run real processes (the SDK suites, the web suite): children
// started and ended by their own PIDs, npm installs from lockfiles, free ports.

// Proc is a child process the test started, and the news of its end.
type Proc struct {
	Cmd  *exec.Cmd
	Done chan struct{} // closed once it has ended (its Wait returned)
	stop sync.Once
}

// StartProcess starts a child whose output goes to logPath (appended); it is stopped (SIGINT, then
// SIGKILL after 10 s, by its own PID) when the test ends, or before by Stop.
func StartProcess(t testing.TB, name, logPath, bin string, args ...string) *Proc {
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
	p := &Proc{Cmd: cmd, Done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.Done) }()
	t.Cleanup(p.Stop)
	return p
}

// Stop ends the process gently (SIGINT), or after 10 s with SIGKILL, and waits for its end.
func (p *Proc) Stop() {
	p.stop.Do(func() {
		_ = p.Cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.Done:
		case <-time.After(10 * time.Second):
			_ = p.Cmd.Process.Kill()
			<-p.Done
		}
	})
}

// Kill ends the process with SIGKILL and waits for its end.
func (p *Proc) Kill() {
	_ = p.Cmd.Process.Kill()
	<-p.Done
}

// WaitReady waits until url answers 200, or fails the test with the process's log.
func WaitReady(t testing.TB, url, logPath string) {
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
	t.Fatalf("not ready at %s within 30 s\n%s", url, log)
}

// FreeAddr picks a loopback port that is free now, for a config that must name its ports.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// ModuleRoot is the directory of the module's go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	mod := strings.TrimSpace(string(out))
	if err != nil || mod == "" || mod == os.DevNull {
		t.Fatalf("find the module root with `go env GOMOD`: %v %q", err, mod)
	}
	return filepath.Dir(mod)
}

// npmMu serialises NpmCI: suites run their tests in parallel, and two npm ci in one directory
// remove each other's files (ENOTEMPTY on a fresh clone).
var npmMu sync.Mutex

// NpmCI installs a suite's npm packages from its lockfile, unless node_modules already holds that
// install.
func NpmCI(t testing.TB, dir string) {
	t.Helper()
	npmMu.Lock()
	defer npmMu.Unlock()
	lock, err := os.Stat(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatalf("the suite's lockfile: %v", err)
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

// Upstream is a real HTTP server standing for a version: it answers 200 with its name, or 500 for
// errPercent of its requests (evenly spread); /healthz is always 200. It stops when the test ends.
func Upstream(t testing.TB, name string, errPercent int) string {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		if k := n.Add(1); errPercent > 0 && k%int64(100/errPercent) == 0 {
			w.WriteHeader(http.StatusInternalServerError)
		}
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
