package quality

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/fakellm"
)

// The share is exact and evenly spread: 10% evaluates the 1st, 11th, 21st … exchange of a
// service, and mirrored traffic (its own sequence) does not shift which.
func TestEvaluatorShareIsEvenlySpread(t *testing.T) {
	t.Parallel()
	j := newJudge(t, answers(http.StatusOK, `{"scores":{},"labels":[]}`))
	h := newHarness(t, Options{Evaluators: map[string]config.Evaluator{
		"chat": evaluatorAt(j.URL, 10), "other": evaluatorAt(j.URL, 25)}})
	for i := range 100 {
		h.serve(fmt.Sprintf("chat-%d", i), "chat", "v1")
		h.Served(Served{RequestID: fmt.Sprintf("mirror-%d", i), Service: "chat", Version: "shadow", Mirror: true})
		h.serve(fmt.Sprintf("other-%d", i), "other", "v1")
	}
	h.settle()
	ids := j.ids()
	for i := range 100 {
		for _, c := range []struct {
			prefix string
			every  int
		}{{"chat-", 10}, {"mirror-", 10}, {"other-", 4}} {
			id := fmt.Sprintf("%s%d", c.prefix, i)
			if want := i%c.every == 0; ids[id] != want {
				t.Errorf("%s evaluated: %v; want %v (1 in %d)", id, ids[id], want, c.every)
			}
		}
	}
	if got := h.evaluations("chat", "v1", "primary", resultOK); got != 10 {
		t.Errorf("chat evaluations ok = %v; want 10", got)
	}
}

// Over any run of exchanges, however it starts, the count taken is within one of the share.
func TestTakeIsExactOverAnyRun(t *testing.T) {
	t.Parallel()
	for _, percent := range []float64{0.01, 1, 7, 33.3, 50, 99.9, 100} {
		share := uint64(math.Round(percent * shareUnit / 100))
		const n = 20_000
		taken := make([]int, n+1) // taken[i]: how many of the first i
		for i := 1; i <= n; i++ {
			taken[i] = taken[i-1]
			if take(uint64(i), share) {
				taken[i]++
			}
		}
		for _, length := range []int{1, 3, 10, 97, 1000, 9999} {
			for start := 0; start+length <= n; start += 37 {
				got := float64(taken[start+length] - taken[start])
				if want := float64(length) * percent / 100; math.Abs(got-want) >= 1 {
					t.Fatalf("%v%%: %v taken of exchanges %d..%d; want %.2f ± <1", percent, got, start+1, start+length, want)
				}
			}
		}
	}
}

// Served never waits for the evaluator: past maxInFlight, exchanges are skipped and counted.
func TestInFlightBoundSkips(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	j := newJudge(t, func(w http.ResponseWriter, _ *http.Request, _ payload) {
		<-release
		answers(http.StatusOK, `{"scores":{"quality":1}}`)(w, nil, payload{})
	})
	ev := evaluatorAt(j.URL, 100)
	ev.MaxInFlight = 2
	h := newHarness(t, Options{Evaluators: map[string]config.Evaluator{"chat": ev}})
	start := time.Now()
	for i := range 5 {
		h.serve(fmt.Sprint(i), "chat", "v1")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Served took %v with the evaluator stuck", took)
	}
	if got := h.evaluations("chat", "v1", "primary", resultSkipped); got != 3 {
		t.Errorf("skipped = %v; want 3", got)
	}
	close(release)
	h.settle()
	if got := h.evaluations("chat", "v1", "primary", resultOK); got != 2 {
		t.Errorf("ok = %v; want 2", got)
	}
	// The slots are free again.
	h.serve("later", "chat", "v1")
	h.settle()
	if got := h.evaluations("chat", "v1", "primary", resultOK); got != 3 {
		t.Errorf("ok after the slots freed = %v; want 3", got)
	}
}

