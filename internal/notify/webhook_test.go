package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/polltest"
	"aviary.dev/aviary/internal/redact"
	"aviary.dev/aviary/internal/rollout"
)

// received is one request as a hook saw it.
type received struct {
	header http.Header
	body   []byte
}

// hookServer is a webhook receiver that records what it gets and answers with answer(n), n being
// the request's number from 1.
type hookServer struct {
	*httptest.Server
	mu     sync.Mutex
	got    []received
	answer func(n int) int
}

func newHookServer(t *testing.T, answer func(n int) int) *hookServer {
	t.Helper()
	s := &hookServer{answer: answer}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.got = append(s.got, received{r.Header.Clone(), body})
		n := len(s.got)
		s.mu.Unlock()
		code := http.StatusOK
		if s.answer != nil {
			code = s.answer(n)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *hookServer) requests() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

// kinds is the X-Aviary-Event of each request, in order.
func (s *hookServer) kinds() []string {
	var out []string
	for _, r := range s.requests() {
		out = append(out, r.header.Get("X-Aviary-Event"))
	}
	return out
}

func event(seq uint64, kind config.EventKind) rollout.Event {
	return rollout.Event{Seq: seq, Time: time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC), Service: "checkout",
		Kind: kind, Reason: "step 2 of 4", By: "controller", Phase: rollout.Progressing,
		Stable: "v1", Canary: "v2", Weight: 20, Step: 2}
}

// newTestWebhooks sends to the hooks with test tuning; Close runs at cleanup if the test did not.
func newTestWebhooks(t *testing.T, reg prometheus.Registerer, hooks ...config.Webhook) *Webhooks {
	t.Helper()
	for i := range hooks {
		hooks[i] = defaulted(hooks[i])
	}
	w := NewWebhooks(WebhookOptions{Hooks: hooks, Metrics: reg, backoff: 10 * time.Millisecond, closeGrace: time.Second})
	t.Cleanup(w.Close)
	return w
}

func deliveries(t *testing.T, w *Webhooks, url, result string) int {
	t.Helper()
	for _, h := range w.workers {
		if h.url == redact.Hook(url) {
			c := map[string]prometheus.Counter{resultOK: h.ok, resultFailed: h.failed, resultDropped: h.dropped}[result]
			return int(testutil.ToFloat64(c))
		}
	}
	t.Fatalf("no hook %s", url)
	return 0
}

func TestWebhookPostsTheEventAsJSON(t *testing.T) {
	srv := newHookServer(t, nil)
	w := newTestWebhooks(t, nil, config.Webhook{URL: srv.URL + "/hook"})

	sent := event(42, "StepStarted")
	w.Send([]rollout.Event{sent})
	w.Close()

	got := srv.requests()
	if len(got) != 1 {
		t.Fatalf("hook got %d requests, want 1", len(got))
	}
	h := got[0].header
	for name, want := range map[string]string{
		"Content-Type": "application/json", "X-Aviary-Event": "StepStarted", "X-Aviary-Delivery": "42",
		"X-Aviary-Signature": "",
	} {
		if h.Get(name) != want {
			t.Errorf("%s = %q, want %q", name, h.Get(name), want)
		}
	}
	var decoded rollout.Event
	if err := json.Unmarshal(got[0].body, &decoded); err != nil {
		t.Fatalf("body %s: %v", got[0].body, err)
	}
	if decoded != sent {
		t.Errorf("body decodes to %+v, want %+v", decoded, sent)
	}
}

