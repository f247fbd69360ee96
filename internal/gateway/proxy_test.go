package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"aviary.dev/aviary/internal/metrics"
	"aviary.dev/aviary/internal/polltest"
)

const splitYAML = `
services:
  - name: shop
    versions:
      - {name: v1, endpoints: ["{{v1}}"]}
      - {name: v2, endpoints: ["{{v2}}"]}
    traffic: [{version: v1, weight: 90}, {version: v2, weight: 10}]
    routes:
      - {match: {header: {name: X-Canary, value: always}}, version: v2}
      - {match: {cookie: {name: beta, value: "1"}}, version: v2}
      - {match: {query: {name: pin, value: stable}}, version: v1}
`

// Weights hold at the upstreams, and every request is measured against the version that served it.
func TestProxySplitsByWeightAndMeasures(t *testing.T) {
	v1, v2 := newUpstream(t, "v1", nil), newUpstream(t, "v2", nil)
	f := newFixture(t, splitYAML, v1, v2)
	for i := 0; i < 1000; i++ {
		if code, _ := f.get(t, "/"); code != http.StatusOK {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	if n1, n2 := v1.hits.Load(), v2.hits.Load(); n2 < 97 || n2 > 103 || n1+n2 != 1000 {
		t.Errorf("split at the upstreams: v1 %d, v2 %d; want 900/100 ± 3", n1, n2)
	}
	since := time.Now().Add(-time.Minute)
	s1 := f.reg.Window("shop", "v1", metrics.Primary, since, time.Now().Add(time.Minute))
	s2 := f.reg.Window("shop", "v2", metrics.Primary, since, time.Now().Add(time.Minute))
	if s1.Requests != uint64(v1.hits.Load()) || s2.Requests != uint64(v2.hits.Load()) {
		t.Errorf("measured %d/%d requests, upstreams saw %d/%d", s1.Requests, s2.Requests, v1.hits.Load(), v2.hits.Load())
	}
	if s1.Classes[2] != s1.Requests || s1.Errors != 0 || s1.BytesOut != 2*s1.Requests || s1.Latency.Count() != s1.Requests {
		t.Errorf("v1 summary wrong: %+v", s1)
	}
}

func TestProxyRoutesBeforeWeights(t *testing.T) {
	v1, v2 := newUpstream(t, "v1", nil), newUpstream(t, "v2", nil)
	f := newFixture(t, splitYAML, v1, v2)
	for i := 0; i < 20; i++ {
		if _, up := f.get(t, "/", "X-Canary: always"); up != "v2" {
			t.Fatalf("header route went to %q", up)
		}
		if _, up := f.get(t, "/", "Cookie: a=b; beta=1"); up != "v2" {
			t.Fatalf("cookie route went to %q", up)
		}
		if _, up := f.get(t, "/?pin=stable", "X-Canary: never"); up != "v1" {
			t.Fatalf("query route went to %q", up)
		}
	}
}

func TestProxyStickyHeader(t *testing.T) {
	v1, v2 := newUpstream(t, "v1", nil), newUpstream(t, "v2", nil)
	f := newFixture(t, strings.Replace(splitYAML, "    routes:", "    stickiness: {header: X-User-Id}\n    routes:", 1), v1, v2)
	seen := map[string]bool{}
	for u := 0; u < 40; u++ {
		_, first := f.get(t, "/", fmt.Sprintf("X-User-Id: user-%d", u))
		seen[first] = true
		for i := 0; i < 5; i++ {
			if _, up := f.get(t, "/", fmt.Sprintf("X-User-Id: user-%d", u)); up != first {
				t.Fatalf("user-%d moved from %s to %s", u, first, up)
			}
		}
	}
	if !seen["v1"] {
		t.Error("no user went to v1")
	}
}

func TestProxyNoServiceIs404(t *testing.T) {
	v1 := newUpstream(t, "v1", nil)
	f := newFixture(t, `
services:
  - name: api
    match: {pathPrefix: /api, hosts: [shop.example]}
    versions: [{name: v1, endpoints: ["{{v1}}"]}]
`, v1)
	if code, _ := f.get(t, "/api/x"); code != http.StatusNotFound {
		t.Errorf("wrong host: %d", code)
	}
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/api/x", nil)
	req.Host = "SHOP.example:8080"
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("matching host: %v %v", err, resp)
	}
	resp.Body.Close()
	if code, _ := f.get(t, "/other"); code != http.StatusNotFound {
		t.Errorf("wrong path: %d", code)
	}
}

// A streamed response reaches the client chunk by chunk: the first event arrives while the upstream
// is still holding the stream open.
func TestProxyStreamsResponse(t *testing.T) {
	release := make(chan struct{})
	up := newUpstream(t, "v1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-release
		fmt.Fprint(w, "data: second\n\n")
	})
	f := newFixture(t, `services: [{name: s, versions: [{name: v1, endpoints: ["{{v1}}"]}]}]`, up)
	resp, err := http.Get(f.srv.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first chunk: %q %v", line, err)
	}
	close(release) // only now may the upstream finish
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "data: second") {
		t.Fatalf("rest of stream: %q", rest)
	}
}