func TestEvaluatorTimeout(t *testing.T) {
	t.Parallel()
	j := newJudge(t, func(_ http.ResponseWriter, r *http.Request, _ payload) { <-r.Context().Done() })
	ev := evaluatorAt(j.URL, 100)
	ev.Timeout = config.D(20 * time.Millisecond)
	h := newHarness(t, Options{Evaluators: map[string]config.Evaluator{"chat": ev}})
	for i := range 3 {
		h.serve(fmt.Sprint(i), "chat", "v1")
	}
	h.settle()
	if got := h.evaluations("chat", "v1", "primary", resultFailed); got != 3 {
		t.Errorf("failed = %v; want 3", got)
	}
	// One line, not three: failures are logged at most once per interval per service.
	if n := strings.Count(h.log.String(), "evaluation failed"); n != 1 {
		t.Errorf("%d failures logged; want 1:\n%s", n, h.log)
	}
	if !strings.Contains(h.log.String(), "deadline exceeded") {
		t.Errorf("log does not say why:\n%s", h.log)
	}
}

func TestEvaluatorFailuresCounted(t *testing.T) {
	t.Parallel()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	for _, tc := range []struct {
		name   string
		answer func(http.ResponseWriter, *http.Request, payload)
		url    string // instead of a judge's
		want   string // in the log
	}{
		{"non-2xx", answers(http.StatusServiceUnavailable, `overloaded`), "", "503 Service Unavailable"},
		{"not JSON", answers(http.StatusOK, `<html>`), "", "answer is not"},
		{"score not a number", answers(http.StatusOK, `{"scores":{"quality":"high"}}`), "", "answer is not"},
		{"labels not strings", answers(http.StatusOK, `{"labels":[1]}`), "", "answer is not"},
		{"too large", answers(http.StatusOK, `{"labels":["`+strings.Repeat("x", maxAnswerBytes)+`"]}`), "", "larger than"},
		{"refused", nil, gone.URL, "refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := tc.url
			if url == "" {
				url = newJudge(t, tc.answer).URL
			}
			h := newHarness(t, Options{Evaluators: map[string]config.Evaluator{"chat": evaluatorAt(url, 100)}})
			h.serve("r1", "chat", "v1")
			h.settle()
			if got := h.evaluations("chat", "v1", "primary", resultFailed); got != 1 {
				t.Errorf("failed = %v; want 1", got)
			}
			if got := h.Totals("chat", "v1"); len(got) != 0 {
				t.Errorf("totals %v after a failure; want none", got)
			}
			if !strings.Contains(h.log.String(), tc.want) {
				t.Errorf("log does not say %q:\n%s", tc.want, h.log)
			}
		})
	}
}

// The evaluator gets the exchange, and its scores and labels land in the totals and metrics of
// the version that answered.
func TestEvaluationsLandInTheirVersion(t *testing.T) {
	t.Parallel()
	j := newJudge(t, func(w http.ResponseWriter, r *http.Request, p payload) {
		body := `{"scores":{"quality":0.9,"safety":1},"labels":["ok"]}`
		if p.Version == "v2" {
			body = `{"scores":{"quality":0.4,"safety":null},"labels":["bad","bad","verbose"],"explanation":"meh"}`
		}
		answers(http.StatusOK, body)(w, r, p)
	})
	h := newHarness(t, Options{Evaluators: map[string]config.Evaluator{"chat": evaluatorAt(j.URL, 100)}})
	for i := range 2 {
		h.serve(fmt.Sprintf("a%d", i), "chat", "v1")
		h.serve(fmt.Sprintf("b%d", i), "chat", "v2")
	}
	h.settle()

	v1, v2 := h.Totals("chat", "v1"), h.Totals("chat", "v2")
	if got := v1[EvaluationKey("quality")]; got.N != 2 || math.Abs(got.Sum-1.8) > 1e-9 || math.Abs(got.SumSq-1.62) > 1e-9 {
		t.Errorf("v1 quality %+v; want N 2, Sum 1.8, SumSq 1.62", got)
	}
	if got := v1[EvaluationKey("safety")]; got.N != 2 || got.Sum != 2 {
		t.Errorf("v1 safety %+v; want N 2, Sum 2", got)
	}
	if got := v2[EvaluationKey("quality")]; got.N != 2 || math.Abs(got.Sum-0.8) > 1e-9 {
		t.Errorf("v2 quality %+v; want N 2, Sum 0.8", got)
	}
	if _, ok := v2[EvaluationKey("safety")]; ok {
		t.Errorf("v2 has a safety score; the evaluator gave none (null)")
	}
	if got := v2[KeyEvaluation]; got.N != 2 || got.Labels["bad"] != 2 || got.Labels["verbose"] != 2 || len(got.Labels) != 2 {
		t.Errorf("v2 labels %+v; want N 2, bad 2 (once per answer), verbose 2", got)
	}
	if got := v1[KeyEvaluation]; got.N != 2 || got.Labels["ok"] != 2 {
		t.Errorf("v1 labels %+v; want N 2, ok 2", got)
	}
	n, sum := h.summary(t, "aviary_evaluation_score", map[string]string{"service": "chat", "version": "v2", "role": "primary", "name": "quality"})
	if n != 2 || math.Abs(sum-0.8) > 1e-9 {
		t.Errorf("aviary_evaluation_score{v2, quality}: count %d sum %v; want 2, 0.8", n, sum)
	}
}

