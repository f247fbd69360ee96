package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/redact"
	"aviary.dev/aviary/internal/rollout"
)

// Delivery tuning. The queue bound keeps a dead hook from holding memory without limit; the grace
// period bounds how long Close waits for queued events.
const (
	defaultQueueSize   = 1000
	defaultBaseBackoff = time.Second
	defaultCloseGrace  = 5 * time.Second
	maxBackoff         = time.Minute
	maxResponseDrain   = 64 << 10 // read so much of an answer, so that the connection can be reused
)

// Delivery results, the values of the result label.
const (
	resultOK      = "ok"
	resultFailed  = "failed"
	resultDropped = "dropped"
)

// WebhookOptions configures Webhooks.
type WebhookOptions struct {
	Hooks []config.Webhook // with the config's defaults applied (timeout, retries)
	// Client sends the requests; nil uses a client that ignores proxy settings.
	Client *http.Client
	// Logger gets failed and dropped deliveries; nil discards them.
	Logger *slog.Logger
	// Metrics gets aviary_webhook_deliveries_total; nil registers nothing. Registering on a
	// registry that has it already (after a reload) reuses the registered counter.
	Metrics prometheus.Registerer

	// For tests: zero uses the defaults above.
	backoff    time.Duration // before the first retry, doubling after
	queueSize  int
	closeGrace time.Duration
}

// Webhooks sends rollout events to the configured webhooks. Each hook has its own queue and
// worker, so a slow hook delays no other, and events reach each hook in the order they were sent.
type Webhooks struct {
	workers    []*hookWorker
	wg         sync.WaitGroup
	cancel     context.CancelFunc // aborts deliveries once the grace period is over
	closeGrace time.Duration
	closeOnce  sync.Once
}

// NewWebhooks starts one worker per hook; Close stops them.
func NewWebhooks(o WebhookOptions) *Webhooks {
	if o.Client == nil {
		o.Client = defaultClient()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.backoff = orDefault(o.backoff, defaultBaseBackoff)
	o.closeGrace = orDefault(o.closeGrace, defaultCloseGrace)
	if o.queueSize <= 0 {
		o.queueSize = defaultQueueSize
	}
	deliveries := registerDeliveries(o.Metrics)
	ctx, cancel := context.WithCancel(context.Background())
	w := &Webhooks{cancel: cancel, closeGrace: o.closeGrace}
	for _, hook := range o.Hooks {
		h := newHookWorker(ctx, hook, o, deliveries)
		w.workers = append(w.workers, h)
		w.wg.Go(h.run)
	}
	return w
}

// Send queues each event for the hooks that want its kind, and returns at once.
func (w *Webhooks) Send(events []rollout.Event) {
	for _, h := range w.workers {
		for _, e := range events {
			if h.wants(e.Kind) {
				h.enqueue(e)
			}
		}
	}
}

// Close stops taking events, lets the workers deliver what is queued for up to the grace period
// (five seconds), then aborts what is left and counts it as dropped. It returns once every worker
// has stopped.
func (w *Webhooks) Close() {
	w.closeOnce.Do(func() {
		for _, h := range w.workers {
			h.close()
		}
		done := make(chan struct{})
		go func() { w.wg.Wait(); close(done) }()
		grace := time.NewTimer(w.closeGrace)
		defer grace.Stop()
		select {
		case <-done:
		case <-grace.C:
			w.cancel()
			<-done
		}
		w.cancel()
	})
}

func registerDeliveries(r prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aviary_webhook_deliveries_total",
		Help: "Webhook deliveries of rollout events, by result: ok, failed (after all retries), or dropped (queue full or shutdown)."},
		[]string{"url", "result"})
	if r == nil {
		return c
	}
	if err := r.Register(c); err != nil {
		if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("register aviary_webhook_deliveries_total: %v", err))
	}
	return c
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// hookWorker delivers the events queued for one hook, one at a time. A named type so that stack
// traces say what a goroutine is.
type hookWorker struct {
	ctx     context.Context
	hook    config.Webhook
	url     string                    // redacted, path and all (a hook's path is often its secret), for logs and metrics
	kinds   map[config.EventKind]bool // nil: every kind
	client  *http.Client
	log     *slog.Logger
	timeout time.Duration
	backoff time.Duration
	limit   int

	ok, failed, dropped prometheus.Counter

	mu      sync.Mutex
	queue   []rollout.Event
	closing bool
	wake    chan struct{} // capacity 1: "the queue or closing changed"
}

func newHookWorker(ctx context.Context, hook config.Webhook, o WebhookOptions, deliveries *prometheus.CounterVec) *hookWorker {
	h := &hookWorker{
		ctx: ctx, hook: hook, url: redact.Hook(hook.URL), client: o.Client,
		log:     o.Logger.With("url", redact.Hook(hook.URL)),
		timeout: hook.Timeout.Duration,
		backoff: o.backoff, limit: o.queueSize, wake: make(chan struct{}, 1),
	}
	if len(hook.Events) > 0 {
		h.kinds = make(map[config.EventKind]bool, len(hook.Events))
		for _, k := range hook.Events {
			h.kinds[k] = true
		}
	}
	h.ok = deliveries.WithLabelValues(h.url, resultOK)
	h.failed = deliveries.WithLabelValues(h.url, resultFailed)
	h.dropped = deliveries.WithLabelValues(h.url, resultDropped)
	return h
}

