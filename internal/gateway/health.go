package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"aviary.dev/aviary/internal/config"
)

// healthRegistry owns every endpoint's runtime state and its active checker, keyed by service and URL,
// so that state outlives snapshots. sync brings it in line with a new config.
type healthRegistry struct {
	client   *http.Client
	log      *slog.Logger
	onChange func(service, endpoint string, healthy bool)

	mu  sync.Mutex
	eps map[string]*tracked
}

type tracked struct {
	ep      *endpoint
	service string
	check   config.HealthCheck // zero: no active check
	stop    context.CancelFunc
	done    chan struct{}
}

// wantedEndpoint is an endpoint as the new config describes it.
type wantedEndpoint struct {
	service string
	raw     string
	url     *url.URL
	check   *config.HealthCheck
}

func endpointKey(service, raw string) string { return service + "|" + raw }

// sync makes the tracked endpoints those wanted: new ones start (healthy until checks say otherwise),
// removed ones stop, and ones whose check changed get a new checker but keep their state.
func (h *healthRegistry) sync(wanted []wantedEndpoint) map[string]*endpoint {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.eps == nil {
		h.eps = map[string]*tracked{}
	}
	out := make(map[string]*endpoint, len(wanted))
	for _, w := range wanted {
		key := endpointKey(w.service, w.raw)
		var check config.HealthCheck
		if w.check != nil {
			check = *w.check
		}
		t, ok := h.eps[key]
		if !ok {
			t = &tracked{ep: newEndpoint(w.url, w.raw), service: w.service}
			h.eps[key] = t
		}
		if !ok || t.check != check {
			t.stopChecker()
			t.check = check
			if w.check == nil {
				t.ep.activeHealthy.Store(true)
			} else {
				h.startChecker(t)
			}
		}
		out[key] = t.ep
	}
	for key, t := range h.eps {
		if _, keep := out[key]; !keep {
			t.stopChecker()
			delete(h.eps, key)
		}
	}
	return out
}

// checked says whether every actively checked endpoint has had its first check.
func (h *healthRegistry) checked() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range h.eps {
		if t.stop != nil && !t.ep.probed.Load() {
			return false
		}
	}
	return true
}

// close stops every checker and waits for them.
func (h *healthRegistry) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range h.eps {
		t.stopChecker()
	}
}

func (t *tracked) stopChecker() {
	if t.stop != nil {
		t.stop()
		<-t.done
		t.stop, t.done = nil, nil
	}
}

func (h *healthRegistry) startChecker(t *tracked) {
	ctx, cancel := context.WithCancel(context.Background())
	t.stop, t.done = cancel, make(chan struct{})
	c := &activeChecker{
		ep: t.ep, service: t.service, check: t.check, client: h.client, log: h.log, onChange: h.onChange,
		target: strings.TrimSuffix(t.ep.url.String(), "/") + t.check.Path,
	}
	go c.run(ctx, t.done)
}

// activeChecker probes one endpoint on an interval. A named type so that stack traces say what a
// goroutine is.
type activeChecker struct {
	ep       *endpoint
	service  string
	check    config.HealthCheck
	target   string
	client   *http.Client
	log      *slog.Logger
	onChange func(service, endpoint string, healthy bool)
}

func (c *activeChecker) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	ticker := time.NewTicker(c.check.Interval.Duration)
	defer ticker.Stop()
	passes, fails := 0, 0
	for {
		err := c.probe(ctx)
		if ctx.Err() != nil {
			return
		}
		healthy := c.ep.activeHealthy.Load()
		// An endpoint's first check decides at once: one that is down from the start gets no traffic
		// while it runs up its unhealthy threshold.
		first := !c.ep.probed.Swap(true)
		if err == nil {
			c.ep.passedCheck.Store(true)
			passes, fails = passes+1, 0
			if !healthy && passes >= c.check.HealthyThreshold {
				c.ep.activeHealthy.Store(true)
				c.log.Info("endpoint healthy again", "service", c.service, "endpoint", c.ep.raw, "passes", passes)
				c.notify(true)
			}
		} else {
			passes, fails = 0, fails+1
			if healthy && (first || fails >= c.check.UnhealthyThreshold) {
				c.ep.activeHealthy.Store(false)
				c.log.Warn("endpoint unhealthy; no traffic until it passes its checks again",
					"service", c.service, "endpoint", c.ep.raw, "failures", fails, "err", err)
				c.notify(false)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (c *activeChecker) notify(healthy bool) {
	if c.onChange != nil {
		c.onChange(c.service, c.ep.raw, healthy)
	}
}

// probe passes on any 2xx or 3xx answer within the timeout.
func (c *activeChecker) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.check.Timeout.Duration)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "aviary-health-check")
	c.ep.authorize(req.Header, nil)
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return &statusError{code: resp.StatusCode}
	}
	return nil
}

type statusError struct{ code int }

func (e *statusError) Error() string { return "health check answered " + http.StatusText(e.code) }
