package quality

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"aviary.dev/aviary/internal/config"
)

// Served is one completed LLM exchange as the gateway saw it.
type Served struct {
	RequestID, Service, Version string
	// Mirror marks a shadow copy. It is never joined to feedback (the client never saw it), and
	// when evaluated its measurements are kept apart from the primary's (see MirrorPrefix).
	Mirror bool
	Model  string
	// Input and Output are the request body and the first bytes of the response, bounded by the
	// caller. Served copies what it sends, so the caller may reuse them once Served returns.
	Input, Output []byte
	// At is when the response completed; the feedback window starts then. Zero means now.
	At time.Time
}

// Options configures a Quality. Window, MaxEntries, Scores and the evaluators' settings are taken
// as config gives them, defaults applied (llm.feedbackWindow, llm.feedbackEntries,
// llm.feedbackScores, a service's llm.evaluator); they are not defaulted again here.
type Options struct {
	// Window is how long a request id can be joined to feedback; it must be positive.
	Window time.Duration
	// MaxEntries bounds the request ids remembered for the join; beyond it the oldest is
	// forgotten first. It must be positive.
	MaxEntries int
	// Scores is the range a feedback score must fall in; see SetScores.
	Scores *config.ScoreRange
	// Evaluators are the services' evaluators, by service name; see SetEvaluators.
	Evaluators map[string]config.Evaluator
	// Client posts to evaluators; nil uses a client that ignores proxy settings. Its own Timeout,
	// if any, applies on top of each evaluator's.
	Client *http.Client
	// Logger gets evaluator failures; nil discards them.
	Logger *slog.Logger
	// Metrics gets the metrics (see metrics.go); nil registers nothing. Registering on a registry
	// that has them already reuses the registered ones.
	Metrics prometheus.Registerer
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// OnScore, when set, is told every evaluation score recorded (e.g. to export it); it must not
	// block.
	OnScore func(service, version string, mirror bool, name string, score float64)
}

const (
	// closeGrace is how long Close waits for evaluations in flight.
	closeGrace = 5 * time.Second
	// logEvery is the least time between two logged evaluator failures of one service; the ones
	// in between are counted in the next message.
	logEvery = 10 * time.Second
)

// Quality joins feedback and evaluations to versions. Safe for concurrent use.
type Quality struct {
	join    *join
	totals  *totals
	metrics *metrics
	client  *http.Client
	log     *slog.Logger
	now     func() time.Time
	onScore func(service, version string, mirror bool, name string, score float64)
	scores  atomic.Pointer[config.ScoreRange] // of feedback; SetScores swaps it

	// evaluators is an immutable snapshot, swapped whole by SetEvaluators so that Served reads it
	// without a lock.
	evaluators atomic.Pointer[map[string]*evaluator]
	evalMu     sync.Mutex               // serialises SetEvaluators
	states     map[string]*serviceState // by service, under evalMu; kept across reloads

	ctx    context.Context // cancelled by Close: aborts in-flight evaluations
	cancel context.CancelFunc
	mu     sync.RWMutex // guards closed against wg.Add, so that Close's Wait sees every Add
	closed bool
	wg     sync.WaitGroup
}

// New returns a Quality that remembers nothing yet; Close stops its evaluations.
// SetScores replaces the range feedback scores must fall in (on a config reload): llm.feedbackScores,
// which config always sets.
func (q *Quality) SetScores(r *config.ScoreRange) {
	c := *r
	q.scores.Store(&c)
}

func New(o Options) *Quality {
	if o.Client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil
		o.Client = &http.Client{Transport: t}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	q := &Quality{
		join:    newJoin(o.Window, o.MaxEntries),
		totals:  newTotals(),
		metrics: newMetrics(o.Metrics),
		client:  o.Client,
		log:     o.Logger,
		now:     o.Now,
		onScore: o.OnScore,
		states:  map[string]*serviceState{},
		ctx:     ctx,
		cancel:  cancel,
	}
	q.SetScores(o.Scores)
	q.SetEvaluators(o.Evaluators)
	return q
}

// Served records a completed exchange, and returns at once: it remembers a primary exchange's
// request id for feedback, and, when the exchange falls in its service's evaluated share, starts
// its evaluation in the background.
//
// A request id longer than MaxRequestIDBytes is not remembered (feedback for it is refused as
// invalid), so that ids a client chose cannot hold unbounded memory.
func (q *Quality) Served(s Served) {
	if !s.Mirror && s.RequestID != "" && len(s.RequestID) <= MaxRequestIDBytes {
		at := s.At
		if at.IsZero() {
			at = q.now()
		}
		q.join.remember(s.RequestID, s.Service, s.Version, at, q.now())
	}
	q.maybeEvaluate(s)
}

// Close aborts the evaluations in flight (each is counted as skipped) and waits for them to
// return, for at most a few seconds. Served may still be called: it goes on remembering ids, and
// counts as skipped what it would have evaluated.
func (q *Quality) Close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	q.mu.Unlock()
	q.cancel()
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	grace := time.NewTimer(closeGrace)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
		q.log.Warn("evaluations still running after close", "waited", closeGrace)
	}
}

// start registers an evaluation goroutine unless Close has begun.
func (q *Quality) start() bool {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return false
	}
	q.wg.Add(1)
	return true
}
