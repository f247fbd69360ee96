package server_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"aviary.dev/aviary/internal/server"
)

// Stopping drains: a request in flight when the context ends gets its whole answer, new connections
// are refused meanwhile, and Run returns nil only once the request is done.
func TestShutdownDrainsTheRequestInFlight(t *testing.T) {
	answer := strings.Repeat("a slow but complete answer\n", 4096) // ~110 KB: many writes, not one
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		arrived <- struct{}{}
		<-release
		_, _ = w.Write([]byte(answer))
	}))
	t.Cleanup(slow.Close)
	var releaseOnce sync.Once
	letGo := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(letGo) // runs before slow.Close, which waits for the handler

	a := start(t, shop{v1: []string{slow.URL}, gateway: "timeouts: {shutdown: 10s}"}.YAML(), false)
	type result struct {
		code int
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		code, body, err := a.try("GET", "http://"+a.gateway+"/slow")
		got <- result{code, body, err}
	}()
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("the request did not reach the upstream")
	}

	a.cancel()
	eventually(t, 5*time.Second, "the gateway to refuse new connections", func() bool { return refused(a.gateway) })
	if code, _, err := a.try("GET", "http://"+a.admin+"/readyz"); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining: %d (%v), want 503 so that load balancers stop sending", code, err)
	}
	select {
	case <-a.done:
		t.Fatalf("Run returned (%v) with a request in flight", a.err)
	case r := <-got:
		t.Fatalf("the client got %d (error %v) before the upstream answered", r.code, r.err)
	case <-time.After(200 * time.Millisecond): // still draining, as it should
	}

	letGo()
	select {
	case r := <-got:
		if r.err != nil || r.code != http.StatusOK || r.body != answer {
			t.Errorf("the request in flight got %d, %d bytes, error %v; want 200 and all %d bytes",
				r.code, len(r.body), r.err, len(answer))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the request in flight got no answer")
	}
	if err := a.wait(); err != nil {
		t.Errorf("Run returned %v, want nil after a clean drain", err)
	}
}

// An invalid config stops Aviary at start: Run returns an error that names every bad field by its
// path, Started is never called, and nothing listens.
func TestStartWithInvalidConfigFailsAndListensNowhere(t *testing.T) {
	gatewayAddr, adminAddr := freeAddr(t), freeAddr(t)
	path := configFile(t, `
gateway: {listen: "`+gatewayAddr+`"}
admin: {listen: "`+adminAddr+`"}
services:
  - name: shop
    versions: [{name: v1, endpoints: ["http://127.0.0.1:1"]}, {name: v2, endpoints: ["http://127.0.0.1:1"]}]
    traffic: [{version: v1, weight: 0}, {version: v2, weight: 140}]
`)
	err, started := runToEnd(t, path)
	if err == nil {
		t.Fatal("Run accepted an invalid config")
	}
	if started {
		t.Error("Run called Started with an invalid config")
	}
	if m := missing([]string{err.Error()}, path, "services[0].traffic[1].weight: 140 is not in 0..100",
		"services[0].traffic: weights add up to 140"); len(m) > 0 {
		t.Errorf("Run's error lacks %q:\n%v", m, err)
	}
	for _, addr := range []string{gatewayAddr, adminAddr} {
		if !refused(addr) {
			t.Errorf("something listens on %s after a failed start", addr)
		}
	}
}

// A certificate that cannot be used is a failed start too: Run returns an error that names the file,
// and neither listener is left behind.
func TestStartWithUnusableCertificateFailsAndListensNowhere(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for _, f := range []string{cert, key} {
		if err := os.WriteFile(f, []byte("not PEM\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	gatewayAddr, adminAddr := freeAddr(t), freeAddr(t)
	path := configFile(t, `
gateway: {listen: "`+gatewayAddr+`", tls: {certFile: "`+cert+`", keyFile: "`+key+`"}}
admin: {listen: "`+adminAddr+`"}
`)
	err, _ := runToEnd(t, path)
	if err == nil || !strings.Contains(err.Error(), cert) {
		t.Fatalf("Run returned %v, want an error naming %s", err, cert)
	}
	for _, addr := range []string{gatewayAddr, adminAddr} {
		if !refused(addr) {
			t.Errorf("something listens on %s after a failed start", addr)
		}
	}
}

// runToEnd runs Aviary, for configs that must not start, and returns what Run returns and whether it
// called Started. A Run that serves after all is stopped after 5 s, and its nil result fails the test.
func runToEnd(t *testing.T, path string) (err error, started bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = server.Run(ctx, server.Options{ConfigPath: path, Logger: testLogger(t),
		Started: func(string, string) { started = true }})
	return err, started
}

// freeAddr returns 127.0.0.1 and a port the kernel just gave out and took back: for tests that must
// know the address before Run starts, to check afterwards that nothing listens there.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
