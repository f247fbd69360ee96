package gateway

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/metrics"
)

// An idle service costs a few kilobytes: its windows, histograms and counters are made when traffic
// first needs them (each service once cost 1.4 MB, and 22,793 of them over 24 GB). The figures of
// `aviary serve` itself are BenchmarkServicesStart's, in bench/results/services-memory.md.
func TestIdleServicesCostAFewKilobytes(t *testing.T) {
	const n, limit = 1000, 16 << 10
	var sb strings.Builder
	sb.WriteString("services:\n")
	for i := range n {
		fmt.Fprintf(&sb, "  - {name: s%d, match: {pathPrefix: /s%d/}, traffic: [{version: v1, weight: 90}, {version: v2, weight: 10}],\n", i, i)
		fmt.Fprintf(&sb, "     versions: [{name: v1, endpoints: [\"http://127.0.0.1:1/\"]}, {name: v2, endpoints: [\"http://127.0.0.1:2/\"]}]}\n")
	}
	cfg, err := config.Parse([]byte(sb.String()))
	if err != nil {
		t.Fatal(err)
	}
	before := heapAlloc()
	gw := New(Options{Gateway: defaultGateway(t), Metrics: metrics.NewRegistry(metrics.Options{})})
	defer gw.Close()
	gw.Apply(cfg.Services)
	per := (int64(heapAlloc()) - int64(before)) / n
	runtime.KeepAlive(gw)
	if per > limit {
		t.Fatalf("%d idle services cost %d bytes each, want at most %d", n, per, limit)
	}
	t.Logf("%d bytes per idle service", per)
}

func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
