package server_test

// The tests of this package run Aviary the way the binary does: server.Run on a YAML file, with real
// upstreams (httptest servers) and real HTTP clients, on 127.0.0.1 and ports chosen by the kernel.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"aviary.dev/aviary/internal/polltest"
	"aviary.dev/aviary/internal/server"
)

// upstream starts a real HTTP server standing for one endpoint of a version; it answers every request,
// health checks included, with 200 and its name.
func upstream(t *testing.T, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// deadURL is an address nothing listens on: connecting to it fails at once.
func deadURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}

// shop is the config of one service, "shop", with versions v1 (stable) and v2.
type shop struct {
	v1, v2  []string // endpoint URLs; no v2 means a service of v1 alone
	w1, w2  int      // traffic weights in percent
	gateway string   // more keys of the gateway mapping, e.g. `timeouts: {shutdown: 10s}`
	service string   // more keys of the service, e.g. a healthCheck
	traffic string   // replaces the traffic list, to write an invalid one
}

func (s shop) YAML() string {
	var b strings.Builder
	fmt.Fprintf(&b, "gateway: {listen: \"127.0.0.1:0\"%s}\nadmin: {listen: \"127.0.0.1:0\"}\n", prefixed(", ", s.gateway))
	b.WriteString("services:\n  - name: shop\n    versions:\n")
	fmt.Fprintf(&b, "      - {name: v1, endpoints: [%s]}\n", quoted(s.v1))
	if len(s.v2) > 0 {
		fmt.Fprintf(&b, "      - {name: v2, endpoints: [%s]}\n", quoted(s.v2))
		traffic := fmt.Sprintf("[{version: v1, weight: %d}, {version: v2, weight: %d}]", s.w1, s.w2)
		if s.traffic != "" {
			traffic = s.traffic
		}
		fmt.Fprintf(&b, "    traffic: %s\n", traffic)
	}
	if s.service != "" {
		fmt.Fprintf(&b, "    %s\n", s.service)
	}
	return b.String()
}

func quoted(urls []string) string {
	q := make([]string, len(urls))
	for i, u := range urls {
		q[i] = fmt.Sprintf("%q", u)
	}
	return strings.Join(q, ", ")
}

func prefixed(sep, s string) string {
	if s == "" {
		return ""
	}
	return sep + s
}

// replaceFile writes a file the way editors and config management do: a new file in the same
// directory, renamed over the old one, so that a reader sees either the old file or the new one.
func replaceFile(t *testing.T, path, data string) {
	t.Helper()
	if err := writeAndRename(path, data); err != nil {
		t.Fatal(err)
	}
}

// writeAndRename is replaceFile for goroutines other than the test's, which must not call t.Fatal.
func writeAndRename(path, data string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".aviary-*.tmp")
	if err != nil {
		return err
	}
	_, err = tmp.WriteString(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}

// configFile writes config to a new file and returns its path.
func configFile(t *testing.T, config string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "aviary.yaml")
	replaceFile(t, path, config)
	return path
}

// aviary is one server.Run in a goroutine.
type aviary struct {
	t          *testing.T
	configPath string
	gateway    string // host:port of the gateway listener
	admin      string // host:port of the admin listener
	client     *http.Client
	cancel     context.CancelFunc
	done       chan struct{} // closed when Run has returned; then err is its result
	err        error
}

// start writes config to a file and runs Aviary on it until the test ends. It returns once both
// listeners accept connections.
func start(t *testing.T, config string, watchFile bool) *aviary {
	t.Helper()
	return run(t, configFile(t, config), server.Options{WatchFile: watchFile})
}

// run runs Aviary on the config file at path with the given options until the test ends, and returns
// once it has started. ConfigPath is set here, and Logger unless given; o.Started, if any, is called first.
func run(t *testing.T, path string, o server.Options) *aviary {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a := &aviary{t: t, configPath: path, cancel: cancel, done: make(chan struct{}),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 10 * time.Second}}
	started := make(chan [2]string, 1)
	hook := o.Started
	o.ConfigPath = path
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	o.Started = func(gateway, admin string) {
		if hook != nil {
			hook(gateway, admin)
		}
		started <- [2]string{gateway, admin}
	}
	go func() {
		defer close(a.done)
		a.err = server.Run(ctx, o)
	}()
	t.Cleanup(func() {
		if err := a.stop(); err != nil {
			t.Errorf("Run returned: %v", err)
		}
	})
	select {
	case addrs := <-started:
		a.gateway, a.admin = addrs[0], addrs[1]
	case <-a.done:
		t.Fatalf("Run returned before it started: %v", a.err)
	case <-time.After(time.Minute): // a deadline, not a measure: a loaded machine starts slowly
		t.Fatal("Run did not start within a minute")
	}
	return a
}