// What the evaluator is sent: the request and a JSON response as JSON, an event stream or a body
// cut at maxBytes as a string, and the exchange's names.
func TestEvaluatorPayload(t *testing.T) {
	t.Parallel()
	j := newJudge(t, answers(http.StatusOK, `{}`))
	ev := evaluatorAt(j.URL, 100)
	ev.MaxBytes = 32
	h := newHarness(t, Options{Evaluators: map[string]config.Evaluator{"chat": ev}})
	input := []byte(`{"model":"m","messages":[]}`)
	stream := []byte("data: {\"choices\":[]}\n\n")
	h.Served(Served{RequestID: "r1", Service: "chat", Version: "v1", Model: "gpt-x", Input: input, Output: stream})
	long := []byte(`{"model":"m","messages":[{"role":"user","content":"a long prompt"}]}`)
	h.Served(Served{RequestID: "r2", Service: "chat", Version: "v1", Input: long, Output: []byte(`{"ok":true}`)})
	input[0], stream[0] = 'X', 'X' // the caller reuses its buffers at once
	h.settle()

	byID := map[string]payload{}
	for _, p := range j.payloads() {
		byID[p.RequestID] = p
	}
	r1, r2 := byID["r1"], byID["r2"]
	if string(r1.Input) != `{"model":"m","messages":[]}` || r1.Model != "gpt-x" || r1.Service != "chat" || r1.Version != "v1" {
		t.Errorf("r1 sent %+v", r1)
	}
	var s string
	if err := json.Unmarshal(r1.Output, &s); err != nil || s != "data: {\"choices\":[]}\n\n" {
		t.Errorf("r1 output %s; want the stream as a string", r1.Output)
	}
	if err := json.Unmarshal(r2.Input, &s); err != nil || s != string(long[:32]) {
		t.Errorf("r2 input %s; want its first 32 bytes as a string", r2.Input)
	}
	if string(r2.Output) != `{"ok":true}` {
		t.Errorf("r2 output %s; want the JSON body as is", r2.Output)
	}
}

// A shadow version's answers are evaluated too, the only quality signal it can have, and kept
// apart from the primary's.
func TestMirrorEvaluatedApart(t *testing.T) {
	t.Parallel()
	j := newJudge(t, answers(http.StatusOK, `{"scores":{"quality":0.5},"labels":["ok"]}`))
	h := newHarness(t, Options{Evaluators: map[string]config.Evaluator{"chat": evaluatorAt(j.URL, 100)}})
	h.Served(Served{RequestID: "r1", Service: "chat", Version: "v2", Mirror: true})
	h.settle()
	got := h.Totals("chat", "v2")
	if got[MirrorPrefix+EvaluationKey("quality")].N != 1 || got[MirrorPrefix+KeyEvaluation].Labels["ok"] != 1 || len(got) != 2 {
		t.Errorf("totals %v; want only mirror:evaluation and mirror:evaluation:quality", got)
	}
	if n := h.evaluations("chat", "v2", "mirror", resultOK); n != 1 {
		t.Errorf("mirror evaluations ok = %v; want 1", n)
	}
}

