package quality

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
)

func TestFeedbackJoinsTheVersionThatServed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.serve("r1", "chat", "v1")
	h.serve("r2", "chat", "v2")

	svc, ver, err := h.Feedback(Feedback{RequestID: "r2", Score: ptr(0.5), Label: "thumbs-up"})
	if err != nil || svc != "chat" || ver != "v2" {
		t.Fatalf("Feedback(r2) = %q, %q, %v; want chat, v2", svc, ver, err)
	}
	if _, _, err := h.Feedback(Feedback{RequestID: "r2", Score: ptr(1.0)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.Feedback(Feedback{RequestID: "r1", Label: "thumbs-down"}); err != nil {
		t.Fatal(err)
	}

	v2 := h.Totals("chat", "v2")
	if got := v2[KeyFeedbackScore]; got.N != 2 || got.Sum != 1.5 || got.SumSq != 1.25 {
		t.Errorf("v2 %s = %+v; want N 2, Sum 1.5, SumSq 1.25", KeyFeedbackScore, got)
	}
	if got := v2[KeyFeedback]; got.N != 2 || got.Labels["thumbs-up"] != 1 || len(got.Labels) != 1 {
		t.Errorf("v2 %s = %+v; want N 2 (every piece of feedback), thumbs-up 1", KeyFeedback, got)
	}
	v1 := h.Totals("chat", "v1")
	if got := v1[KeyFeedback]; got.N != 1 || got.Labels["thumbs-down"] != 1 {
		t.Errorf("v1 %s = %+v; want N 1, thumbs-down 1", KeyFeedback, got)
	}
	if _, ok := v1[KeyFeedbackScore]; ok {
		t.Errorf("v1 has %s without any score given", KeyFeedbackScore)
	}
	if got := h.feedbackCount("chat", "v2", resultJoined); got != 2 {
		t.Errorf("aviary_feedback_total{v2, joined} = %v; want 2", got)
	}
	if n, sum := h.summary(t, "aviary_feedback_score", map[string]string{"service": "chat", "version": "v2"}); n != 2 || sum != 1.5 {
		t.Errorf("aviary_feedback_score{v2} count %d sum %v; want 2, 1.5", n, sum)
	}
}

// Totals hands out copies: a caller changing them changes nothing here.
func TestTotalsAreCopies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.serve("r1", "chat", "v1")
	if _, _, err := h.Feedback(Feedback{RequestID: "r1", Label: "good"}); err != nil {
		t.Fatal(err)
	}
	h.Totals("chat", "v1")[KeyFeedback].Labels["good"] = 100
	if got := h.Totals("chat", "v1")[KeyFeedback].Labels["good"]; got != 1 {
		t.Errorf("good = %d after a caller changed its copy; want 1", got)
	}
}

func TestFeedbackWindow(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{Window: time.Minute})
	h.serve("r1", "chat", "v1")
	// At is when the response completed: a response that ended 30s ago has 30s left.
	h.Served(Served{RequestID: "late", Service: "chat", Version: "v1", At: h.clock.Now().Add(-30 * time.Second)})

	h.clock.Advance(time.Minute)
	if _, ver, err := h.Feedback(Feedback{RequestID: "r1", Score: ptr(1.0)}); err != nil || ver != "v1" {
		t.Fatalf("at the end of the window: %q, %v; want v1", ver, err)
	}
	h.clock.Advance(time.Nanosecond)
	_, _, err := h.Feedback(Feedback{RequestID: "r1", Score: ptr(1.0)})
	if !errors.Is(err, ErrUnknownRequest) {
		t.Fatalf("past the window: %v; want ErrUnknownRequest", err)
	}
	if !strings.Contains(err.Error(), "1m0s") || !strings.Contains(err.Error(), `"r1"`) {
		t.Errorf("error %q does not name the id and the window", err)
	}
	if _, _, err := h.Feedback(Feedback{RequestID: "late", Score: ptr(1.0)}); !errors.Is(err, ErrUnknownRequest) {
		t.Errorf("served with At 30s back, 1m later: %v; want ErrUnknownRequest", err)
	}
	if got := h.feedbackCount("", "", resultUnknown); got != 2 {
		t.Errorf("aviary_feedback_total{unknown} = %v; want 2", got)
	}
	if n := h.join.size(); n != 0 {
		t.Errorf("%d entries held after their window; want 0", n)
	}
}

func TestFeedbackEntriesBounded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{MaxEntries: 3})
	for i := 1; i <= 5; i++ {
		h.serve(fmt.Sprintf("r%d", i), "chat", "v1")
	}
	for i := 1; i <= 5; i++ {
		_, _, err := h.Feedback(Feedback{RequestID: fmt.Sprintf("r%d", i), Label: "x"})
		if oldest := i <= 2; oldest != errors.Is(err, ErrUnknownRequest) {
			t.Errorf("r%d: %v; want the two oldest forgotten and the rest joined", i, err)
		}
	}
	// Many more: memory stays bounded, including the queue's backing array.
	for i := range 20_000 {
		h.serve(fmt.Sprintf("x%d", i), "chat", "v1")
	}
	if n := h.join.size(); n != 3 {
		t.Errorf("%d entries held; want 3", n)
	}
	if c := cap(h.join.order); c > 4*compactAt {
		t.Errorf("queue capacity %d after 20k ids with 3 kept; want it bounded", c)
	}
}