func (h *hookWorker) wants(kind config.EventKind) bool { return h.kinds == nil || h.kinds[kind] }

// enqueue never waits: a full queue loses its oldest event, since a hook that far behind is
// better served by recent news.
func (h *hookWorker) enqueue(e rollout.Event) {
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		h.drop(e, "webhooks are closed")
		return
	}
	var lost *rollout.Event
	if len(h.queue) >= h.limit {
		oldest := h.queue[0]
		lost = &oldest
		h.queue[0] = rollout.Event{}
		h.queue = h.queue[1:]
	}
	h.queue = append(h.queue, e)
	h.mu.Unlock()
	if lost != nil {
		h.drop(*lost, "queue full")
	}
	h.signal()
}

func (h *hookWorker) signal() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func (h *hookWorker) close() {
	h.mu.Lock()
	h.closing = true
	h.mu.Unlock()
	h.signal()
}

func (h *hookWorker) drop(e rollout.Event, why string) {
	h.dropped.Inc()
	h.log.Warn("webhook event dropped", "reason", why, "event", e.Kind, "seq", e.Seq, "service", e.Service)
}

func (h *hookWorker) run() {
	defer h.dropRest()
	for {
		e, ok := h.next()
		if !ok {
			return
		}
		h.deliver(e)
	}
}

// next waits for the next event. It reports false once closing with an empty queue, or once
// deliveries are aborted.
func (h *hookWorker) next() (rollout.Event, bool) {
	for {
		if h.ctx.Err() != nil {
			return rollout.Event{}, false
		}
		h.mu.Lock()
		if len(h.queue) > 0 {
			e := h.queue[0]
			h.queue[0] = rollout.Event{}
			h.queue = h.queue[1:]
			h.mu.Unlock()
			return e, true
		}
		closing := h.closing
		h.mu.Unlock()
		if closing {
			return rollout.Event{}, false
		}
		select {
		case <-h.wake:
		case <-h.ctx.Done():
		}
	}
}

// dropRest counts what was still queued when deliveries were aborted.
func (h *hookWorker) dropRest() {
	h.mu.Lock()
	rest := h.queue
	h.queue, h.closing = nil, true
	h.mu.Unlock()
	for _, e := range rest {
		h.drop(e, "shutdown")
	}
}

// deliver tries an event once and then up to Retries more times, waiting backoff, 2×backoff, …
// in between.
func (h *hookWorker) deliver(e rollout.Event) {
	body, err := json.Marshal(e)
	if err != nil {
		h.failed.Inc()
		h.log.Error("webhook event not encodable", "event", e.Kind, "seq", e.Seq, "err", err)
		return
	}
	wait := h.backoff
	for attempt := 1; ; attempt++ {
		status, err := h.post(e, body)
		if err == nil {
			h.ok.Inc()
			return
		}
		if h.ctx.Err() != nil {
			h.drop(e, "shutdown")
			return
		}
		last := attempt > h.retries()
		h.log.Warn("webhook delivery failed", "status", status, "err", err, "event", e.Kind, "seq", e.Seq,
			"attempt", attempt, "willRetry", !last)
		if last {
			h.failed.Inc()
			return
		}
		if !h.sleep(wait) {
			h.drop(e, "shutdown")
			return
		}
		wait = min(2*wait, maxBackoff)
	}
}

// retries is the hook's retries after the first attempt; none when not set (config sets the
// default).
func (h *hookWorker) retries() int {
	if h.hook.Retries == nil {
		return 0
	}
	return max(*h.hook.Retries, 0)
}

func (h *hookWorker) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-h.ctx.Done():
		return false
	}
}

// post makes one attempt; any answer but a 2xx is an error. The status is 0 when there was none.
func (h *hookWorker) post(e rollout.Event, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(h.ctx, h.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.hook.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", redact.Err(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Aviary-Event", string(e.Kind))
	// The event's sequence number is the same on every retry, so a receiver can drop duplicates.
	req.Header.Set("X-Aviary-Delivery", strconv.FormatUint(e.Seq, 10))
	if h.hook.Secret != "" {
		req.Header.Set("X-Aviary-Signature", Signature(h.hook.Secret, body))
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, redact.Err(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseDrain))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("answered %s%s", resp.Status, redirected(resp))
	}
	return resp.StatusCode, nil
}

// Signature is the X-Aviary-Signature of a body: "sha256=" and the hex HMAC-SHA256 of the body
// with the hook's secret. A receiver computes it over the raw body it got and compares the two
// with hmac.Equal.
func Signature(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}
