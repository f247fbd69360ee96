//go:build e2e

package crash_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// moduleRoot is the directory of go.mod, so that the test builds the binaries wherever it runs.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("find the module root with `go env GOMOD`: %v", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		t.Fatal("find the module root: `go env GOMOD` names no go.mod; run the test inside the aviary module")
	}
	return filepath.Dir(mod)
}

// buildBinaries builds the real aviary and aviary-upstream into dir: the test runs what users run.
func buildBinaries(t *testing.T, dir string) (aviary, upstream string) {
	t.Helper()
	root := moduleRoot(t)
	build := func(pkg string) string {
		out := filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = root
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, msg)
		}
		return out
	}
	return build("./cmd/aviary"), build("./cmd/aviary-upstream")
}

// proc is a child process of the test. It is only ever signalled by its own PID, and t.Cleanup
// stops it however the test ends.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string        // its stdout and stderr
	done chan struct{} // closed once it has exited and been reaped
}

func startProc(t *testing.T, name, logPath, bin string, args ...string) *proc {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("open the log of %s: %v", name, err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and returns once the process is gone: its file lock and ports are free then.
func (p *proc) kill() error {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) is still there 10s after SIGKILL", p.name, p.cmd.Process.Pid)
	}
}

// stop asks the process to exit (SIGTERM) and kills it if it has not within a few seconds.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.kill()
	}
}

// logTail is the end of the process's log, for failure messages.
func (p *proc) logTail() string {
	data, err := os.ReadFile(p.log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(data) > 3000 {
		data = data[len(data)-3000:]
	}
	return fmt.Sprintf("--- last lines of %s (%s) ---\n%s", p.name, p.log, data)
}

// startUpstream starts one aviary-upstream on a free loopback port and returns its address.
func startUpstream(t *testing.T, bin, dir, name string) string {
	t.Helper()
	portFile := filepath.Join(dir, name+".addr")
	p := startProc(t, "upstream "+name, filepath.Join(dir, "upstream-"+name+".log"), bin,
		"--listen", "127.0.0.1:0", "--name", name, "--port-file", portFile)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if data, err := os.ReadFile(portFile); err == nil {
			return strings.TrimSpace(string(data))
		}
		if p.exited() {
			break
		}
	}
	t.Fatalf("upstream %s did not write its address to %s\n%s", name, portFile, p.logTail())
	return ""
}

// freeAddr picks a loopback port that is free now. Aviary must come back on the same ports after
// every kill, so the test chooses them once rather than letting aviary pick port 0.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
