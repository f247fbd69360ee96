package quality

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/redact"
)

// shareUnit is 100% in the unit of evaluator shares: parts per million, so that a share as small
// as 0.0001% is still exact.
const shareUnit = 1_000_000

// maxAnswerBytes bounds an evaluator's answer; a longer one is a failure.
const maxAnswerBytes = 1 << 20

// evaluator is one service's evaluator config, compiled; immutable once in a snapshot.
type evaluator struct {
	url, shownURL string // shownURL is redacted, for logs
	share         uint64 // in parts per million
	maxBytes      int
	maxInFlight   int64
	timeout       time.Duration
	scores        config.ScoreRange // a score outside it is dropped
	st            *serviceState
}

// serviceState is what a service's evaluations keep across config reloads.
type serviceState struct {
	// seq counts each role's exchanges, so that the share is spread evenly over each: mirrored
	// traffic does not shift which primary exchanges are evaluated.
	seq      [2]atomic.Uint64 // primary, mirror
	inFlight atomic.Int64
	logs     logLimiter
}

// SetEvaluators replaces the evaluators (on config reload), by service name. A service keeps its
// sequence and its evaluations in flight across the change. An evaluator with no URL or a
// percent of 0 or less evaluates nothing. Timeout, MaxBytes and MaxInFlight are taken as config
// gives them, defaults applied (see config.Evaluator.WithDefaults).
func (q *Quality) SetEvaluators(byService map[string]config.Evaluator) {
	q.evalMu.Lock()
	defer q.evalMu.Unlock()
	next := make(map[string]*evaluator, len(byService))
	states := make(map[string]*serviceState, len(byService))
	for svc, e := range byService {
		if e.URL == "" || !(e.Percent > 0) {
			continue
		}
		st := q.states[svc]
		if st == nil {
			st = &serviceState{}
		}
		states[svc] = st
		scores := config.DefaultEvaluatorScores()
		if e.Scores != nil {
			scores = e.Scores
		}
		next[svc] = &evaluator{
			scores: *scores,
			url:    e.URL, shownURL: redact.URL(e.URL),
			share:       uint64(max(1, min(shareUnit, math.Round(e.Percent*shareUnit/100)))),
			maxBytes:    e.MaxBytes,
			maxInFlight: int64(e.MaxInFlight),
			timeout:     e.Timeout.Duration,
			st:          st,
		}
	}
	q.states = states
	q.evaluators.Store(&next)
}

// ScoreRange is the range the scores kept under key (a Totals key: KeyFeedbackScore or an
// EvaluationKey, a mirror's too) of service's versions fall in: every score outside it was
// dropped. False when no range applies (no evaluator for the service, another key).
func (q *Quality) ScoreRange(service, key string) (config.ScoreRange, bool) {
	key = strings.TrimPrefix(key, MirrorPrefix)
	switch {
	case key == KeyFeedbackScore:
		if r := q.scores.Load(); r != nil {
			return *r, true
		}
	case strings.HasPrefix(key, KeyEvaluation+":"):
		if ev := (*q.evaluators.Load())[service]; ev != nil {
			return ev.scores, true
		}
	}
	return config.ScoreRange{}, false
}

// take says whether the n-th exchange (from 1) is evaluated: when (n−1)·share mod 100% is less
// than share, which takes ⌊(n−1)·share/100%⌋+1 of the first n. So the count taken is within one
// of the share over any run of exchanges, and they are evenly spaced: 10% takes the 1st, 11th,
// 21st, … — never a burst. It takes the first, so that a quiet service is evaluated at once.
func take(n, share uint64) bool {
	return ((n-1)%shareUnit)*share%shareUnit < share
}

func (q *Quality) maybeEvaluate(s Served) {
	ev := (*q.evaluators.Load())[s.Service]
	if ev == nil {
		return
	}
	r := 0
	if s.Mirror {
		r = 1
	}
	if !take(ev.st.seq[r].Add(1), ev.share) {
		return
	}
	counter := q.metrics.evaluations.WithLabelValues(s.Service, s.Version, role(s.Mirror), resultSkipped)
	if ev.st.inFlight.Add(1) > ev.maxInFlight {
		ev.st.inFlight.Add(-1)
		counter.Inc()
		q.logFailure(ev, s, "evaluation skipped", fmt.Errorf("%d evaluations in flight already (maxInFlight)", ev.maxInFlight))
		return
	}
	if !q.start() {
		ev.st.inFlight.Add(-1)
		counter.Inc()
		return
	}
	e := &evaluation{q: q, ev: ev, s: s}
	// Copies, bounded: the caller may reuse its buffers, and the payload is built off its path.
	e.s.Input, e.inCut = bounded(s.Input, ev.maxBytes)
	e.s.Output, e.outCut = bounded(s.Output, ev.maxBytes)
	go e.run()
}

func bounded(b []byte, n int) ([]byte, bool) {
	return bytes.Clone(b[:min(len(b), n)]), len(b) > n
}

// evaluation is one exchange on its way to an evaluator. A named type, so that stack traces say
// what a goroutine is.
type evaluation struct {
	q             *Quality
	ev            *evaluator
	s             Served
	inCut, outCut bool // Input, Output were cut to maxBytes
}

