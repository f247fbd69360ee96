package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"aviary.dev/aviary/internal/fleet"
	"aviary.dev/aviary/internal/llmstats"
	"aviary.dev/aviary/internal/metrics"
)

// BenchmarkLook measures one look of the reader over real HTTP (loopback) at 1–8 replicas and
// 1–100 rollouts (services): each replica's answer is encoded, sent, decoded and differenced, and
// the sum added into the rollouts' registries. cpu-ms/look is the process's CPU time (user and
// system, from getrusage) per look: the replicas' answers and the controller's reading together,
// as all run in this process; on a loaded machine it is steadier than ns/op, which is wall time.
// BenchmarkAnswer measures a replica's share alone. bytes/look is what crosses the network.
// Each service has two versions with traffic spread over ~60 latency buckets and all sticky-key
// clusters, as a busy rollout has.
func BenchmarkLook(b *testing.B) {
	for _, replicas := range []int{1, 2, 4, 8} {
		for _, rollouts := range []int{1, 10, 100} {
			b.Run(fmt.Sprintf("replicas=%d/rollouts=%d", replicas, rollouts), func(b *testing.B) {
				benchLook(b, replicas, rollouts)
			})
		}
	}
}

func benchLook(b *testing.B, replicas, rollouts int) {
	var sent atomic.Int64
	reps := make([]fleet.Replica, replicas)
	var series []*metrics.Series
	for i := range reps {
		reg := metrics.NewRegistry(metrics.Options{})
		c := fleet.NewCounter(reg, llmstats.New(nil), nil)
		for s := range rollouts {
			for _, v := range []string{"stable", "canary"} {
				sr := reg.Series(fmt.Sprint("svc-", s), v, metrics.Primary)
				series = append(series, sr)
				for k := range 600 {
					d := time.Duration(1+k%60) * time.Millisecond * time.Duration(1+k%7)
					code := 200
					if k%50 == 0 {
						code = 503
					}
					sr.End(metrics.Observation{Code: code, Duration: d, Unit: uint8(1 + k%metrics.NumUnits)})
				}
			}
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := json.Marshal(c.Counts(r.URL.Query()["service"]))
			sent.Add(int64(len(body)))
			_, _ = w.Write(body)
		}))
		b.Cleanup(srv.Close)
		reps[i] = fleet.Replica{Name: srv.URL, URL: srv.URL}
	}
	reader := fleet.New(fleet.Options{Timeout: 10 * time.Second})
	for s := range rollouts {
		reader.SetSink(fmt.Sprint("svc-", s), fleet.Sink{Metrics: metrics.NewRegistry(metrics.Options{}), LLM: llmstats.New(nil)})
	}
	ctx := context.Background()
	reader.Look(ctx, reps) // the baseline
	sent.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := range b.N {
		// New traffic between looks, so that every look has differences to add.
		for _, sr := range series {
			sr.End(metrics.Observation{Code: 200, Duration: time.Duration(1+i%50) * time.Millisecond})
		}
		if cov := reader.Look(ctx, reps); cov.Answered != replicas {
			b.Fatalf("look %d: %s", i, cov)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/look")
	b.ReportMetric(float64(sent.Load())/float64(b.N), "bytes/look")
	b.ReportMetric(float64(sent.Load())/float64(b.N)/float64(replicas*rollouts), "bytes/replica/rollout")
}

// BenchmarkAnswer is a replica's share of a look: its answer for 1–100 rollouts, encoded.
func BenchmarkAnswer(b *testing.B) {
	for _, rollouts := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("rollouts=%d", rollouts), func(b *testing.B) {
			reg := metrics.NewRegistry(metrics.Options{})
			c := fleet.NewCounter(reg, llmstats.New(nil), nil)
			var names []string
			for s := range rollouts {
				names = append(names, fmt.Sprint("svc-", s))
				for _, v := range []string{"stable", "canary"} {
					sr := reg.Series(names[s], v, metrics.Primary)
					for k := range 600 {
						sr.End(metrics.Observation{Code: 200, Duration: time.Duration(1+k%60) * time.Millisecond * time.Duration(1+k%7), Unit: uint8(1 + k%metrics.NumUnits)})
					}
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for range b.N {
				if _, err := json.Marshal(c.Counts(names)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/answer")
		})
	}
}

// cpuTime is the process's user and system CPU time so far, in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
