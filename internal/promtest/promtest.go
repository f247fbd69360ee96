// Package promtest runs a real Prometheus for tests: a process of the test's own on 127.0.0.1 at a
// free port, scraping one target every second, killed when the test ends (and, on Linux, when the
// test binary dies). scripts/prometheus.sh installs the binary.
package promtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Binary finds the prometheus binary, or skips the test when AVIARY_SKIP_PROMETHEUS=1, or fails it
// saying how to install one.
func Binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/prometheus"); err == nil {
		return "/usr/bin/prometheus"
	}
	if os.Getenv("AVIARY_SKIP_PROMETHEUS") == "1" {
		t.Skip("prometheus is not installed and AVIARY_SKIP_PROMETHEUS=1")
	}
	t.Fatal("prometheus is not on PATH nor at /usr/bin/prometheus: install it with `bash scripts/prometheus.sh`" +
		" (or set AVIARY_SKIP_PROMETHEUS=1 to skip this test)")
	return ""
}

// Start starts Prometheus scraping target (host:port or a URL) every second, waits until it is
// ready, and returns its base URL.
func Start(t testing.TB, target string) string {
	t.Helper()
	return StartAt(t, FreeAddress(t), target)
}

// StartAt is Start listening on listen (a 127.0.0.1 address from FreeAddress), for a test that
// must name Prometheus's address before it starts.
func StartAt(t testing.TB, listen, target string) string {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	yml := fmt.Sprintf("global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n"+
		"  - job_name: aviary-test\n    static_configs: [{targets: [%q]}]\n", strings.TrimPrefix(target, "http://"))
	if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "prometheus.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = dieWithParent()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Registered after t.TempDir, so it runs before the directory is removed.
	t.Cleanup(func() {
		if t.Failed() { // why a scrape failed (a timeout on a loaded machine, a refused port) is here
			if resp, err := http.Get("http://" + listen + "/api/v1/targets?state=active"); err == nil {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<10))
				resp.Body.Close()
				t.Logf("prometheus targets: %s", b)
			}
		}
		_ = cmd.Process.Kill()
		<-exited
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("prometheus log:\n%s", b)
			}
		}
	})
	base := "http://" + listen
	started := time.Now()
	for deadline := started.Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("prometheus exited before it was ready: %v", err)
		default:
		}
		if resp, err := http.Get(base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ours(t, base, filepath.Join(dir, "data"))
				t.Logf("prometheus ready at %s after %s", base, time.Since(started).Round(time.Millisecond))
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus at %s not ready after 15s", base)
		}
	}
}

// FreeAddress is a 127.0.0.1 address with a port free now.
func FreeAddress(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// ours fails the test when the Prometheus answering at base is not the one started with data
// dir: another test's Prometheus on a port that was free a moment before would answer /-/ready
// and scrape a target of its own.
func ours(t testing.TB, base, data string) {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/status/flags")
	if err != nil {
		t.Fatalf("prometheus at %s: read its flags: %v", base, err)
	}
	defer resp.Body.Close()
	var flags struct {
		Data map[string]string `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&flags); err != nil {
		t.Fatalf("prometheus at %s: decode its flags: %v", base, err)
	}
	if got := flags.Data["storage.tsdb.path"]; got != data {
		t.Fatalf("the Prometheus at %s is another one (data %q, not %q): the port was taken between "+
			"choosing it and binding it; run the test again", base, got, data)
	}
}