// payload is what an evaluator gets. Input and Output are sent as JSON when they are a whole JSON
// value (a request or response body), else as a string (an event stream, or a body cut at
// maxBytes).
type payload struct {
	Input     json.RawMessage `json:"input"`
	Output    json.RawMessage `json:"output"`
	Model     string          `json:"model,omitempty"`
	Service   string          `json:"service"`
	Version   string          `json:"version"`
	RequestID string          `json:"requestId,omitempty"`
}

// answer is what an evaluator answers. A null score is one the evaluator could not give, skipped.
type answer struct {
	Scores map[string]*float64 `json:"scores"`
	Labels []string            `json:"labels"`
}

func (e *evaluation) run() {
	defer e.q.wg.Done()
	defer e.ev.st.inFlight.Add(-1)
	s, q := e.s, e.q
	a, err := e.post()
	switch {
	case err != nil && q.ctx.Err() != nil:
		q.metrics.evaluations.WithLabelValues(s.Service, s.Version, role(s.Mirror), resultSkipped).Inc()
	case err != nil:
		q.metrics.evaluations.WithLabelValues(s.Service, s.Version, role(s.Mirror), resultFailed).Inc()
		q.logFailure(e.ev, s, "evaluation failed", err)
	default:
		q.metrics.evaluations.WithLabelValues(s.Service, s.Version, role(s.Mirror), resultOK).Inc()
		q.record(e.ev, s, a)
	}
}

func (e *evaluation) post() (answer, error) {
	body, err := json.Marshal(payload{
		Input: jsonValue(e.s.Input, e.inCut), Output: jsonValue(e.s.Output, e.outCut),
		Model: e.s.Model, Service: e.s.Service, Version: e.s.Version, RequestID: e.s.RequestID,
	})
	if err != nil {
		return answer{}, fmt.Errorf("encode exchange: %w", err)
	}
	ctx, cancel := context.WithTimeout(e.q.ctx, e.ev.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.ev.url, bytes.NewReader(body))
	if err != nil {
		return answer{}, fmt.Errorf("build request: %w", redact.Err(err))
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.q.client.Do(req)
	if err != nil {
		return answer{}, redact.Err(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return answer{}, fmt.Errorf("read answer: %w", redact.Err(err))
	}
	if resp.StatusCode/100 != 2 {
		return answer{}, fmt.Errorf("answered %s: %.200q", resp.Status, raw)
	}
	if len(raw) > maxAnswerBytes {
		return answer{}, fmt.Errorf("answer is larger than %d bytes", maxAnswerBytes)
	}
	var a answer
	if err := json.Unmarshal(raw, &a); err != nil {
		return answer{}, fmt.Errorf(`answer is not {"scores": {name: number}, "labels": [string]}: %w`, err)
	}
	return a, nil
}

// jsonValue is b as a JSON value: itself when it is whole JSON, else a string of it (invalid
// UTF-8 becomes U+FFFD).
func jsonValue(b []byte, cut bool) json.RawMessage {
	if !cut && json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b)) // a string always encodes
	return s
}

// record credits an evaluator's answer to the version that answered.
func (q *Quality) record(ev *evaluator, s Served, a answer) {
	prefix, r := "", role(s.Mirror)
	if s.Mirror {
		prefix = MirrorPrefix
	}
	for _, l := range q.totals.addLabels(s.Service, s.Version, prefix+KeyEvaluation, a.Labels) {
		q.metrics.evalLabels.WithLabelValues(s.Service, s.Version, r, l).Inc()
	}
	var dropped, outside []string
	for _, name := range slices.Sorted(maps.Keys(a.Scores)) { // in order, so that which are dropped is stable
		v := a.Scores[name]
		if v == nil {
			continue
		}
		if !(*v >= ev.scores.Min && *v <= ev.scores.Max) { // NaN too
			outside = append(outside, fmt.Sprintf("%.64q = %g", name, *v))
			continue
		}
		if !validName(name) || !q.totals.addScore(s.Service, s.Version, prefix+EvaluationKey(name), *v) {
			dropped = append(dropped, name)
			continue
		}
		q.metrics.evalScore.WithLabelValues(s.Service, s.Version, r, name).Observe(*v)
		if q.onScore != nil {
			q.onScore(s.Service, s.Version, s.Mirror, name, *v)
		}
	}
	if len(outside) > 0 {
		q.logFailure(ev, s, "evaluation scores dropped", fmt.Errorf(
			"%d scores outside %g..%g (llm.evaluator.scores), first %s: answer on that scale, or set the evaluator's scores range",
			len(outside), ev.scores.Min, ev.scores.Max, outside[0]))
	}
	if len(dropped) > 0 {
		q.logFailure(ev, s, "evaluation scores dropped", fmt.Errorf(
			"%d score names, first %.64q: a version keeps at most %d score names of at most %d bytes each",
			len(dropped), dropped[0], maxScoreNames, MaxNameBytes))
	}
}

// logFailure logs at most once per logEvery per service, and says how many were not logged in
// between: a dead evaluator behind busy traffic must not flood the log.
func (q *Quality) logFailure(ev *evaluator, s Served, msg string, err error) {
	ok, suppressed := ev.st.logs.allow(q.now(), logEvery)
	if !ok {
		return
	}
	q.log.Warn(msg, "service", s.Service, "version", s.Version, "role", role(s.Mirror), "evaluator", ev.shownURL,
		"requestId", s.RequestID, "err", err, "notLoggedBefore", suppressed)
}

type logLimiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (l *logLimiter) allow(now time.Time, every time.Duration) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < every {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}
