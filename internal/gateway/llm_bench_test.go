package gateway

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/metrics"
)

// sseUpstream streams chunks OpenAI-chat-style as fast as it can; each content chunk carries the
// time it was written (unix ns), so the client can tell how long the gateway held it.
func sseUpstream(chunks int) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n")
		fl.Flush()
		for range chunks {
			fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"t=%d \"}}]}\n\n", time.Now().UnixNano())
			fl.Flush()
		}
		fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":200,\"total_tokens\":210}}\n\ndata: [DONE]\n\n")
	}))
}

type discardSink struct{}

func (discardSink) Served(LLMRecord) {}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLLMStream proxies 200-chunk streams with and without the LLM tee, and reports the
// process CPU per request (gateway, upstream and client share the process, so the difference is
// the tee's) and how long the gateway held the first content chunk (p50/p99 over requests).
//
// Run: go test -run '^$' -bench LLMStream -benchtime 2000x ./internal/gateway
func BenchmarkLLMStream(b *testing.B) {
	for _, tee := range []bool{false, true} {
		name := "plain"
		if tee {
			name = "tee"
		}
		b.Run(name, func(b *testing.B) {
			up := sseUpstream(200)
			defer up.Close()
			llmLine := ""
			if tee {
				llmLine = "\n    llm: {api: openai}"
			}
			cfg, err := config.Parse([]byte("services:\n  - name: chat" + llmLine + "\n    versions: [{name: v1, endpoints: [\"" + up.URL + "\"]}]\n"))
			if err != nil {
				b.Fatal(err)
			}
			gw := New(Options{Gateway: defaultGateway(b), Metrics: metrics.NewRegistry(metrics.Options{}), LLM: discardSink{}})
			defer gw.Close()
			gw.Apply(cfg.Services)
			front := httptest.NewServer(gw)
			defer front.Close()
			client := &http.Client{}
			body := `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`
			var held []time.Duration
			cpu0 := cpuTime()
			for b.Loop() {
				resp, err := client.Post(front.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				sc := bufio.NewScanner(resp.Body)
				first := true
				for sc.Scan() {
					line := sc.Text()
					if i := strings.Index(line, `"content":"t=`); i >= 0 && first {
						rest := line[i+len(`"content":"t=`):]
						if ns, err := strconv.ParseInt(rest[:strings.IndexByte(rest, ' ')], 10, 64); err == nil {
							held = append(held, time.Since(time.Unix(0, ns)))
						}
						first = false
					}
				}
				resp.Body.Close()
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "cpu-µs/req")
			slices.Sort(held)
			if len(held) > 0 {
				b.ReportMetric(float64(held[len(held)/2])/1e3, "first-chunk-p50-µs")
				b.ReportMetric(float64(held[len(held)*99/100])/1e3, "first-chunk-p99-µs")
			}
		})
	}
}
