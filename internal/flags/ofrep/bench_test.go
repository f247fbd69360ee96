package ofrep

// Benchmarks of the OFREP handler as a client sees it, without the network: the request is
// decoded, the flag evaluated and the answer encoded. flagd publishes about 2 µs per resolve of its
// evaluator alone; figures of this package, on the machine they were measured on, are in
// docs/flags.md#speed.
//
//	go test -run '^$' -bench . -benchmem ./internal/flags/ofrep/

import (
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
