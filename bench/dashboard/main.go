// Command dashboard measures Aviary's dashboard in a real headless Chromium (Debian's chromium,
// scripts/chromium.sh) against the real aviary binary, with 50 services and 10,000 stored events:
//
//   - page weight: every file the rollout page loads (not the API's answers), as the browser
//     received them (gzip) and decoded, from the Resource Timing entries;
//   - first render of a rollout page: from navigation start to the page's
//     "aviary:rollout-complete" mark (the status, analysis, series, history and the last events
//     read and drawn), cold (nothing of the origin cached) and warm (median and p90 of -runs
//     later loads), with the renderer's main-thread work of each warm load (Chromium's
//     performance metrics: less sensitive to a busy machine than the wall clock);
//   - with -compare OLD, the same for another build (e.g. main's), served beside this one with
//     the same data and loaded alternately, so that a busy minute of the machine weighs on both;
//   - with -trace N, N loads under Chromium's performance trace, and where the main thread spent
//     the time (by kind of work, and the longest events with the script that caused them);
//   - memory under live updates: the JS heap after a forced GC while the rollout page and the
//     overview take -updates events over the live stream (an hour of a busy system at one
//     event a second is 3,600), sampled as they arrive.
//
// It prints a markdown report and writes it to -out.
//
// Usage: go run ./bench/dashboard [-updates 3600] [-runs 15] [-compare OLD] [-trace N] [-out bench/results/dashboard.md]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdpperf "github.com/chromedp/cdproto/performance"
	"github.com/chromedp/chromedp"
)

const services = 50

// options are the bench's flags.
type options struct {
	bin, compare, out     string
	events, updates, runs int
	traces                int
}

func main() {
	var o options
	flag.IntVar(&o.updates, "updates", 3600, "live events sent while the page's memory is sampled")
	flag.IntVar(&o.events, "events", 10000, "events stored before the first render")
	flag.IntVar(&o.runs, "runs", 15, "warm first renders measured (per binary)")
	flag.StringVar(&o.out, "out", "bench/results/dashboard.md", "where the report is written (empty: nowhere)")
	flag.StringVar(&o.bin, "aviary", "", "the aviary binary (default: go build ./cmd/aviary)")
	flag.StringVar(&o.compare, "compare", "", "another aviary binary (e.g. built from main) whose first renders are measured in the same run, alternating with -aviary's")
	flag.IntVar(&o.traces, "trace", 0, "also load the rollout page this many times under Chromium's performance trace and print where its main thread spent the time")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "dashboard bench:", err)
		os.Exit(1)
	}
}

// renders are the first-render times of one binary, in ms.
type renders struct {
	cold float64
	warm []float64
	work []work // of the warm loads
}

func run(o options) error {
	dir, err := os.MkdirTemp("", "aviary-dash-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if o.bin == "" {
		o.bin = filepath.Join(dir, "aviary")
		if msg, err := exec.Command("go", "build", "-o", o.bin, "./cmd/aviary").CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/aviary (run from the repository's root): %w\n%s", err, msg)
		}
	}
	bins := []string{o.bin}
	if o.compare != "" {
		bins = append(bins, o.compare)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var avs []*aviary
	var stored uint64
	for i, bin := range bins {
		sub := filepath.Join(dir, fmt.Sprint(i))
		if err := os.Mkdir(sub, 0o755); err != nil {
			return err
		}
		av, stop, err := startAviary(bin, sub)
		if err != nil {
			return err
		}
		defer stop()
		if stored, err = av.fill(o.events); err != nil {
			return err
		}
		go av.load(ctx, "/svc-00/", 50)
		avs = append(avs, av)
	}

	b, closeBrowser, err := newBrowser()
	if err != nil {
		return err
	}
	defer closeBrowser()
	page := func(av *aviary) string { return av.admin + "/ui/#/services/svc-00" }
	fmt.Fprintln(os.Stderr, "first renders…")
	// Each binary has its own origin (port), so its first load is cold: nothing of it cached.
	res := make([]renders, len(avs))
	var wt weight
	for i, av := range avs {
		ms, _, w, err := render(b, page(av), i == 0)
		if err != nil {
			return err
		}
		res[i].cold = ms
		if i == 0 {
			wt = w
		}
	}
	// Alternating, so that a busy minute of the machine weighs on both alike.
	for range o.runs {
		for i, av := range avs {
			ms, wk, _, err := render(b, page(av), false)
			if err != nil {
				return err
			}
			res[i].warm = append(res[i].warm, ms)
			res[i].work = append(res[i].work, wk)
		}
	}
	for i := range res {
		slices.Sort(res[i].warm)
	}
	for range o.traces {
		if err := traceRender(b, page(avs[0]), "aviary:rollout-complete", os.Stderr); err != nil {
			return err
		}
	}

	av := avs[0]
	fmt.Fprintf(os.Stderr, "memory over %d live updates (rollout page)…\n", o.updates)
	rolloutHeap, err := memory(b, av, page(av), "aviary:rollout-rendered", o.updates, []string{"svc-00"})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "memory over %d live updates (overview)…\n", o.updates)
	overviewHeap, err := memory(b, av, av.admin+"/ui/#/", "aviary:overview-rendered", o.updates, names(services))
	if err != nil {
		return err
	}
	report := reportOf(stored, wt, res, o.compare != "", o.updates, rolloutHeap, overviewHeap)
	fmt.Print(report)
	if o.out != "" {
		return os.WriteFile(o.out, []byte(report), 0o644)
	}
	return nil
}

