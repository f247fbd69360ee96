package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/tracing"
	"github.com/chromedp/chromedp"
)

// traceEvent is the part of a Chromium trace event the summary reads.
type traceEvent struct {
	Name string          `json:"name"`
	Cat  string          `json:"cat"`
	Ph   string          `json:"ph"`
	Ts   float64         `json:"ts"`  // µs
	Dur  float64         `json:"dur"` // µs
	Pid  int             `json:"pid"`
	Tid  int             `json:"tid"`
	Args json.RawMessage `json:"args"`
}

// traceRender loads url once under Chromium's performance trace (the DevTools timeline
// categories) and writes to w the renderer's main-thread work from navigation to mark: the time
// per kind of work (script, style, layout, paint, parsing), and the longest single events with
// the script that forced them. It is how the first render was profiled (-trace).
func traceRender(ctx context.Context, url, mark string, w io.Writer) error {
	c, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := chromedp.Do(c, chromedp.Navigate("about:blank")); err != nil {
		return err
	}
	// One listener for both kinds of event: it sees them in the order they came, so every
	// batch of data is in before the trace's end is seen.
	var (
		mu     sync.Mutex
		events []traceEvent
	)
	complete := make(chan struct{})
	err := chromedp.Listen(c, func(ev any) {
		switch ev := ev.(type) {
		case *tracing.EventDataCollected:
			mu.Lock()
			defer mu.Unlock()
			for _, v := range ev.Value {
				var e traceEvent
				if json.Unmarshal(v, &e) == nil {
					events = append(events, e)
				}
			}
		case *tracing.EventTracingComplete:
			close(complete)
		}
	})
	if err != nil {
		return err
	}
	_, err = chromedp.Call(c, tracing.Start, tracing.StartParams{TraceConfig: &tracing.TraceConfig{IncludedCategories: []string{
		"devtools.timeline", "disabled-by-default-devtools.timeline", "blink.user_timing", "loading", "v8.execute",
	}}})
	if err != nil {
		return fmt.Errorf("start the trace: %w", err)
	}
	if err := chromedp.Do(c, chromedp.Navigate(url)); err != nil {
		return err
	}
	if _, err := waitMark(c, mark); err != nil {
		return err
	}
	if _, err := chromedp.Call(c, tracing.End, cdp.Empty{}); err != nil {
		return fmt.Errorf("end the trace: %w", err)
	}
	select {
	case <-complete:
	case <-c.Done():
		return c.Err()
	}
	cancel()
	mu.Lock()
	defer mu.Unlock()
	summarize(events, mark, w)
	return nil
}

// summarize prints the main thread's work between the navigation and the mark.
func summarize(events []traceEvent, mark string, w io.Writer) {
	// The mark is recorded on the page's main thread; the navigation that led to it is the
	// last one before it.
	var start, end float64
	var main traceEvent
	for _, e := range events {
		if e.Name == mark {
			end, main = e.Ts, e
		}
	}
	for _, e := range events {
		if e.Name == "navigationStart" && e.Ts < end && e.Ts > start {
			start = e.Ts
		}
	}
	if start == 0 || end == 0 {
		fmt.Fprintf(w, "trace: no navigationStart or %s in %d events\n", mark, len(events))
		return
	}
	kinds := map[string]float64{}
	var top []traceEvent
	for _, e := range events {
		if e.Ph != "X" || e.Pid != main.Pid || e.Tid != main.Tid || e.Ts < start || e.Ts > end {
			continue
		}
		switch e.Name {
		case "Layout", "UpdateLayoutTree", "Paint", "PrePaint", "Layerize", "ParseHTML", "ParseAuthorStyleSheet",
			"EvaluateScript", "v8.compileModule", "v8.evaluateModule", "FunctionCall", "EventDispatch", "RunMicrotasks", "TimerFire":
			kinds[e.Name] += e.Dur / 1000
			top = append(top, e)
		}
	}
	fmt.Fprintf(w, "trace: navigation to %s in %.0f ms; main thread work by kind (ms, events may nest):\n", mark, (end-start)/1000)
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Compare(kinds[b], kinds[a]) })
	for _, k := range names {
		fmt.Fprintf(w, "  %-22s %6.1f\n", k, kinds[k])
	}
	slices.SortFunc(top, func(a, b traceEvent) int { return cmp.Compare(b.Dur, a.Dur) })
	fmt.Fprintf(w, "longest:\n")
	for _, e := range top[:min(15, len(top))] {
		fmt.Fprintf(w, "  at %5.0f ms %-18s %6.1f ms %s\n", (e.Ts-start)/1000, e.Name, e.Dur/1000, where(e.Args))
	}
}

// where is the script position a trace event names, if any.
func where(args json.RawMessage) string {
	var a struct {
		Data struct {
			URL          string `json:"url"`
			FunctionName string `json:"functionName"`
			LineNumber   int    `json:"lineNumber"`
			StackTrace   []struct {
				FunctionName string `json:"functionName"`
				URL          string `json:"url"`
				LineNumber   int    `json:"lineNumber"`
			} `json:"stackTrace"`
		} `json:"data"`
		BeginData struct {
			StackTrace []struct {
				FunctionName string `json:"functionName"`
				URL          string `json:"url"`
				LineNumber   int    `json:"lineNumber"`
			} `json:"stackTrace"`
		} `json:"beginData"`
	}
	_ = json.Unmarshal(args, &a)
	var parts []string
	for _, f := range append(a.BeginData.StackTrace, a.Data.StackTrace...) {
		parts = append(parts, fmt.Sprintf("%s@%s:%d", f.FunctionName, short(f.URL), f.LineNumber))
		if len(parts) == 4 {
			break
		}
	}
	if len(parts) == 0 && a.Data.URL != "" {
		parts = append(parts, fmt.Sprintf("%s@%s:%d", a.Data.FunctionName, short(a.Data.URL), a.Data.LineNumber))
	}
	return strings.Join(parts, " < ")
}

func short(u string) string {
	if i := strings.LastIndex(u, "/"); i >= 0 {
		return u[i+1:]
	}
	return u
}
