package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"aviary.dev/aviary/internal/metrics"
)

// slowBodyFixture is a gateway whose one endpoint reads request bodies and tells when it stopped.
func slowBodyFixture(t *testing.T, gw string) (*fixture, chan error) {
	t.Helper()
	ended := make(chan error, 1)
	up := newUpstream(t, "up", func(w http.ResponseWriter, r *http.Request) {
		_, err := io.Copy(io.Discard, r.Body)
		ended <- err
	})
	f := newFixtureWith(t, Options{Gateway: gatewayOf(t, gw)}, `
services:
  - name: shop
    versions: [{name: v1, endpoints: ["{{up}}"]}]
`, up)
	return f, ended
}

// sendSlowly sends a request's headers and the first bytes of a body of 100, then one byte every
// gap until the connection fails, and returns the response read from it.
func sendSlowly(t *testing.T, addr string, gap time.Duration) *http.Response {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: shop\r\nContent-Length: 100\r\n\r\nab"); err != nil {
		t.Fatal(err)
	}
	if gap > 0 {
		go func() {
			for {
				time.Sleep(gap) // the slow client of the test, not a wait for the gateway
				if _, err := c.Write([]byte{'x'}); err != nil {
					return
				}
			}
		}()
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no response to a slow body: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Status += " " + string(body)
	return resp
}

// A body that stops for longer than bodyIdle is cut: the client gets 408 and its connection closes,
// the connection to the endpoint is closed too, and the cut is counted as idle.
func TestSlowBodyCutWhenIdle(t *testing.T) {
	f, ended := slowBodyFixture(t, "{minBodyRate: -1, timeouts: {bodyIdle: 50ms}}")
	resp := sendSlowly(t, strings.TrimPrefix(f.srv.URL, "http://"), 0)
	if resp.StatusCode != http.StatusRequestTimeout || !resp.Close || !strings.Contains(resp.Status, "bodyIdle") {
		t.Fatalf("got %q, close %v; want 408 naming bodyIdle, with Connection: close", resp.Status, resp.Close)
	}
	if err := <-ended; err == nil {
		t.Error("the endpoint read the whole body of a request that was cut")
	}
	if n := testutil.ToFloat64(f.gw.counters.bodiesCut.WithLabelValues("idle")); n != 1 {
		t.Errorf("bodies cut for idleness: %v, want 1", n)
	}
}

// A body that trickles in, never pausing long, is cut once it falls below minBodyRate after the
// grace, and counted as rate; the endpoint is not blamed.
func TestSlowBodyCutBelowMinimumRate(t *testing.T) {
	f, ended := slowBodyFixture(t, "{minBodyRate: 1000, timeouts: {bodyIdle: 1m, bodyGrace: 1ms}}")
	resp := sendSlowly(t, strings.TrimPrefix(f.srv.URL, "http://"), 20*time.Millisecond)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(resp.Status, "minBodyRate") {
		t.Fatalf("got %q; want 408 naming minBodyRate", resp.Status)
	}
	if err := <-ended; err == nil {
		t.Error("the endpoint read the whole body of a request that was cut")
	}
	if n := testutil.ToFloat64(f.gw.counters.bodiesCut.WithLabelValues("rate")); n != 1 {
		t.Errorf("bodies cut for rate: %v, want 1", n)
	}
	if n := testutil.ToFloat64(f.gw.counters.ejections.WithLabelValues("shop", "v1")); n != 0 {
		t.Errorf("the endpoint was ejected for a slow client")
	}
	sum := f.reg.Series("shop", "v1", metrics.Primary).Window(time.Now().Add(-time.Hour), time.Now().Add(time.Minute))
	if sum.Errors != 0 {
		t.Errorf("a slow client counted as %d errors of the version", sum.Errors)
	}
}

// A body sent at once passes under the same limits.
func TestBodyInTimePasses(t *testing.T) {
	f, ended := slowBodyFixture(t, "{minBodyRate: 1000, timeouts: {bodyIdle: 1m, bodyGrace: 1m}}")
	resp, err := f.srv.Client().Post(f.srv.URL+"/", "text/plain", strings.NewReader(strings.Repeat("x", 1<<20)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-ended; err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("got %d, endpoint read error %v; want 200 and the whole body", resp.StatusCode, err)
	}
}
