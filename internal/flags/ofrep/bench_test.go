package ofrep

// Benchmarks of the OFREP handler as a client sees it, without the network: the request is
// decoded, the flag evaluated and the answer encoded; BenchmarkHTTPEvaluate adds a real loopback
// connection. flagd publishes about 2 µs per resolve of its evaluator alone; the figures measured
// here, with the machine's load, are in docs/flags.md#speed.
//
//	go test -run '^$' -bench . -benchmem -cpu 1 ./internal/flags/ofrep/

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// benchServe sends the same request to h b.N times, from GOMAXPROCS goroutines.
func benchServe(b *testing.B, h http.Handler, path, body string, header map[string]string, want int) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("POST", path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			for k, v := range header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != want {
				b.Fatalf("%s: %d, want %d", path, rec.Code, want)
			}
		}
	})
}

// BenchmarkEvaluateStatic is one flag without targeting.
func BenchmarkEvaluateStatic(b *testing.B) {
	h, _ := newHandler(b, Options{Auth: Auth{Keys: []string{"bench-key-0123456789"}}})
	benchServe(b, h, "/ofrep/v1/evaluate/flags/bool-flag", `{"context": {"targetingKey": "user-1"}}`,
		map[string]string{"X-API-Key": "bench-key-0123456789"}, 200)
}

// BenchmarkEvaluateTargeting is one flag with a JsonLogic rule on the context.
func BenchmarkEvaluateTargeting(b *testing.B) {
	h, _ := newHandler(b, Options{})
	benchServe(b, h, "/ofrep/v1/evaluate/flags/staff-only", `{"context": {"targetingKey": "user-1", "email": "ann@example.com"}}`, nil, 200)
}

// BenchmarkBulk evaluates the six test flags in one request, as a web SDK does at start.
func BenchmarkBulk(b *testing.B) {
	h, _ := newHandler(b, Options{})
	benchServe(b, h, "/ofrep/v1/evaluate/flags", `{"context": {"targetingKey": "user-1", "email": "ann@example.com"}}`, nil, 200)
}

// BenchmarkBulkNotModified is a polling web SDK's request while nothing changes: a 304.
func BenchmarkBulkNotModified(b *testing.B) {
	h, _ := newHandler(b, Options{})
	ctx := `{"context": {"targetingKey": "user-1", "email": "ann@example.com"}}`
	_, hdr, _ := call(b, h, "POST", "/ofrep/v1/evaluate/flags", ctx, nil)
	benchServe(b, h, "/ofrep/v1/evaluate/flags", ctx, map[string]string{"If-None-Match": hdr.Get("ETag")}, 304)
}

// BenchmarkHTTPEvaluate is one flag with targeting over a real loopback connection (keep-alive,
// GOMAXPROCS clients): requests per second as an SDK sees them, network stack included.
func BenchmarkHTTPEvaluate(b *testing.B) {
	h, _ := newHandler(b, Options{})
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	url := srv.URL + "/ofrep/v1/evaluate/flags/staff-only"
	const body = `{"context": {"targetingKey": "user-1", "email": "ann@example.com"}}`
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(url, "application/json", strings.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
