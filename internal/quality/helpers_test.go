package quality

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/logtest"
)

// clock is a clock the test moves by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// harness is a Quality with its own registry, clock and log.
type harness struct {
	*Quality
	reg   *prometheus.Registry
	clock *clock
	log   *logtest.Buffer
}

func newHarness(t *testing.T, o Options) *harness {
	t.Helper()
	h := &harness{reg: prometheus.NewRegistry(), clock: newClock(), log: &logtest.Buffer{}}
	o = withConfigDefaults(t, o)
	o.Metrics, o.Now = h.reg, h.clock.Now
	o.Logger = slog.New(slog.NewTextHandler(h.log, nil))
	h.Quality = New(o)
	t.Cleanup(h.Close)
	return h
}

// settle waits for every evaluation started so far to finish.
func (h *harness) settle() { h.wg.Wait() }

func (h *harness) serve(id, service, version string) {
	h.Served(Served{RequestID: id, Service: service, Version: version, Model: "m",
		Input: []byte(`{"model":"m"}`), Output: []byte(`{"answer":"hi"}`)})
}

func (h *harness) evaluations(service, version, role, result string) float64 {
	return testutil.ToFloat64(h.metrics.evaluations.WithLabelValues(service, version, role, result))
}

func (h *harness) feedbackCount(service, version, result string) float64 {
	return testutil.ToFloat64(h.metrics.feedback.WithLabelValues(service, version, result))
}

// summary returns the count and sum of a summary series with exactly the given labels.
func (h *harness) summary(t *testing.T, name string, labels map[string]string) (uint64, float64) {
	t.Helper()
	families, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if sameLabels(m.GetLabel(), labels) {
				return m.GetSummary().GetSampleCount(), m.GetSummary().GetSampleSum()
			}
		}
	}
	return 0, 0
}

func sameLabels(got []*dto.LabelPair, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, l := range got {
		if want[l.GetName()] != l.GetValue() {
			return false
		}
	}
	return true
}

// judge is an evaluator server: it records what it is sent and answers with answer.
type judge struct {
	*httptest.Server
	mu  sync.Mutex
	got []payload
}

func newJudge(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, p payload)) *judge {
	t.Helper()
	j := &judge{}
	j.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p payload
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("evaluator got %q: %v", body, err)
		}
		j.mu.Lock()
		j.got = append(j.got, p)
		j.mu.Unlock()
		answer(w, r, p)
	}))
	t.Cleanup(j.Close)
	return j
}

// answers returns a handler that answers a fixed body.
func answers(status int, body string) func(http.ResponseWriter, *http.Request, payload) {
	return func(w http.ResponseWriter, _ *http.Request, _ payload) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func (j *judge) payloads() []payload {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]payload(nil), j.got...)
}

func (j *judge) ids() map[string]bool {
	ids := map[string]bool{}
	for _, p := range j.payloads() {
		ids[p.RequestID] = true
	}
	return ids
}

// evaluatorAt is an evaluator as config gives it, defaults applied.
func evaluatorAt(url string, percent float64) config.Evaluator {
	return config.Evaluator{URL: url, Percent: percent, Timeout: config.D(5 * time.Second), MaxInFlight: 1000}.WithDefaults()
}

// withConfigDefaults fills the options that the server takes from config (feedback window,
// entries and scores) and that o leaves unset, with what config gives a file that sets none.
func withConfigDefaults(t testing.TB, o Options) Options {
	t.Helper()
	cfg, err := config.Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Window == 0 {
		o.Window = cfg.LLM.FeedbackWindow.Duration
	}
	if o.MaxEntries == 0 {
		o.MaxEntries = cfg.LLM.FeedbackEntries
	}
	if o.Scores == nil {
		o.Scores = cfg.LLM.FeedbackScores
	}
	return o
}

func ptr[T any](v T) *T { return &v }