// fill starts a rollout on every service and makes about n events; it returns the last
// event's sequence number.
func (a *aviary) fill(n int) (uint64, error) {
	fmt.Fprintf(os.Stderr, "starting %d rollouts and storing %d events…\n", services, n)
	for i := range services {
		if err := a.post(fmt.Sprintf("/api/v1/services/svc-%02d/rollout", i), `{"version":"v2"}`); err != nil {
			return 0, err
		}
	}
	if err := a.churn(n, names(services)); err != nil {
		return 0, err
	}
	return a.lastSeq()
}

// aviary is the running binary and its addresses.
type aviary struct {
	admin, gw string
	client    *http.Client
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startAviary serves 50 services, each rolling out v1 → v2 with an hour's pause at 10%, on two
// real upstream servers.
func startAviary(bin, dir string) (*aviary, func(), error) {
	v1, v2 := upstream("v1"), upstream("v2")
	gw, err1 := freeAddr()
	admin, err2 := freeAddr()
	if err1 != nil || err2 != nil {
		return nil, nil, fmt.Errorf("free ports: %v %v", err1, err2)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "gateway: {listen: %q}\nadmin: {listen: %q}\nstorage: {path: %q, maxEvents: 20000}\nservices:\n", gw, admin, filepath.Join(dir, "aviary.db"))
	for i := range services {
		fmt.Fprintf(&b, "  - name: svc-%02d\n    match: {pathPrefix: /svc-%02d/}\n    versions:\n      - {name: v1, endpoints: [%q]}\n      - {name: v2, endpoints: [%q]}\n"+
			"    release: v1\n    strategy: {canary: {steps: [{setWeight: 10}, {pause: {duration: 1h}}, {setWeight: 50}]}}\n", i, i, v1.URL, v2.URL)
	}
	cfg := filepath.Join(dir, "aviary.yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		return nil, nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "aviary.log"))
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(bin, "serve", "-c", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		logf.Close()
		v1.Close()
		v2.Close()
	}
	av := &aviary{admin: "http://" + admin, gw: "http://" + gw, client: &http.Client{Timeout: 10 * time.Second}}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := av.client.Get(av.admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return av, stop, nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			log, _ := os.ReadFile(filepath.Join(dir, "aviary.log"))
			return nil, nil, fmt.Errorf("aviary was not ready within 30 s:\n%s", log)
		}
	}
}

func upstream(name string) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, name)
	}))
}

func (a *aviary) post(path, body string) error {
	resp, err := a.client.Post(a.admin+path, "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, msg)
	}
	return nil
}

