package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/rollout"
)

// fakeAPI is a fake of aviary's admin API (internal/api): it answers the routes the client
// commands use with canned answers of the API's contract, and records what it was sent. Only the
// service "shop" exists.
type fakeAPI struct {
	url string

	mu       sync.Mutex
	token    string           // when set, every request must carry "Bearer token"
	lastOK   bool             // the events route knows ?last=N (the newest N); otherwise it ignores it
	statuses []rollout.Status // GET .../rollout answers these in turn, then the last one again
	reads    int              // GET .../rollout answered so far
	readCh   chan int         // gets the count after each GET .../rollout
	events   []rollout.Event  // ascending by seq
	services string           // the body of GET /api/v1/services
	history  string           // the body of GET .../history
	conflict map[string]string
	// stream writes the event stream; nil answers 404.
	stream func(ctx context.Context, write func(string))
	sent   map[string][]byte // request bodies by "METHOD path"
	types  map[string]string // request content types by "METHOD path"
}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{
		statuses: []rollout.Status{pausedShop()},
		readCh:   make(chan int, 100),
		conflict: map[string]string{},
		sent:     map[string][]byte{},
		types:    map[string]string{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/services", func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		_, _ = io.WriteString(w, f.services)
	})
	mux.HandleFunc("GET /api/v1/services/{name}/rollout", f.shop(f.readStatus))
	mux.HandleFunc("POST /api/v1/services/{name}/rollout", f.shop(f.act))
	mux.HandleFunc("POST /api/v1/services/{name}/rollout/{action}", f.shop(f.act))
	mux.HandleFunc("GET /api/v1/services/{name}/history", f.shop(func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		_, _ = io.WriteString(w, f.history)
	}))
	mux.HandleFunc("GET /api/v1/events", f.readEvents)
	mux.HandleFunc("GET /api/v1/events/stream", f.streamEvents)
	mux.HandleFunc("POST /api/v1/apply", f.apply)
	srv := httptest.NewServer(f.auth(mux))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func (f *fakeAPI) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		token := f.token
		f.mu.Unlock()
		switch got := r.Header.Get("Authorization"); {
		case token == "":
		case got == "":
			writeErr(w, http.StatusUnauthorized, "this API needs a bearer token")
			return
		case got != "Bearer "+token:
			writeErr(w, http.StatusForbidden, "the token may not do this")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// shop answers 404 for every service but shop, as the API does.
func (f *fakeAPI) shop(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if name := r.PathValue("name"); name != "shop" {
			writeErr(w, http.StatusNotFound, "no service named "+name+"; GET /api/v1/services lists them")
			return
		}
		h(w, r)
	}
}

func (f *fakeAPI) readStatus(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	st := f.statuses[min(f.reads, len(f.statuses)-1)]
	f.reads++
	n := f.reads
	f.mu.Unlock()
	writeJSONBody(w, http.StatusOK, st)
	select {
	case f.readCh <- n:
	default:
	}
}

func (f *fakeAPI) act(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	key := r.Method + " " + r.URL.Path
	f.sent[key], f.types[key] = body, r.Header.Get("Content-Type")
	if msg, ok := f.conflict[r.PathValue("action")]; ok {
		writeErr(w, http.StatusConflict, msg)
		return
	}
	writeJSONBody(w, http.StatusOK, progressingShop())
}

// readEvents pages forward from after, oldest first, unless lastOK and asked for the last N.
func (f *fakeAPI) readEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, _ := strconv.ParseUint(q.Get("after"), 10, 64)
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit <= 0 {
		writeErr(w, http.StatusBadRequest, "limit: want a positive number")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []rollout.Event{}
	if last, _ := strconv.Atoi(q.Get("last")); last > 0 && f.lastOK {
		for _, e := range f.events {
			if e.Service == q.Get("service") {
				out = append(out, e)
			}
		}
		writeJSONBody(w, http.StatusOK, map[string]any{"events": out[max(0, len(out)-last):]})
		return
	}
	for _, e := range f.events {
		if e.Service == q.Get("service") && e.Seq > after && len(out) < limit {
			out = append(out, e)
		}
	}
	writeJSONBody(w, http.StatusOK, map[string]any{"events": out})
}

func (f *fakeAPI) streamEvents(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	stream := f.stream
	f.mu.Unlock()
	if stream == nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	flusher := w.(http.Flusher)
	flusher.Flush()
	stream(r.Context(), func(s string) {
		_, _ = io.WriteString(w, s)
		flusher.Flush()
	})
}