// Neither an evaluator's score names nor its labels can grow a version's totals or series
// without bound.
func TestEvaluationNamesBounded(t *testing.T) {
	t.Parallel()
	var scores, labels []string
	for i := range 40 {
		scores = append(scores, fmt.Sprintf(`"s%02d":1`, i))
		labels = append(labels, fmt.Sprintf(`"l%02d"`, i))
	}
	scores = append(scores, `"`+strings.Repeat("n", MaxNameBytes+1)+`":1`)
	labels = append(labels, `"\ud800"`, `""`)
	j := newJudge(t, answers(http.StatusOK, `{"scores":{`+strings.Join(scores, ",")+`},"labels":[`+strings.Join(labels, ",")+`]}`))
	h := newHarness(t, Options{Evaluators: map[string]config.Evaluator{"chat": evaluatorAt(j.URL, 100)}})
	h.serve("r1", "chat", "v1")
	h.settle()
	got := h.Totals("chat", "v1")
	if len(got) != maxScoreNames+1 || got[EvaluationKey("s00")].N != 1 || got[EvaluationKey("s15")].N != 1 {
		t.Errorf("%d keys; want the first %d score names and %s", len(got), maxScoreNames, KeyEvaluation)
	}
	if l := got[KeyEvaluation].Labels; len(l) != maxLabels+1 || l[OtherLabel] != 1 {
		t.Errorf("labels %v; want the first %d and %s counted once", l, maxLabels, OtherLabel)
	}
	if !strings.Contains(h.log.String(), "evaluation scores dropped") {
		t.Errorf("dropped score names not logged:\n%s", h.log)
	}
}

// With the project's fake evaluator, a version whose model answers worse scores lower.
func TestFakeLLMJudge(t *testing.T) {
	t.Parallel()
	judge := httptest.NewServer(fakellm.New(fakellm.Options{Seed: 3}))
	t.Cleanup(judge.Close)
	h := newHarness(t, Options{Evaluators: map[string]config.Evaluator{"chat": evaluatorAt(judge.URL+"/v1/evaluate", 100)}})
	for i := range 20 {
		for _, v := range []struct {
			name, quality string
		}{{"v1", "0.90"}, {"v2", "0.30"}} {
			out := fmt.Sprintf(`{"choices":[{"message":{"content":"[q=%s] answer %d"}}]}`, v.quality, i)
			h.Served(Served{RequestID: v.name + fmt.Sprint(i), Service: "chat", Version: v.name, Model: "m",
				Input: []byte(fmt.Sprintf(`{"messages":[{"role":"user","content":"q%d"}]}`, i)), Output: []byte(out)})
		}
	}
	h.settle()
	for _, v := range []struct {
		name  string
		mean  float64
		label string
	}{{"v1", 0.9, "ok"}, {"v2", 0.3, "bad"}} {
		got := h.Totals("chat", v.name)
		q := got[EvaluationKey("quality")]
		if q.N != 20 || math.Abs(q.Sum/float64(q.N)-v.mean) > fakellm.EvaluationNoise {
			t.Errorf("%s quality %+v; want 20 scores with mean %.2f", v.name, q, v.mean)
		}
		if got[KeyEvaluation].Labels[v.label] != 20 {
			t.Errorf("%s labels %v; want %s 20", v.name, got[KeyEvaluation].Labels, v.label)
		}
	}
}

func TestCloseAbortsInFlight(t *testing.T) {
	t.Parallel()
	j := newJudge(t, func(_ http.ResponseWriter, r *http.Request, _ payload) { <-r.Context().Done() })
	h := newHarness(t, Options{Evaluators: map[string]config.Evaluator{"chat": evaluatorAt(j.URL, 100)}})
	h.serve("r1", "chat", "v1")
	h.serve("r2", "chat", "v1")
	start := time.Now()
	h.Close()
	if took := time.Since(start); took > time.Second {
		t.Errorf("Close took %v", took)
	}
	if got := h.evaluations("chat", "v1", "primary", resultSkipped); got != 2 {
		t.Errorf("skipped = %v; want 2 (aborted by Close)", got)
	}
	h.serve("r3", "chat", "v1")
	if got := h.evaluations("chat", "v1", "primary", resultSkipped); got != 3 {
		t.Errorf("skipped after Close = %v; want 3", got)
	}
	if _, _, err := h.Feedback(Feedback{RequestID: "r3", Label: "x"}); err != nil {
		t.Errorf("feedback after Close: %v; ids are still remembered", err)
	}
	h.Close() // twice is harmless
}