// testLogger writes Run's log to the test's output, shown when the test fails or with -v.
func testLogger(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(t.Output(), nil)) }

// stop cancels Run's context and returns what Run returned. It may be called more than once.
func (a *aviary) stop() error {
	a.cancel()
	return a.wait()
}

// wait waits for Run to return (after stop, or on its own) and returns its result.
func (a *aviary) wait() error {
	defer a.client.CloseIdleConnections()
	select {
	case <-a.done:
		return a.err
	case <-time.After(10 * time.Second):
		a.t.Fatal("Run did not return within 10s of its context's end")
		return nil
	}
}

// do sends a request and returns the status and body; a transport error fails the test.
func (a *aviary) do(method, url string) (int, string) {
	a.t.Helper()
	code, body, err := a.try(method, url)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, url, err)
	}
	return code, body
}

func (a *aviary) try(method, url string) (int, string, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, "", err
	}
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json") // as the CLI sends changes
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// get sends GET path to the gateway.
func (a *aviary) get(path string) (int, string) {
	a.t.Helper()
	return a.do("GET", "http://"+a.gateway+path)
}

// adminJSON sends a request to the admin API and decodes its JSON answer into v.
func (a *aviary) adminJSON(method, path string, v any) int {
	a.t.Helper()
	code, body := a.do(method, "http://"+a.admin+path)
	if err := json.Unmarshal([]byte(body), v); err != nil {
		a.t.Fatalf("%s %s answered %d with no JSON: %v\n%s", method, path, code, err, body)
	}
	return code
}

// expectServedBy sends n requests to the gateway and fails the test unless every one gets 200 from
// the upstream named want.
func (a *aviary) expectServedBy(want string, n int) {
	a.t.Helper()
	for i := range n {
		if code, body := a.get("/"); code != http.StatusOK || body != want {
			a.t.Fatalf("request %d of %d: got %d %q, want 200 from %s", i+1, n, code, body, want)
		}
	}
}

// configStatus is GET /api/v1/config as a user reads it.
type configStatus struct {
	File       string        `json:"file"`
	LoadedAt   time.Time     `json:"loadedAt"`
	LastReload *reloadResult `json:"lastReload"`
}

type reloadResult struct {
	Accepted bool     `json:"accepted"`
	Errors   []string `json:"errors"`
	Notes    []string `json:"notes"`
}

func (a *aviary) configStatus() configStatus {
	a.t.Helper()
	var st configStatus
	if code := a.adminJSON("GET", "/api/v1/config", &st); code != http.StatusOK {
		a.t.Fatalf("GET /api/v1/config: %d", code)
	}
	return st
}

// reload asks for a reload through the admin API.
func (a *aviary) reload() (int, reloadResult) {
	a.t.Helper()
	var res reloadResult
	code := a.adminJSON("POST", "/api/v1/config/reload", &res)
	return code, res
}

// sighup sends SIGHUP to the test process. A handler of the test's own stays registered until the
// test ends, so that a signal Run does not catch fails the test's assertions rather than killing the
// test binary (SIGHUP's default action).
func sighup(t *testing.T) {
	t.Helper()
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGHUP)
	t.Cleanup(func() { signal.Stop(guard) })
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatalf("send SIGHUP: %v", err)
	}
}

// eventually polls cond until it holds, and fails the test if it still does not after within.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	polltest.Wait(t, within, what, cond)
}

// refused reports whether a TCP connection to addr is refused, i.e. nothing listens there.
func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// missing returns the wanted substrings that none of lines contains.
func missing(lines []string, want ...string) []string {
	all := strings.Join(lines, "\n")
	var out []string
	for _, w := range want {
		if !strings.Contains(all, w) {
			out = append(out, w)
		}
	}
	return out
}