// churn makes about n events by pausing and resuming the rollouts of svcs (two events a pair).
// A service belongs to one worker, so that its pause and resume never cross.
func (a *aviary) churn(n int, svcs []string) error {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	workers := min(8, len(svcs))
	for w := range workers {
		var mine []string
		for i := w; i < len(svcs); i += workers {
			mine = append(mine, svcs[i])
		}
		wg.Go(func() {
			for k := 0; ; k++ {
				if next.Add(1) > int64(n/2) {
					return
				}
				svc := mine[k%len(mine)]
				for _, act := range []string{"pause", "resume"} {
					if err := a.post("/api/v1/services/"+svc+"/rollout/"+act, `{"reason":"bench"}`); err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// names are the services' names.
func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("svc-%02d", i)
	}
	return out
}

func (a *aviary) lastSeq() (uint64, error) {
	resp, err := a.client.Get(a.admin + "/api/v1/events?last=1")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var evs struct {
		Events []struct {
			Seq uint64 `json:"seq"`
		} `json:"events"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&evs); err != nil || len(evs.Events) == 0 {
		return 0, fmt.Errorf("read the last event: %v", err)
	}
	return evs.Events[0].Seq, nil
}

// load sends about rps requests a second to path through the gateway, so the charts have data.
func (a *aviary) load(ctx context.Context, path string, rps int) {
	tick := time.NewTicker(time.Second / time.Duration(rps))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if resp, err := a.client.Get(a.gw + path); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
}

// newBrowser starts headless Chromium with a GC the page can call and precise heap sizes.
func newBrowser() (context.Context, func(), error) {
	path := os.Getenv("AVIARY_CHROMIUM")
	if path == "" {
		p, err := exec.LookPath("chromium")
		if err != nil {
			return nil, nil, fmt.Errorf("no chromium on the PATH: run scripts/chromium.sh, or set AVIARY_CHROMIUM")
		}
		path = p
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1000), chromedp.Flag("js-flags", "--expose-gc"), chromedp.Flag("enable-precise-memory-info", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelA()
		return nil, nil, fmt.Errorf("start chromium: %w", err)
	}
	return ctx, func() { cancel(); cancelA() }, nil
}

// weight is what the page's files cost: as sent (gzip) and decoded, and how many.
type weight struct {
	Files            int
	Encoded, Decoded float64
}

// render loads url in a fresh document and returns the time to the rollout page's mark; with
// withWeight, also the page weight.
// work is the main-thread time of the page's renderer, from Chromium's performance metrics: every
// load of the page gets a new renderer process here, so its totals are this load's.
type work struct{ Task, Script, Layout, Style float64 } // ms

// render loads url in a fresh document and returns the time to the rollout page's mark and the
// renderer's work; with withWeight, also the page weight.
func render(ctx context.Context, url string, withWeight bool) (float64, work, weight, error) {
	c, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(c, chromedp.Navigate("about:blank"), chromedp.Navigate(url)); err != nil {
		return 0, work{}, weight{}, err
	}
	ms, err := waitMark(c, "aviary:rollout-complete")
	if err != nil {
		return ms, work{}, weight{}, err
	}
	var wk work
	if _, err := chromedp.Call(c, cdpperf.Enable, cdpperf.EnableParams{}); err != nil {
		return ms, wk, weight{}, fmt.Errorf("enable the performance metrics: %w", err)
	}
	m, err := chromedp.Call(c, cdpperf.GetMetrics, cdp.Empty{})
	if err != nil {
		return ms, wk, weight{}, fmt.Errorf("read the performance metrics: %w", err)
	}
	for _, x := range m.Metrics {
		switch x.Name {
		case "TaskDuration":
			wk.Task = x.Value * 1000
		case "ScriptDuration":
			wk.Script = x.Value * 1000
		case "LayoutDuration":
			wk.Layout = x.Value * 1000
		case "RecalcStyleDuration":
			wk.Style = x.Value * 1000
		}
	}
	if os.Getenv("DEBUG_TIMING") != "" {
		t, _ := chromedp.Run(c, chromedp.Evaluate[string](`(() => { const n = performance.getEntriesByType('navigation')[0]; return ['requestStart','responseStart','responseEnd','domInteractive','domContentLoadedEventStart','domContentLoadedEventEnd','loadEventEnd'].map((k) => k + ' ' + Math.round(n[k])).join('\n') + '\n' + performance.getEntriesByType('mark').map((m) => m.name + ' ' + Math.round(m.startTime)).join('\n') + '\n'; })() + performance.getEntriesByType('resource').map((e) => e.name.replace(location.origin, '') + ' ' + Math.round(e.startTime) + '+' + Math.round(e.duration) + ' ' + e.decodedBodySize + 'B').join('\n')`))
		fmt.Fprintf(os.Stderr, "render %.0f ms, %+v:\n%s\n", ms, wk, t)
	}
	if !withWeight {
		return ms, wk, weight{}, nil
	}
	w, err := chromedp.Run(c, chromedp.Evaluate[weight](`(() => {
		const all = [performance.getEntriesByType('navigation')[0], ...performance.getEntriesByType('resource')]
			.filter((e) => !new URL(e.name).pathname.startsWith('/api/'));
		return { Files: all.length, Encoded: all.reduce((n, e) => n + e.encodedBodySize, 0), Decoded: all.reduce((n, e) => n + e.decodedBodySize, 0) };
	})()`))
	return ms, wk, w, err
}

// waitMark waits for a performance mark and returns its time since navigation start, in ms.
func waitMark(ctx context.Context, mark string) (float64, error) {
	for {
		ms, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`(performance.getEntriesByName('`+mark+`')[0] || {startTime: -1}).startTime`))
		if err == nil && ms >= 0 {
			return ms, nil
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("the page never reached %s: %w", mark, ctx.Err())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sample is the JS heap after a GC once some updates have arrived.
type sample struct {
	Updates int
	Heap    float64 // bytes
	Nodes   int
}

// memory opens url, then sends updates events (on svcs) and samples the
// heap after every tenth of them, once the page has caught up.
func memory(ctx context.Context, av *aviary, url, mark string, updates int, svcs []string) ([]sample, error) {
	c, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	if err := chromedp.Do(c, chromedp.Navigate("about:blank"), chromedp.Navigate(url)); err != nil {
		return nil, err
	}
	if _, err := waitMark(c, mark); err != nil {
		return nil, err
	}
	heap := func(done int) (sample, error) {
		// Let the page's debounced reads settle, then collect garbage and read the heap.
		time.Sleep(time.Second)
		s, err := chromedp.Run(c, chromedp.Evaluate[sample](`(gc(), gc(), {Heap: performance.memory.usedJSHeapSize, Nodes: document.getElementsByTagName('*').length})`))
		s.Updates = done
		return s, err
	}
	first, err := heap(0)
	if err != nil {
		return nil, err
	}
	samples := []sample{first}
	step := max(1, updates/10)
	for done := 0; done < updates; done += step {
		if err := av.churn(step, svcs); err != nil {
			return nil, err
		}
		s, err := heap(done + step)
		if err != nil {
			return nil, err
		}
		samples = append(samples, s)
		fmt.Fprintf(os.Stderr, "  %d updates: heap %.2f MB, %d elements\n", s.Updates, s.Heap/1e6, s.Nodes)
	}
	return samples, nil
}

func reportOf(stored uint64, w weight, res []renders, compared bool, updates int, rollout, overview []sample) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Dashboard benchmark\n\n")
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&b, "Measured by `go run ./bench/dashboard` on %s (%d CPUs, load average at the end %s), %s, Chromium headless; "+
		"aviary serving %d services (each rolling out, one under 50 requests/s of load), %d events stored.\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:min(3, len(strings.Fields(string(load))))], " "),
		runtime.GOOS+"/"+runtime.GOARCH, services, stored)
	fmt.Fprintf(&b, "| measure | result | target |\n| --- | --- | --- |\n")
	fmt.Fprintf(&b, "| page weight of a rollout page (%d files, gzip as sent) | %.1f KB (%.1f KB decoded) | < 300 KB |\n", w.Files, w.Encoded/1024, w.Decoded/1024)
	for i, r := range res {
		who := ""
		if compared {
			who = [2]string{" (this build)", " (-compare build)"}[min(i, 1)]
		}
		fmt.Fprintf(&b, "| first render of a rollout page%s, cold (new origin) | %.0f ms | < 1 s |\n", who, r.cold)
		fmt.Fprintf(&b, "| first render of a rollout page%s, warm: median (p90; min–max of %d) | %.0f ms (p90 %.0f; %.0f–%.0f) | < 1 s |\n",
			who, len(r.warm), quantile(r.warm, 0.5), quantile(r.warm, 0.9), r.warm[0], r.warm[len(r.warm)-1])
		med := func(f func(work) float64) float64 {
			xs := make([]float64, len(r.work))
			for i, w := range r.work {
				xs[i] = f(w)
			}
			slices.Sort(xs)
			return quantile(xs, 0.5)
		}
		fmt.Fprintf(&b, "| main-thread work of a warm load%s, median: all tasks (script, layout, style) | %.0f ms (%.0f, %.0f, %.0f) | |\n", who,
			med(func(w work) float64 { return w.Task }), med(func(w work) float64 { return w.Script }),
			med(func(w work) float64 { return w.Layout }), med(func(w work) float64 { return w.Style }))
	}
	for _, p := range []struct {
		name string
		s    []sample
	}{{"rollout page", rollout}, {"overview", overview}} {
		first, last := p.s[0], p.s[len(p.s)-1]
		peak := slices.MaxFunc(p.s, func(a, b sample) int { return int(a.Heap - b.Heap) })
		fmt.Fprintf(&b, "| JS heap after GC, %s, over %d live updates | %.2f MB → %.2f MB (peak %.2f MB); %d → %d elements | steady |\n",
			p.name, updates, first.Heap/1e6, last.Heap/1e6, peak.Heap/1e6, first.Nodes, last.Nodes)
	}
	fmt.Fprintf(&b, "\nHeap samples (updates: MB after GC):\n\n")
	for _, p := range []struct {
		name string
		s    []sample
	}{{"rollout page", rollout}, {"overview", overview}} {
		fmt.Fprintf(&b, "- %s:", p.name)
		for _, s := range p.s {
			fmt.Fprintf(&b, " %d: %.2f;", s.Updates, s.Heap/1e6)
		}
		fmt.Fprintln(&b)
	}
	return b.String()
}

// quantile of sorted xs (nearest rank).
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[max(0, min(i, len(xs)-1))]
}