// On reload a service's sequence carries on, and a service without an evaluator is not evaluated.
func TestSetEvaluators(t *testing.T) {
	t.Parallel()
	j := newJudge(t, answers(http.StatusOK, `{}`))
	h := newHarness(t, Options{})
	h.serve("before", "chat", "v1")
	h.SetEvaluators(map[string]config.Evaluator{"chat": evaluatorAt(j.URL, 50)})
	for i := range 4 {
		h.serve(fmt.Sprint(i), "chat", "v1") // 1st and 3rd of the sequence
	}
	h.SetEvaluators(map[string]config.Evaluator{"chat": evaluatorAt(j.URL, 50)})
	h.serve("4", "chat", "v1") // the 5th: the sequence went on, so it is taken
	h.serve("5", "chat", "v1")
	h.SetEvaluators(nil)
	h.serve("after", "chat", "v1")
	h.settle()
	ids := j.ids()
	want := map[string]bool{"0": true, "2": true, "4": true}
	if len(ids) != len(want) || !ids["0"] || !ids["2"] || !ids["4"] {
		t.Errorf("evaluated %v; want %v", ids, want)
	}
}

// An evaluator's score outside its declared range is dropped and logged, so that the judge may
// rely on the range (a bounded mean is judged with finite-sample validity); ScoreRange says which
// range applies to a key.
func TestEvaluationScoresOutsideTheirRangeAreDropped(t *testing.T) {
	t.Parallel()
	j := newJudge(t, answers(http.StatusOK, `{"scores":{"quality":0.9,"stars":4,"negative":-0.1}}`))
	ev := evaluatorAt(j.URL, 100)
	h := newHarness(t, Options{Evaluators: map[string]config.Evaluator{"chat": ev}})
	h.serve("r1", "chat", "v1")
	h.settle()
	got := h.Totals("chat", "v1")
	if got[EvaluationKey("quality")].N != 1 || got[EvaluationKey("stars")].N != 0 || got[EvaluationKey("negative")].N != 0 {
		t.Errorf("totals %+v; want quality kept, stars (4) and negative (-0.1) dropped outside 0..1", got)
	}
	if !strings.Contains(h.log.String(), "outside 0..1 (llm.evaluator.scores)") {
		t.Errorf("scores outside the range not logged with what to do:\n%s", h.log)
	}
	for key, want := range map[string]config.ScoreRange{
		EvaluationKey("quality"):                {Min: 0, Max: 1},
		MirrorPrefix + EvaluationKey("quality"): {Min: 0, Max: 1},
		KeyFeedbackScore:                        {Min: 0, Max: 1},
	} {
		if r, ok := h.ScoreRange("chat", key); !ok || r != want {
			t.Errorf("ScoreRange(chat, %s) = %+v, %v; want %+v", key, r, ok, want)
		}
	}
	if _, ok := h.ScoreRange("other", EvaluationKey("quality")); ok {
		t.Error("a service without an evaluator has a range for its evaluation scores")
	}
	// A declared range of stars keeps them.
	ev.Scores = &config.ScoreRange{Min: 1, Max: 5}
	h.SetEvaluators(map[string]config.Evaluator{"chat": ev})
	h.serve("r2", "chat", "v1")
	h.settle()
	if got := h.Totals("chat", "v1"); got[EvaluationKey("stars")].N != 1 || got[EvaluationKey("quality")].N != 1 {
		t.Errorf("with scores 1..5: totals %+v; want stars kept and quality (0.9) dropped", got)
	}
}