// Full duplex: the upstream answers while the client is still streaming its request body, chunk for
// chunk (an LLM request and its streamed answer). Go's HTTP/1 server would close the request body at
// the first response write unless the gateway enables full duplex; this test fails then.
func TestProxyFullDuplexStreamingPost(t *testing.T) {
	up := newUpstream(t, "v1", func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		br := bufio.NewReader(r.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintf(w, "echo %s", line)
			w.(http.Flusher).Flush()
		}
	})
	f := newFixture(t, `services: [{name: s, versions: [{name: v1, endpoints: ["{{v1}}"]}]}]`, up)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/chat", pr)
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		done <- result{resp, err}
	}()
	go fmt.Fprint(pw, "chunk 0\n")
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	defer res.resp.Body.Close()
	rounds := make(chan error, 1)
	go func() {
		br := bufio.NewReader(res.resp.Body)
		for i := 0; i < 5; i++ {
			line, err := br.ReadString('\n')
			if want := fmt.Sprintf("echo chunk %d\n", i); err != nil || line != want {
				rounds <- fmt.Errorf("round %d: got %q (%v), want %q", i, line, err, want)
				return
			}
			fmt.Fprintf(pw, "chunk %d\n", i+1)
		}
		rounds <- nil
	}()
	select {
	case err := <-rounds:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		pw.CloseWithError(io.ErrUnexpectedEOF)
		t.Fatal("the request body stopped flowing once the response started: full duplex is broken")
	}
	pw.Close()
}

