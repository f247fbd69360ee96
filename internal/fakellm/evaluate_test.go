package fakellm_test

import (
	"math"
	"net/http"
	"testing"

	"aviary.dev/aviary/internal/fakellm"
)

// answer asks srv for one chat answer and returns its text.
func answer(t *testing.T, srv string, prompt string) string {
	t.Helper()
	req := map[string]any{"model": "m", "messages": []any{map[string]any{"role": "user", "content": prompt}}}
	return decode[chatCompletion](t, post(t, srv+"/v1/chat/completions", req), http.StatusOK).Choices[0].Message.Content
}

func evaluate(t *testing.T, srv string, input, output any) fakellm.Evaluation {
	t.Helper()
	body := map[string]any{"input": input, "output": output, "model": "m"}
	return decode[fakellm.Evaluation](t, post(t, srv+"/v1/evaluate", body), http.StatusOK)
}

// A version with a lower quality knob gets lower scores from the evaluator, whichever server
// evaluates, and the scores spread a little around the knob like a real judge's.
func TestEvaluateTracksQuality(t *testing.T) {
	t.Parallel()
	judge := serve(t, fakellm.Options{Seed: 7}).URL
	for _, tc := range []struct {
		quality float64
		label   string
	}{{0.9, "ok"}, {0.6, "ok"}, {0.3, "bad"}} {
		version := serve(t, fakellm.Options{Quality: tc.quality, OutputTokens: 8}).URL
		var sum float64
		distinct := map[float64]bool{}
		const n = 30
		for i := range n {
			prompt := string(rune('a' + i%26))
			ev := evaluate(t, judge, prompt, answer(t, version, prompt))
			q := ev.Scores["quality"]
			if math.Abs(q-tc.quality) > fakellm.EvaluationNoise+1e-9 {
				t.Errorf("quality %v: score %v is more than the noise away", tc.quality, q)
			}
			if len(ev.Labels) != 1 || ev.Labels[0] != tc.label {
				t.Errorf("quality %v: labels %v, want [%s]", tc.quality, ev.Labels, tc.label)
			}
			sum += q
			distinct[q] = true
		}
		if mean := sum / n; math.Abs(mean-tc.quality) > 0.025 {
			t.Errorf("quality %v: mean score %.3f", tc.quality, mean)
		}
		if len(distinct) < n/2 {
			t.Errorf("quality %v: only %d distinct scores in %d", tc.quality, len(distinct), n)
		}
	}
}

func TestEvaluateIsDeterministic(t *testing.T) {
	t.Parallel()
	srv := serve(t, fakellm.Options{})
	// Output may be a whole response body rather than its text.
	out := map[string]any{"choices": []any{map[string]any{"message": map[string]any{"content": "[q=0.70] the canary"}}}}
	a := evaluate(t, srv.URL, "hi", out)
	b := evaluate(t, srv.URL, "hi", out)
	if a.Scores["quality"] != b.Scores["quality"] {
		t.Errorf("the same exchange scored %v then %v", a.Scores, b.Scores)
	}
	if got := stats(t, srv).Evaluations; got != 2 {
		t.Errorf("evaluations %d, want 2", got)
	}
}

func TestEvaluateRejectsForeignAnswers(t *testing.T) {
	t.Parallel()
	srv := serve(t, fakellm.Options{})
	body := decode[struct{ Error apiError }](t, post(t, srv.URL+"/v1/evaluate", map[string]any{"input": "hi", "output": "no marker"}),
		http.StatusUnprocessableEntity)
	if body.Error.Message == "" {
		t.Errorf("no error message")
	}
	decode[struct{ Error apiError }](t, post(t, srv.URL+"/v1/evaluate", []int{1}), http.StatusBadRequest)
}