func (f *fakeAPI) apply(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.sent["POST /api/v1/apply"], f.types["POST /api/v1/apply"] = body, r.Header.Get("Content-Type")
	f.mu.Unlock()
	if bytes.Contains(body, []byte("weight: 150")) {
		writeJSONBody(w, http.StatusUnprocessableEntity, map[string]any{"errors": []string{
			"services[0].traffic[1].weight: must be 0..100",
			"services[0].release: no version named v9",
		}})
		return
	}
	writeJSONBody(w, http.StatusOK, map[string]any{"applied": []string{"shop"}, "unchanged": []string{"cart"}})
}

func writeJSONBody(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	writeJSONBody(w, code, map[string]string{"error": msg})
}

// sseEvent is one event of the stream, as the API writes it.
func sseEvent(e rollout.Event) string {
	b, _ := json.Marshal(e)
	return "id: " + strconv.FormatUint(e.Seq, 10) + "\nevent: rollout\ndata: " + string(b) + "\n\n"
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// pausedShop is a canary rollout of v2, paused at its third step (a timed pause) with 25%.
func pausedShop() rollout.Status {
	left := 90.0
	return rollout.Status{
		Service: "shop", Managed: true, Phase: rollout.Paused, Release: "v2", StableVersion: "v1",
		CanaryVersion: "v2", CanaryWeight: 25, Strategy: "canary", CurrentStepIndex: 2,
		Message: "pausing 5m at 25%",
		Steps: []rollout.StepStatus{
			{Index: 0, Kind: "setWeight", Text: "set weight 5%", State: "done"},
			{Index: 1, Kind: "setWeight", Text: "set weight 25%", State: "done"},
			{Index: 2, Kind: "pause", Text: "pause 5m", State: "current"},
			{Index: 3, Kind: "analysis", Text: "analysis success-rate", State: "pending"},
			{Index: 4, Kind: "setWeight", Text: "set weight 100%", State: "pending"},
		},
		PauseReasons:  []rollout.PauseReason{{Kind: rollout.PauseStepReason, Since: t0}},
		StepRemaining: &left,
		Checks: []rollout.Check{{
			ID: "shop-1-bg", Kind: rollout.BackgroundAnalysis, Step: 0, Templates: []string{"latency"},
			Last: &rollout.Verdict{Phase: rollout.Pass, Message: "p99 212ms under 300ms over 3 samples"},
		}},
		Generation: 7,
	}
}

func progressingShop() rollout.Status {
	st := pausedShop()
	st.Phase, st.CanaryWeight, st.CurrentStepIndex, st.Message = rollout.Progressing, 5, 0, ""
	st.PauseReasons, st.StepRemaining = []rollout.PauseReason{}, nil
	for i := range st.Steps {
		st.Steps[i].State = "pending"
	}
	st.Steps[0].State = "current"
	st.Steps = append(st.Steps, rollout.StepStatus{Index: 5, Text: "pause 1m", State: "pending"},
		rollout.StepStatus{Index: 6, Text: "set weight 100%", State: "pending"})
	return st
}

func healthyShop() rollout.Status {
	return rollout.Status{Service: "shop", Managed: true, Phase: rollout.Healthy, StableVersion: "v2",
		Message: "v2 is stable", PauseReasons: []rollout.PauseReason{}, Generation: 9}
}

// shopEvents are n events of shop with seq 1..n, kinds Event1..EventN.
func shopEvents(n int) []rollout.Event {
	var evs []rollout.Event
	for i := 1; i <= n; i++ {
		evs = append(evs, rollout.Event{Seq: uint64(i), Time: t0.Add(time.Duration(i) * time.Second), Service: "shop",
			Kind: config.EventKind("Event" + strconv.Itoa(i)), Reason: "reason " + strconv.Itoa(i), By: "controller"})
	}
	return evs
}

// aviary runs the CLI's client commands against server, as a user would, and returns what they
// printed. The watch reads the status every `every` when no event comes.
func aviary(t *testing.T, every time.Duration, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := &cobra.Command{Use: "aviary", SilenceUsage: true, SilenceErrors: true}
	addClientCommandsWith(root, &clientOptions{watchEvery: every})
	return execute(t, root, stdin, args...)
}

func execute(t *testing.T, root *cobra.Command, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err = root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// run is aviary with a watch that only events (or a minute) wake.
// wantError checks that err is an error whose text holds every one of want; what names the call.
func wantError(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error", what)
		return
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q lacks %q", what, err, w)
		}
	}
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, _, err := aviary(t, time.Minute, "", args...)
	return out, err
}