func TestWebhookSignatureVerifiesWithTheSecret(t *testing.T) {
	srv := newHookServer(t, nil)
	w := newTestWebhooks(t, nil, config.Webhook{URL: srv.URL, Secret: "s3cret"})

	w.Send([]rollout.Event{event(1, "Completed")})
	w.Close()

	got := srv.requests()
	if len(got) != 1 {
		t.Fatalf("hook got %d requests, want 1", len(got))
	}
	// Verify as a receiver would, without the package's own helper.
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write(got[0].body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if sig := got[0].header.Get("X-Aviary-Signature"); !hmac.Equal([]byte(sig), []byte(want)) {
		t.Errorf("X-Aviary-Signature = %q, want %q", sig, want)
	}
}

func TestWebhookRetriesUntilSuccess(t *testing.T) {
	srv := newHookServer(t, func(n int) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	reg := prometheus.NewRegistry()
	w := newTestWebhooks(t, reg, config.Webhook{URL: srv.URL, Retries: new(3)})

	w.Send([]rollout.Event{event(7, "Aborted")})
	w.Close()

	got := srv.requests()
	if len(got) != 3 {
		t.Fatalf("hook got %d attempts, want 3", len(got))
	}
	for i, r := range got {
		if d := r.header.Get("X-Aviary-Delivery"); d != "7" {
			t.Errorf("attempt %d: X-Aviary-Delivery = %q, want the same 7 on every attempt", i+1, d)
		}
	}
	if ok, failed := deliveries(t, w, srv.URL, resultOK), deliveries(t, w, srv.URL, resultFailed); ok != 1 || failed != 0 {
		t.Errorf("deliveries ok=%d failed=%d, want 1 and 0", ok, failed)
	}
	if n, err := testutil.GatherAndCount(reg, "aviary_webhook_deliveries_total"); err != nil || n == 0 {
		t.Errorf("registry has %d aviary_webhook_deliveries_total series (%v), want some", n, err)
	}
}

func TestWebhookGivesUpAfterItsRetries(t *testing.T) {
	srv := newHookServer(t, func(int) int { return http.StatusInternalServerError })
	w := newTestWebhooks(t, nil, config.Webhook{URL: srv.URL, Retries: new(2)})

	w.Send([]rollout.Event{event(1, "Aborted")})
	w.Close()

	if n := len(srv.requests()); n != 3 {
		t.Errorf("hook got %d attempts, want 3 (1 + 2 retries)", n)
	}
	if failed := deliveries(t, w, srv.URL, resultFailed); failed != 1 {
		t.Errorf("failed deliveries = %d, want 1", failed)
	}
}

func TestWebhookSendsOnlyTheChosenKinds(t *testing.T) {
	all, some := newHookServer(t, nil), newHookServer(t, nil)
	w := newTestWebhooks(t, nil, config.Webhook{URL: all.URL}, config.Webhook{URL: some.URL, Events: []config.EventKind{"Completed", "Aborted"}})

	w.Send([]rollout.Event{event(1, "RolloutStarted"), event(2, "StepStarted"), event(3, "Completed")})
	w.Send([]rollout.Event{event(4, "Paused"), event(5, "Aborted")})
	w.Close()

	if got := some.kinds(); !slices.Equal(got, []string{"Completed", "Aborted"}) {
		t.Errorf("filtered hook got %v, want [Completed Aborted]", got)
	}
	if got := all.kinds(); len(got) != 5 {
		t.Errorf("unfiltered hook got %v, want all 5 events", got)
	}
}

func TestWebhookDeliversInOrderPerHook(t *testing.T) {
	// A slow hook and a fast one: each sees its events in the order they were sent.
	slow := newHookServer(t, func(n int) int {
		time.Sleep(time.Millisecond)
		if n%5 == 0 {
			return http.StatusBadGateway // retried before the next event goes out
		}
		return http.StatusOK
	})
	fast := newHookServer(t, nil)
	w := newTestWebhooks(t, nil, config.Webhook{URL: slow.URL, Retries: new(1)}, config.Webhook{URL: fast.URL})

	const n = 40
	for seq := uint64(1); seq <= n; seq += 4 {
		w.Send([]rollout.Event{event(seq, "StepStarted"), event(seq+1, "StepStarted"), event(seq+2, "StepStarted"), event(seq+3, "StepStarted")})
	}
	// Every event delivered, before Close: Close gives deliveries in flight a grace period only,
	// which a loaded machine may need more than.
	polltest.Wait(t, 30*time.Second, "40 events delivered to each hook", func() bool {
		return deliveries(t, w, slow.URL, resultOK)+deliveries(t, w, slow.URL, resultFailed) == n &&
			deliveries(t, w, fast.URL, resultOK) == n
	})
	w.Close()

	for name, srv := range map[string]*hookServer{"slow": slow, "fast": fast} {
		var seqs []uint64
		for _, r := range srv.requests() {
			s, _ := strconv.ParseUint(r.header.Get("X-Aviary-Delivery"), 10, 64)
			if len(seqs) == 0 || seqs[len(seqs)-1] != s { // a retry repeats its event
				seqs = append(seqs, s)
			}
		}
		if len(seqs) != n {
			t.Fatalf("%s hook got %d events, want %d", name, len(seqs), n)
		}
		for i, s := range seqs {
			if s != uint64(i+1) {
				t.Fatalf("%s hook got events in order %v", name, seqs)
			}
		}
	}
}

func TestWebhookQueueDropsTheOldestWhenFull(t *testing.T) {
	arrived, release := make(chan struct{}, 10), make(chan struct{})
	srv := newHookServer(t, func(int) int {
		arrived <- struct{}{}
		<-release
		return http.StatusOK
	})
	w := NewWebhooks(WebhookOptions{Hooks: []config.Webhook{defaulted(config.Webhook{URL: srv.URL})}, queueSize: 3, closeGrace: time.Second})
	defer w.Close()

	w.Send([]rollout.Event{event(1, "StepStarted")})
	<-arrived // the worker is busy with event 1; the queue is empty
	sent := make(chan struct{})
	go func() {
		w.Send([]rollout.Event{event(2, "StepStarted"), event(3, "StepStarted"), event(4, "StepStarted"),
			event(5, "StepStarted"), event(6, "StepStarted")})
		close(sent)
	}()
	select { // the hook is stuck until release: a Send that waited for it would not return
	case <-sent:
	case <-time.After(10 * time.Second):
		t.Fatal("Send waited for a stuck hook; it must not wait")
	}
	close(release)
	w.Close()

	var seqs []string
	for _, r := range srv.requests() {
		seqs = append(seqs, r.header.Get("X-Aviary-Delivery"))
	}
	if !slices.Equal(seqs, []string{"1", "4", "5", "6"}) {
		t.Errorf("hook got events %v, want [1 4 5 6]: the oldest queued (2, 3) dropped", seqs)
	}
	if dropped, ok := deliveries(t, w, srv.URL, resultDropped), deliveries(t, w, srv.URL, resultOK); dropped != 2 || ok != 4 {
		t.Errorf("deliveries dropped=%d ok=%d, want 2 and 4", dropped, ok)
	}
}

func TestWebhookCloseAbandonsAStuckHookAfterTheGracePeriod(t *testing.T) {
	release := make(chan struct{})
	srv := newHookServer(t, func(int) int { <-release; return http.StatusOK })
	defer close(release) // before the server's cleanup, which waits for its handlers
	w := NewWebhooks(WebhookOptions{Hooks: []config.Webhook{{URL: srv.URL, Timeout: config.D(time.Minute)}},
		closeGrace: 50 * time.Millisecond})

	w.Send([]rollout.Event{event(1, "StepStarted"), event(2, "StepStarted")})
	start := time.Now()
	w.Close()
	// The hook's timeout is a minute: a Close that waited for it would take that long.
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Close took %v, want about the 50ms grace period", d)
	}
	if dropped := deliveries(t, w, srv.URL, resultDropped); dropped != 2 {
		t.Errorf("dropped = %d, want 2 (one in flight, one queued)", dropped)
	}
	w.Send([]rollout.Event{event(3, "StepStarted")}) // after Close: counted, not sent, no panic
	if dropped := deliveries(t, w, srv.URL, resultDropped); dropped != 3 {
		t.Errorf("dropped after Close = %d, want 3", dropped)
	}
}

func TestWebhookRegistersOnAReloadedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := newTestWebhooks(t, reg, config.Webhook{URL: "http://127.0.0.1:1/a"})
	b := newTestWebhooks(t, reg, config.Webhook{URL: "http://127.0.0.1:1/b"}) // must not panic
	a.Close()
	b.Close()
}

func TestRedactKeepsSecretsOutOfLabels(t *testing.T) {
	if got := redact.URL("https://user:pw@hooks.example.com/x?token=abc"); got != "https://hooks.example.com/x" {
		t.Errorf("redact = %q", got)
	}
}

// defaulted is hook as a config file brings it: config.Parse fills in the timeout a hook leaves out
// (and the retries, which the tests here set themselves when they matter).
func defaulted(hook config.Webhook) config.Webhook {
	cfg, err := config.Parse([]byte("notifications: {webhooks: [{url: \"http://127.0.0.1:1/\"}]}"))
	if err != nil {
		panic(err)
	}
	if hook.Timeout.Duration == 0 {
		hook.Timeout = cfg.Notifications.Webhooks[0].Timeout
	}
	return hook
}
