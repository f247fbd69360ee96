package quality

import (
	"errors"
	"fmt"
	"math"

	"aviary.dev/aviary/internal/config"
)

// Feedback is a late signal about one response: a score, a label, or both. It is what
// POST /api/v1/feedback takes.
type Feedback struct {
	RequestID string   `json:"requestId"`
	Score     *float64 `json:"score,omitempty"`
	Label     string   `json:"label,omitempty"`
}

// Errors of Feedback, to be told apart with errors.Is; the errors returned say more.
var (
	// ErrUnknownRequest: the request id was never served, was a mirrored copy, was forgotten
	// to keep memory bounded, or its window has passed. An HTTP API answers it 404.
	ErrUnknownRequest = errors.New("unknown request id")
	// ErrInvalid: the feedback cannot be recorded as given. An HTTP API answers it 400.
	ErrInvalid = errors.New("invalid feedback")
)

// Feedback credits f to the version that served its request, and returns that service and
// version. A score must fall in the configured range (llm.feedbackScores, 0..1 by default; the
// scale is the user's, 1..5 for stars); the analyzer compares versions on the same scale.
//
// The same request may get feedback more than once (a thumbs-up, then a score from a review);
// each is counted, so a client that retries a feedback it already sent counts it twice.
func (q *Quality) Feedback(f Feedback) (service, version string, err error) {
	if err := f.validate(*q.scores.Load()); err != nil {
		q.metrics.feedback.WithLabelValues("", "", resultInvalid).Inc()
		return "", "", err
	}
	s, ok := q.join.lookup(f.RequestID, q.now())
	if !ok {
		q.metrics.feedback.WithLabelValues("", "", resultUnknown).Inc()
		return "", "", fmt.Errorf("%w %q: feedback joins only responses the gateway served in the last %s "+
			"(llm.feedbackWindow), and at most the last %d of them (llm.feedbackEntries); "+
			"send the %s header of an LLM response, soon after it", ErrUnknownRequest, f.RequestID,
			q.join.window, q.join.max, requestIDHeader)
	}
	q.metrics.feedback.WithLabelValues(s.service, s.version, resultJoined).Inc()
	var labels []string
	if f.Label != "" {
		labels = []string{f.Label}
	}
	for _, l := range q.totals.addLabels(s.service, s.version, KeyFeedback, labels) {
		q.metrics.feedbackLabels.WithLabelValues(s.service, s.version, l).Inc()
	}
	if f.Score != nil {
		q.totals.addScore(s.service, s.version, KeyFeedbackScore, *f.Score)
		q.metrics.feedbackScore.WithLabelValues(s.service, s.version).Observe(*f.Score)
	}
	return s.service, s.version, nil
}

// requestIDHeader is the gateway's response header with the request id (gateway.RequestIDHeader,
// not imported: the gateway will depend on this package).
const requestIDHeader = "X-Aviary-Request-Id"

func (f Feedback) validate(scores config.ScoreRange) error {
	switch {
	case f.RequestID == "":
		return fmt.Errorf("%w: requestId is required: the %s header of the response", ErrInvalid, requestIDHeader)
	case len(f.RequestID) > MaxRequestIDBytes:
		return fmt.Errorf("%w: requestId is %d bytes; ids longer than %d are not remembered", ErrInvalid,
			len(f.RequestID), MaxRequestIDBytes)
	case f.Score == nil && f.Label == "":
		return fmt.Errorf("%w: give a score (a number), a label, or both", ErrInvalid)
	case f.Score != nil && (math.IsNaN(*f.Score) || math.IsInf(*f.Score, 0)):
		return fmt.Errorf("%w: score %v is not a finite number", ErrInvalid, *f.Score)
	case f.Score != nil && (*f.Score < scores.Min || *f.Score > scores.Max):
		return fmt.Errorf("%w: score %v is outside %g..%g (llm.feedbackScores); send a score on that scale, or change the range",
			ErrInvalid, *f.Score, scores.Min, scores.Max)
	case f.Label != "" && !validName(f.Label):
		return fmt.Errorf("%w: label must be UTF-8 text of at most %d bytes", ErrInvalid, MaxNameBytes)
	}
	return nil
}
