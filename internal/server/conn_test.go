package server_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rawConn is a client connection to the gateway that writes bytes as given and reads responses.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (rc *rawConn) send(raw string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, raw); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// response reads one response whole.
func (rc *rawConn) response() *http.Response {
	rc.t.Helper()
	resp, err := http.ReadResponse(rc.r, nil)
	if err != nil {
		rc.t.Fatalf("read response: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// answered reads the next answer and fails unless it is a 200 that keeps the connection, or, with
// closes, one that closes it.
func (rc *rawConn) answered(what string, closes bool) {
	rc.t.Helper()
	want := "200, kept open"
	if closes {
		want = "200 with Connection: close"
	}
	if resp := rc.response(); resp.StatusCode != http.StatusOK || resp.Close != closes {
		rc.t.Fatalf("%s: %d, close %v; want %s", what, resp.StatusCode, resp.Close, want)
	}
}

// closedByServer reports whether the server closed the connection (a read ends with EOF).
func (rc *rawConn) closedByServer() bool {
	_, err := rc.r.ReadByte()
	return errors.Is(err, io.EOF)
}

// A request with both Content-Length and Transfer-Encoding is answered (by its chunks, as RFC 9112
// allows) and its connection is closed after the answer (as RFC 9112 §6.1 requires); a request with
// one of them keeps its connection.
func TestRequestWithBothLengthAndChunksClosesItsConnection(t *testing.T) {
	a := start(t, shop{v1: []string{upstream(t, "v1")}}.YAML(), false)

	rc := dialRaw(t, a.gateway)
	rc.send("POST / HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	rc.answered("chunked request", false)
	rc.send("POST / HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	rc.answered("request with both", true)
	if !rc.closedByServer() {
		t.Fatal("the connection stayed open after a request with both Content-Length and Transfer-Encoding")
	}

	// Pipelined: the first request keeps the connection, the second (with both) closes it, and the
	// bytes smuggled after it are never read as a request.
	rc = dialRaw(t, a.gateway)
	rc.send("GET / HTTP/1.1\r\nHost: shop\r\n\r\n" +
		"POST / HTTP/1.1\r\nHost: shop\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
		"GET /smuggled HTTP/1.1\r\nHost: shop\r\n\r\n")
	rc.answered("first pipelined request", false)
	if resp := rc.response(); !resp.Close {
		t.Fatalf("second pipelined request (both headers): %d without Connection: close", resp.StatusCode)
	}
	if !rc.closedByServer() {
		t.Fatal("the request after one with both headers was served")
	}
}

// Over TLS the gateway cannot see the raw headers of an HTTP/1.1 request, so every request with a
// chunked body closes its connection after its answer; others keep it.
func TestTLSChunkedRequestClosesItsConnection(t *testing.T) {
	certFile, keyFile, roots := selfSignedCert(t, "127.0.0.1")
	a := start(t, shop{v1: []string{upstream(t, "v1")},
		gateway: `tls: {certFile: "` + certFile + `", keyFile: "` + keyFile + `"}`}.YAML(), false)
	c, err := tls.Dial("tcp", a.gateway, &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	rc := &rawConn{t: t, c: c, r: bufio.NewReader(c)}
	rc.send("POST / HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\n\r\nhello")
	rc.answered("request with a length", false)
	rc.send("POST / HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	rc.answered("chunked request over TLS", true)
	if !rc.closedByServer() {
		t.Fatal("the TLS connection stayed open after a chunked request")
	}
}

// metric reads one sample of the admin listener's /metrics ("name" or "name{labels}"); -1 if absent.
func (a *aviary) metric(sample string) float64 {
	a.t.Helper()
	_, body := a.do("GET", "http://"+a.admin+"/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				a.t.Fatalf("metric %s: %q is not a number", sample, v)
			}
			return f
		}
	}
	return -1
}

// With gateway.maxConnections open, the gateway accepts no more (counting that it waited) until one
// closes; then the waiting client is served.
func TestConnectionCap(t *testing.T) {
	a := start(t, shop{v1: []string{upstream(t, "v1")}, gateway: "maxConnections: 2"}.YAML(), false)
	first, second := dialRaw(t, a.gateway), dialRaw(t, a.gateway)
	for _, rc := range []*rawConn{first, second} {
		rc.send("GET / HTTP/1.1\r\nHost: shop\r\n\r\n")
		if resp := rc.response(); resp.StatusCode != http.StatusOK {
			t.Fatalf("one of the first two connections: %d", resp.StatusCode)
		}
	}
	third := dialRaw(t, a.gateway) // the kernel takes it; the gateway does not accept it yet
	third.send("GET / HTTP/1.1\r\nHost: shop\r\n\r\n")
	eventually(t, 10*time.Second, "the gateway to count a wait for a connection slot", func() bool {
		return a.metric("aviary_client_connection_waits_total") >= 1
	})
	if n := a.metric("aviary_client_connections"); n != 2 {
		t.Errorf("aviary_client_connections = %v at the cap of 2", n)
	}
	first.c.Close()
	if resp := third.response(); resp.StatusCode != http.StatusOK {
		t.Fatalf("the waiting connection, once a slot was free: %d", resp.StatusCode)
	}
}