// An id served again is joined to its latest exchange, and the older entry leaving the queue does
// not take the newer one with it.
func TestFeedbackIDServedTwice(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{MaxEntries: 2})
	h.serve("r1", "chat", "v1")
	h.serve("r1", "chat", "v2")
	h.serve("r2", "chat", "v1") // pushes out the first r1
	if _, ver, err := h.Feedback(Feedback{RequestID: "r1", Label: "x"}); err != nil || ver != "v2" {
		t.Errorf("r1: %q, %v; want v2", ver, err)
	}
}

func TestMirrorNeverJoined(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	// The gateway's shadow copy of a request carries the primary's id.
	h.Served(Served{RequestID: "r1", Service: "chat", Version: "v1"})
	h.Served(Served{RequestID: "r1", Service: "chat", Version: "shadow", Mirror: true})
	h.Served(Served{RequestID: "r2", Service: "chat", Version: "shadow", Mirror: true})

	if _, ver, err := h.Feedback(Feedback{RequestID: "r1", Score: ptr(1.0)}); err != nil || ver != "v1" {
		t.Errorf("r1: %q, %v; want the primary, v1", ver, err)
	}
	if _, _, err := h.Feedback(Feedback{RequestID: "r2", Score: ptr(1.0)}); !errors.Is(err, ErrUnknownRequest) {
		t.Errorf("r2, served only as a mirror: %v; want ErrUnknownRequest", err)
	}
	if got := h.Totals("chat", "shadow"); len(got) != 0 {
		t.Errorf("shadow totals %v; want none", got)
	}
}

func TestFeedbackInvalid(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.serve("r1", "chat", "v1")
	long := strings.Repeat("x", MaxRequestIDBytes+1)
	h.serve(long, "chat", "v1")
	for _, tc := range []struct {
		name string
		f    Feedback
		want string
	}{
		{"no id", Feedback{Score: ptr(1.0)}, "requestId is required"},
		{"id too long", Feedback{RequestID: long, Score: ptr(1.0)}, "not remembered"},
		{"neither score nor label", Feedback{RequestID: "r1"}, "a score"},
		{"NaN", Feedback{RequestID: "r1", Score: ptr(math.NaN())}, "not a finite number"},
		{"infinite", Feedback{RequestID: "r1", Score: ptr(math.Inf(-1))}, "not a finite number"},
		{"label too long", Feedback{RequestID: "r1", Label: strings.Repeat("l", MaxNameBytes+1)}, "at most 64 bytes"},
		{"label not UTF-8", Feedback{RequestID: "r1", Label: "\xff"}, "UTF-8"},
		{"score over the range", Feedback{RequestID: "r1", Score: ptr(1e300)}, "score 1e+300 is outside 0..1 (llm.feedbackScores)"},
		{"score under the range", Feedback{RequestID: "r1", Score: ptr(-1.0)}, "outside 0..1"},
	} {
		_, _, err := h.Feedback(tc.f)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want ErrInvalid saying %q", tc.name, err, tc.want)
		}
	}
	if got := h.Totals("chat", "v1"); len(got) != 0 {
		t.Errorf("invalid feedback recorded: %v", got)
	}
	if got := h.feedbackCount("", "", resultInvalid); got != 9 {
		t.Errorf("aviary_feedback_total{invalid} = %v; want 9", got)
	}
}

// A configured range admits its own scale.
func TestFeedbackScoresInTheConfiguredRange(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{Scores: &config.ScoreRange{Min: 1, Max: 5}})
	h.serve("r1", "chat", "v1")
	if _, _, err := h.Feedback(Feedback{RequestID: "r1", Score: ptr(5.0)}); err != nil {
		t.Errorf("5 stars of 1..5: %v", err)
	}
	if _, _, err := h.Feedback(Feedback{RequestID: "r1", Score: ptr(0.5)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("0.5 of 1..5: %v, want refused", err)
	}
}

// A client cannot grow a version's labels without bound: past the first maxLabels, new ones are
// counted together.
func TestFeedbackLabelsBounded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.serve("r1", "chat", "v1")
	for i := range 100 {
		if _, _, err := h.Feedback(Feedback{RequestID: "r1", Label: fmt.Sprintf("l%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	got := h.Totals("chat", "v1")[KeyFeedback]
	if len(got.Labels) != maxLabels+1 || got.Labels[OtherLabel] != 100-maxLabels || got.N != 100 {
		t.Errorf("%d labels, %d other, N %d; want %d, %d, 100", len(got.Labels), got.Labels[OtherLabel], got.N,
			maxLabels+1, 100-maxLabels)
	}
}

// BenchmarkServed measures what Served costs the gateway's request path for an exchange that is
// remembered but not evaluated, with the join full.
func BenchmarkServed(b *testing.B) {
	q := New(withConfigDefaults(b, Options{MaxEntries: 100_000}))
	defer q.Close()
	ids := make([]string, 1<<16)
	for i := range ids {
		ids[i] = fmt.Sprintf("%024x", i)
	}
	for i := range 100_000 {
		q.Served(Served{RequestID: ids[i%len(ids)], Service: "chat", Version: "v1"})
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		q.Served(Served{RequestID: ids[i%len(ids)], Service: "chat", Version: "v1"})
		i++
	}
}

// A reloaded range applies to the next feedback.
func TestFeedbackScoresRangeChangesOnReload(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.serve("r1", "chat", "v1")
	if _, _, err := h.Feedback(Feedback{RequestID: "r1", Score: ptr(4.0)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("4 of the default 0..1: %v, want refused", err)
	}
	h.SetScores(&config.ScoreRange{Min: 1, Max: 5})
	if _, _, err := h.Feedback(Feedback{RequestID: "r1", Score: ptr(4.0)}); err != nil {
		t.Errorf("4 of 1..5 after the reload: %v", err)
	}
}
