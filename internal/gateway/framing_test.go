package gateway

import (
	"slices"
	"strings"
	"testing"
)

// The tracker tells, request by request, which ones carried both Content-Length and
// Transfer-Encoding, however the bytes are cut into reads; where it cannot follow, every later
// request closes its connection.
func TestFramingFlagsConflictingRequests(t *testing.T) {
	cases := []struct {
		name string
		raw  string
		want []bool // closeAfter for each request, in order
	}{
		{"content-length then chunked", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
			"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" +
			"GET /c HTTP/1.1\r\nHost: x\r\n\r\n", []bool{false, false, false}},
		{"both headers", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"3;ext=1\r\nabc\r\n0\r\nTrailer: yes\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n", []bool{true, false}},
		{"both, in the other order and case", "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\nCONTENT-LENGTH: 0\r\n\r\n0\r\n\r\n", []bool{true}},
		{"HTTP/1.0 reads Content-Length and still closes", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\nhi" +
			"GET / HTTP/1.0\r\n\r\n", []bool{true, false}},
		{"a body that looks like headers", "POST / HTTP/1.1\r\nContent-Length: 46\r\n\r\nGET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"GET / HTTP/1.1\r\n\r\n", []bool{false, false}},
		{"empty lines between requests", "POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx\r\n\r\nGET / HTTP/1.1\r\n\r\n", []bool{false, false}},
		{"bare LF lines", "GET / HTTP/1.1\nContent-Length: 1\nTransfer-Encoding: chunked\n\n0\r\n\r\n", []bool{true}},
		{"a folded Content-Length gives up", "POST / HTTP/1.1\r\nContent-Length:\r\n 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n", []bool{true, true}},
		{"a long Content-Length value gives up", "POST / HTTP/1.1\r\nContent-Length: " + strings.Repeat(" ", 80) + "3\r\n\r\nabc" +
			"GET / HTTP/1.1\r\n\r\n", []bool{true, true}},
		{"a long URL is fine", "GET /" + strings.Repeat("a", 500) + " HTTP/1.1\r\nX-Long: " + strings.Repeat("b", 500) + "\r\n\r\n" +
			"GET / HTTP/1.1\r\n\r\n", []bool{false, false}},
		{"after an upgrade nothing is vouched for", "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello", []bool{false, true}},
		{"OPTIONS * is answered by net/http, not the handler", "OPTIONS * HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n", []bool{false}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, size := range []int{1, 2, 7, len(c.raw)} {
				f := &framing{}
				for b := []byte(c.raw); len(b) > 0; {
					k := min(size, len(b))
					f.observe(b[:k])
					b = b[k:]
				}
				var got []bool
				for range c.want {
					got = append(got, f.next())
				}
				if !slices.Equal(got, c.want) {
					t.Fatalf("reads of %d bytes: close after each request = %v, want %v", size, got, c.want)
				}
			}
		})
	}
}

// Pipelined requests beyond what the tracker keeps make it give up rather than grow.
func TestFramingBoundsPipelinedRequests(t *testing.T) {
	f := &framing{}
	f.observe([]byte(strings.Repeat("GET / HTTP/1.1\r\n\r\n", maxPending+1)))
	if len(f.pending) != 0 || !f.lost {
		t.Fatalf("pending %d, lost %v after %d pipelined requests; want 0 and true", len(f.pending), f.lost, maxPending+1)
	}
	if !f.next() {
		t.Error("after giving up, a request does not close its connection")
	}
}
