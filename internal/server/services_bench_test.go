package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/server"
)

// BenchmarkServicesStart starts Aviary the way `aviary serve` does (config file → core → gateway
// snapshot → metrics registry → listeners) on a config of n idle services, each with two versions of
// one endpoint split 90/10, and reports the heap that stays in use per service (runtime.MemStats
// after a GC, once started, less the heap before) and the time from Run to both listeners open.
//
//	go test -run '^$' -bench BenchmarkServicesStart -benchtime 1x ./internal/server/
func BenchmarkServicesStart(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "aviary.yaml")
			if err := os.WriteFile(path, []byte(servicesConfig(n)), 0o644); err != nil {
				b.Fatal(err)
			}
			var perService, seconds float64
			for range b.N {
				bytes, took := startOnce(b, path)
				perService += float64(bytes) / float64(n)
				seconds += took.Seconds()
			}
			b.ReportMetric(perService/float64(b.N), "heapB/service")
			b.ReportMetric(seconds/float64(b.N), "s/start")
		})
	}
}

// startOnce runs Aviary on the config at path until it has started, and returns the heap it added
// and how long the start took.
func startOnce(b *testing.B, path string) (heap int64, took time.Duration) {
	b.Helper()
	_ = os.Remove(filepath.Join(filepath.Dir(path), "aviary.db"))
	before := heapInUse()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	done := make(chan error, 1)
	begin := time.Now()
	go func() {
		done <- server.Run(ctx, server.Options{ConfigPath: path, Logger: slog.New(slog.DiscardHandler),
			Started: func(string, string) { close(started) }})
	}()
	select {
	case <-started:
	case err := <-done:
		b.Fatalf("Run returned before it started: %v", err)
	}
	took = time.Since(begin)
	heap = int64(heapInUse()) - int64(before)

	cancel()
	if err := <-done; err != nil {
		b.Fatalf("Run: %v", err)
	}
	return heap, took
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// servicesConfig is a config of n services, each on its own path, with versions v1 and v2.
func servicesConfig(n int) string {
	var sb strings.Builder
	sb.WriteString("gateway: {listen: \"127.0.0.1:0\"}\nadmin: {listen: \"127.0.0.1:0\"}\nservices:\n")
	for i := range n {
		fmt.Fprintf(&sb, "  - name: s%d\n    match: {pathPrefix: /s%d/}\n    versions:\n", i, i)
		fmt.Fprintf(&sb, "      - {name: v1, endpoints: [\"http://127.0.0.1:%d\"]}\n", 20000+i%10000)
		fmt.Fprintf(&sb, "      - {name: v2, endpoints: [\"http://127.0.0.1:%d\"]}\n", 30000+i%10000)
		sb.WriteString("    traffic: [{version: v1, weight: 90}, {version: v2, weight: 10}]\n")
	}
	return sb.String()
}