// A request chosen for mirroring is copied, body and all, to the mirror version; the client gets the
// primary's answer without waiting for the mirror; the mirror's answer is measured apart, and a
// different status is counted.
func TestProxyMirror(t *testing.T) {
	mirrorBlock := make(chan struct{})
	mirrored := make(chan string, 10)
	v1 := newUpstream(t, "v1", nil)
	v2 := newUpstream(t, "v2", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		<-mirrorBlock
		mirrored <- r.Method + " " + r.URL.Path + " " + string(b) + " " + r.Header.Get("X-Aviary-Mirror")
		w.WriteHeader(http.StatusInternalServerError)
	})
	f := newFixture(t, `
services:
  - name: shop
    versions:
      - {name: v1, endpoints: ["{{v1}}"]}
      - {name: v2, endpoints: ["{{v2}}"]}
    mirror: {version: v2, percent: 100, maxBodyBytes: 16}
`, v1, v2)
	resp, err := http.Post(f.srv.URL+"/orders", "text/plain", strings.NewReader("small body"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "v1" {
		t.Fatalf("primary answer %d %q (the mirror is still blocked, so the client did not wait for it)", resp.StatusCode, body)
	}
	close(mirrorBlock)
	select {
	case got := <-mirrored:
		if got != "POST /orders small body 1" {
			t.Errorf("mirror received %q", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("mirror never received the copy")
	}
	// Too large a body is not mirrored, and that is counted.
	resp, err = http.Post(f.srv.URL+"/orders", "text/plain", strings.NewReader(strings.Repeat("x", 17)))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("large primary: %v %v", err, resp)
	}
	resp.Body.Close()
	waitFor(t, func() bool {
		m := f.reg.Window("shop", "v2", metrics.Mirror, time.Now().Add(-time.Minute), time.Now().Add(time.Minute))
		return m.Requests == 1 && m.Classes[5] == 1
	}, "mirror measured apart with its 500")
	if p := f.reg.Window("shop", "v2", metrics.Primary, time.Now().Add(-time.Minute), time.Now().Add(time.Minute)); p.Requests != 0 {
		t.Errorf("mirror counted as primary traffic: %d", p.Requests)
	}
	if n := testutil.ToFloat64(f.gw.counters.mirrorMismatch.WithLabelValues("shop", "v2")); n != 1 {
		t.Errorf("status mismatches %v, want 1", n)
	}
	if n := testutil.ToFloat64(f.gw.counters.mirrorSkipped.WithLabelValues("shop", "v2", skipTooLarge)); n != 1 {
		t.Errorf("too-large skips %v, want 1", n)
	}
	if v2.hits.Load() != 1 {
		t.Errorf("mirror upstream hits %d, want 1", v2.hits.Load())
	}
}

// A failed connection is retried once on another endpoint of the same version, never on another
// version; with no other endpoint the client gets a 502 and the failure is measured.
func TestProxyRetriesOnAnotherEndpointOfTheSameVersion(t *testing.T) {
	v1, v2 := newUpstream(t, "v1", nil), newUpstream(t, "v2", nil)
	dead := deadURL(t)
	f := newFixture(t, `
services:
  - name: shop
    versions:
      - {name: v1, endpoints: ["`+dead+`", "{{v1}}"]}
      - {name: v2, endpoints: ["`+dead+`"]}
    passiveHealth: {consecutiveFailures: -1}
    routes: [{match: {header: {name: X-V, value: "2"}}, version: v2}]
`, v1, v2)
	for i := 0; i < 20; i++ {
		if code, up := f.get(t, "/"); code != 200 || up != "v1" {
			t.Fatalf("request %d: %d from %q", i, code, up)
		}
	}
	if n := testutil.ToFloat64(f.gw.counters.retries.WithLabelValues("shop", "v1")); n != 10 {
		t.Errorf("retries %v, want 10 (every other request tried the dead endpoint first)", n)
	}
	code, up := f.get(t, "/", "X-V: 2")
	if code != http.StatusBadGateway || up != "" {
		t.Errorf("dead-only version: %d from %q, want 502 from nobody", code, up)
	}
	// v2 was reached by its route: measured as routed.
	s := f.reg.Window("shop", "v2", metrics.Routed, time.Now().Add(-time.Minute), time.Now().Add(time.Minute))
	if s.Faults[metrics.FaultConnect] != 1 || s.Errors != 1 {
		t.Errorf("connect failure not measured: %+v", s)
	}
	if v2.hits.Load() != 0 {
		t.Error("a v2 request reached another version's upstream")
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	polltest.Wait(t, 10*time.Second, what, cond)
}

// Zero failed requests across 1,000 weight changes during a load run.
func TestProxyWeightChangesUnderLoad(t *testing.T) {
	v1, v2 := newUpstream(t, "v1", nil), newUpstream(t, "v2", nil)
	f := newFixture(t, splitYAML, v1, v2)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var sent int
	var failures []string
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Post(f.srv.URL+"/", "text/plain", bytes.NewReader([]byte("hello")))
				mu.Lock()
				sent++
				if err != nil {
					failures = append(failures, err.Error())
				} else if resp.StatusCode != 200 {
					failures = append(failures, resp.Status)
				}
				mu.Unlock()
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	for i := 0; i < 1000; i++ {
		w := i % 101
		f.apply(t, strings.Replace(splitYAML, "weight: 90}, {version: v2, weight: 10}",
			fmt.Sprintf("weight: %d}, {version: v2, weight: %d}", 100-w, w), 1), v1, v2)
		if i%50 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed during 1000 weight changes; first: %s", len(failures), sent, failures[0])
	}
	if v2.hits.Load() == 0 || sent < 100 {
		t.Fatalf("load too small to mean anything: %d requests, %d on v2", sent, v2.hits.Load())
	}
	t.Logf("%d requests, 0 failed, across 1000 weight changes", sent)
}

// A request placed by a route is measured apart from those placed by weight: a segment is not a
// random sample, and the judge compares only what the weights placed.
func TestProxyMeasuresRoutedRequestsApart(t *testing.T) {
	v1, v2 := newUpstream(t, "v1", nil), newUpstream(t, "v2", nil)
	f := newFixture(t, splitYAML, v1, v2)
	for range 30 {
		if _, up := f.get(t, "/", "X-Canary: always"); up != "v2" {
			t.Fatalf("header route went to %q", up)
		}
	}
	weighted := 0
	for range 200 {
		if _, up := f.get(t, "/"); up == "v2" {
			weighted++
		}
	}
	since, until := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	if got := f.reg.Window("shop", "v2", metrics.Routed, since, until).Requests; got != 30 {
		t.Errorf("v2 routed requests = %d, want the 30 the route placed", got)
	}
	if got := f.reg.Window("shop", "v2", metrics.Primary, since, until).Requests; got != uint64(weighted) {
		t.Errorf("v2 requests placed by weight = %d, want %d", got, weighted)
	}
}

// Requests with a sticky key are counted per cluster of keys, so the judge can measure how much
// the stable's users differ beyond chance; requests without one are in no cluster.
func TestProxyCountsStickyRequestsByCluster(t *testing.T) {
	v1, v2 := newUpstream(t, "v1", nil), newUpstream(t, "v2", nil)
	f := newFixture(t, strings.Replace(splitYAML, "    routes:", "    stickiness: {header: X-User-Id}\n    routes:", 1), v1, v2)
	for u := range 200 {
		f.get(t, "/", fmt.Sprintf("X-User-Id: user-%d", u))
	}
	for range 20 {
		f.get(t, "/") // no key
	}
	var total int64
	used := 0
	for _, v := range []string{"v1", "v2"} {
		n, _ := f.reg.Units("shop", v, metrics.Primary)
		for _, k := range n {
			total += k
			if k > 0 {
				used++
			}
		}
	}
	if total != 200 || used < 16 {
		t.Fatalf("clustered requests: %d in %d clusters, want the 200 with a key, spread over many clusters", total, used)
	}
}
